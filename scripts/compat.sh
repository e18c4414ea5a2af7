#!/usr/bin/env bash
# Supported-versions check: build the wheel once, then, each in a fresh virtualenv,
#   lowest:  the lowest supported Python with the lowest declared dependencies
#            (scripts/constraints-lowest.txt), and
#   highest: the highest supported Python with the latest releases of everything,
# install the wheel with EVERY extra of pyproject.toml (the meta extras aside: test tools,
# examples, benchmarks) and run the core tests (scripts/core-tests.txt) and each extra's own
# tests (scripts/extras-tests.txt) against it, so that a release of Django, SQLAlchemy,
# FastAPI, ... that breaks an extra fails here.
# Interpreters are found on PATH (python3.10, python3.13) or through pyenv; an absent one is
# skipped with a message (COMPAT_STRICT=1 makes that a failure). About six minutes on two cores.
# Usage: bash scripts/compat.sh [lowest|highest]...   (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."
LOWEST_PYTHON=3.10
HIGHEST_PYTHON=3.13
# Extras that gather tools for developing tokenguard rather than a feature of it.
META_EXTRAS="fuzz bench dev test docs examples"
# The test tools: aiosqlite and greenlet (SQLAlchemy's asyncio extra) for the async SQLAlchemy
# store's tests (an app with an AsyncEngine has them, the sqlalchemy extra must not need them);
# daphne, which channels.testing imports; openapi-spec-validator, which checks the OpenAPI
# document the SAML routes add to.
TOOLS=("pytest>=8" "hypothesis>=6.100" "aiosqlite>=0.20" "sqlalchemy[asyncio]" "daphne>=4.1"
  "openapi-spec-validator>=0.7,<1")
PY=.venv/bin/python
[ -x "$PY" ] || bash scripts/setup.sh
EXTRAS=$("$PY" - $META_EXTRAS <<'EOF_PY'
import sys
import tomllib

extras = tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]
print(",".join(name for name in extras if name not in sys.argv[1:]))
EOF_PY
)

is_python() {  # is_python PATH 3.10: whether PATH runs a Python 3.10
  [ -n "$1" ] && "$1" -c "import sys; sys.exit('%d.%d' % sys.version_info[:2] != '$2')" 2>/dev/null
}

find_python() {  # find_python 3.10 -> the path of a working python3.10, or nothing
  local want=$1 candidate version root
  # On PATH (a pyenv shim there may refuse to run: then ask pyenv itself).
  candidate=$(command -v "python$want" 2>/dev/null || true)
  if is_python "$candidate" "$want"; then echo "$candidate"; return 0; fi
  if command -v pyenv >/dev/null 2>&1; then
    root=$(pyenv root)
    for version in $(pyenv versions --bare 2>/dev/null | sort -V -r); do
      case "$version" in
        "$want" | "$want".*)
          candidate="$root/versions/$version/bin/python"
          if is_python "$candidate" "$want"; then echo "$candidate"; return 0; fi ;;
      esac
    done
  fi
  return 0
}

work=$(mktemp -d -t tokenguard-compat.XXXXXX)
trap 'rm -rf "$work"' EXIT
echo "compat: building the wheel"
if ! "$PY" -m build --wheel --outdir "$work/dist" . >"$work/build.log" 2>&1; then
  tail -40 "$work/build.log" >&2
  exit 1
fi
wheel=$(ls "$work"/dist/*.whl)

run_case() {  # run_case NAME PYTHON_VERSION [pip args...]; exit status 0 passed, 1 failed
  local name=$1 want=$2 python venv
  shift 2
  python=$(find_python "$want")
  if [ -z "$python" ]; then
    echo "compat: $name SKIPPED: no Python $want (not on PATH as python$want, not in pyenv)"
    [ -z "${COMPAT_STRICT:-}" ]
    return
  fi
  venv="$work/$name"
  SECONDS=0
  echo "compat: $name: $("$python" --version) at $python, extras $EXTRAS"
  "$python" -m venv "$venv"
  if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
      "$wheel[$EXTRAS]" "${TOOLS[@]}" "$@" >"$work/$name-pip.log" 2>&1; then
    echo "compat: $name FAILED to install"
    tail -30 "$work/$name-pip.log"
    return 1
  fi
  "$venv/bin/python" -m pip list --format=freeze 2>/dev/null \
    | grep -iE '^(pyjwt|cryptography|starlette|werkzeug|itsdangerous|redis|argon2-cffi|anyio|pyotp|flask|django|asgiref|djangorestframework|channels|httpx|authlib|joserfc|graphql-core|pysaml2|fastapi|sqlalchemy|greenlet|bcrypt|ldap3|psycopg|psycopg-pool|uvicorn|pytest|hypothesis)==' \
    | tr '\n' ' '
  echo
  if bash scripts/installed-tests.sh --extras "$venv/bin/python"; then
    echo "compat: $name passed in ${SECONDS}s"
  else
    echo "compat: $name FAILED after ${SECONDS}s"
    return 1
  fi
}

cases=("$@")
[ ${#cases[@]} -eq 0 ] && cases=(lowest highest)
# The cases run side by side (each in its own virtualenv and temporary test directory; the
# tests use unique Redis prefixes), each to its own log, printed when it is done.
pids=()
for case in "${cases[@]}"; do
  case "$case" in
    lowest) run_case lowest "$LOWEST_PYTHON" -c scripts/constraints-lowest.txt \
              >"$work/lowest.log" 2>&1 & ;;
    highest) run_case highest "$HIGHEST_PYTHON" --upgrade >"$work/highest.log" 2>&1 & ;;
    *) echo "usage: $0 [lowest|highest]..." >&2; exit 2 ;;
  esac
  pids+=($!)
done
status=0
for i in "${!cases[@]}"; do
  wait "${pids[$i]}" || status=1
  cat "$work/${cases[$i]}.log"
done
exit $status
