#!/usr/bin/env bash
# Run the core tests (scripts/core-tests.txt) against the tokenguard INSTALLED in a virtualenv,
# never the checkout: the tests are copied to a temporary directory outside the repository and
# run from there with --import-mode=importlib, and the run fails unless tokenguard is imported
# from site-packages.
#   --extras: also each extra's own tests (scripts/extras-tests.txt), for a virtualenv holding
#             every extra (scripts/compat.sh); PostgreSQL and SQLAlchemy tests then run too.
# Usage: bash scripts/installed-tests.sh [--extras] VENV_PYTHON [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
lists=(scripts/core-tests.txt)
# The core extras hold neither psycopg nor SQLAlchemy: their store backends run in the main
# suite, where the test extra installs them, and with --extras.
markers="not pg and not sqlalchemy"
if [ "${1:-}" = --extras ]; then
  lists+=(scripts/extras-tests.txt)
  markers="not e2e"
  shift
fi
python=${1:?usage: installed-tests.sh [--extras] VENV_PYTHON [pytest args...]}
shift

run=$(mktemp -d -t tokenguard-installed.XXXXXX)
trap 'rm -rf "$run"' EXIT
cp -R tests "$run/tests"
find "$run/tests" -name __pycache__ -prune -exec rm -rf {} +
# Only the pytest settings of pyproject.toml (markers, warnings, pythonpath "." = this dir).
awk '/^\[tool\.pytest\.ini_options\]/ {on = 1; print; next} /^\[/ {on = 0} on' \
  pyproject.toml > "$run/pyproject.toml"
cat > "$run/tests/test_installed_package.py" <<'PY'
"""Written by scripts/installed-tests.sh: the run must test the installed package."""

from pathlib import Path

import tokenguard


def test_tokenguard_is_imported_from_site_packages() -> None:
    assert "site-packages" in Path(tokenguard.__file__).parts, tokenguard.__file__
PY

# A list's line is a test path, or a pytest option (--deselect of a test too slow for the run).
mapfile -t selected < <(cat "${lists[@]}" | grep -vE '^\s*(#|$)')
cd "$run"
where=$("$python" -c 'import tokenguard; print(tokenguard.__file__)')
case "$where" in
  "$root"/*) echo "installed-tests: tokenguard comes from the checkout ($where)" >&2; exit 1 ;;
  */site-packages/*) ;;
  *) echo "installed-tests: tokenguard is not in site-packages ($where)" >&2; exit 1 ;;
esac
echo "installed-tests: $("$python" --version) with tokenguard from $where"
exec "$python" -m pytest -q -p no:cacheprovider --import-mode=importlib \
  -m "$markers" tests/test_installed_package.py "${selected[@]}" "$@"
