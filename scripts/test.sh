#!/usr/bin/env bash
# The test command: install what is needed (see setup.sh), then run the whole suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k extract`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
