#!/usr/bin/env bash
# Packaging check: build the sdist and the wheel (python -m build: the wheel is built from the
# sdist, so a file missing from the sdist fails here), `twine check --strict` them, check
# what the wheel holds (py.typed, the license, no tests), install the wheel into a fresh
# virtualenv and run the core tests against the installed package. About a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
[ -x "$PY" ] || bash scripts/setup.sh

work=$(mktemp -d -t tokenguard-package.XXXXXX)
trap 'rm -rf "$work"' EXIT

echo "package-check: building"
if ! "$PY" -m build --outdir "$work/dist" . >"$work/build.log" 2>&1; then
  tail -40 "$work/build.log" >&2
  exit 1
fi
"$PY" -m twine check --strict "$work"/dist/*

wheel=$(ls "$work"/dist/*.whl)
sdist=$(ls "$work"/dist/*.tar.gz)
"$PY" - "$wheel" "$sdist" <<'PY'
import sys
import tarfile
import zipfile
from email.parser import Parser

wheel, sdist = sys.argv[1], sys.argv[2]
names = zipfile.ZipFile(wheel).namelist()
problems = []
if "tokenguard/py.typed" not in names:
    problems.append("the wheel has no tokenguard/py.typed")
stray = [n for n in names if n.split("/")[0] in {"tests", "benchmarks", "examples", "fuzz", "docs"}
         or "/tests/" in n]
if stray:
    problems.append(f"the wheel holds non-package files: {stray[:5]}")
if not any(n.endswith(".dist-info/licenses/LICENSE") for n in names):
    problems.append("the wheel has no LICENSE")
meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
meta = Parser().parsestr(zipfile.ZipFile(wheel).read(meta_name).decode())
for field, want in (("License-Expression", "MIT"), ("Requires-Python", ">=3.10")):
    if meta.get(field) != want:
        problems.append(f"METADATA {field} is {meta.get(field)!r}, not {want!r}")
classifiers = meta.get_all("Classifier") or []
for needed in ("Typing :: Typed", "Programming Language :: Python :: 3.13"):
    if needed not in classifiers:
        problems.append(f"missing classifier {needed!r}")
members = tarfile.open(sdist).getnames()
for needed in ("LICENSE", "README.md", "src/tokenguard/py.typed"):
    if not any(m.endswith("/" + needed) for m in members):
        problems.append(f"the sdist has no {needed}")
if problems:
    sys.exit("package-check: " + "; ".join(problems))
print(f"package-check: {len(names)} files in the wheel, py.typed and LICENSE present, no tests")
PY

echo "package-check: installing the wheel into a fresh virtualenv"
base=$("$PY" -c 'import sys; print(sys._base_executable)')
"$base" -m venv "$work/venv"
if ! "$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  "$wheel[flask,client,totp]" "pytest>=8" "hypothesis>=6.100" >"$work/pip.log" 2>&1; then
  tail -40 "$work/pip.log" >&2
  exit 1
fi
bash scripts/installed-tests.sh "$work/venv/bin/python" "$@"
