#!/usr/bin/env bash
# What the browser tests (tests/e2e/browser) need, installed idempotently: Debian's Chromium
# and the Python `playwright` package that drives it. Never `playwright install`: the tests
# use the system Chromium and no browser is ever downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."

has_chromium() { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; }

if ! has_chromium; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo apt-get update -qq >/dev/null
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "install-browser: please install Chromium (Debian: apt-get install chromium)" >&2
    exit 1
  fi
  has_chromium || { echo "install-browser: Chromium did not install" >&2; exit 1; }
fi

PY=.venv/bin/python
if [ ! -x "$PY" ]; then
  echo "install-browser: no .venv yet; run scripts/setup.sh first" >&2
  exit 1
fi
if ! "$PY" -c "import playwright.sync_api" >/dev/null 2>&1; then
  "$PY" -m pip install --quiet --disable-pip-version-check "playwright>=1.40"
fi
