#!/usr/bin/env bash
# Install everything the tests need, from scratch, idempotently: a virtualenv with tokenguard
# and its test and docs extras, and a Redis server answering on 127.0.0.1:6379.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev,docs]"

apt_install() {
  if [ "$(id -u)" = 0 ]; then
    if [ -z "${_APT_UPDATED:-}" ]; then apt-get update -qq >/dev/null; _APT_UPDATED=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    echo "setup: please install $* (needs root)" >&2
    return 1
  fi
}

redis_ping() {
  .venv/bin/python - <<'PY' 2>/dev/null
import redis, sys
try:
    sys.exit(0 if redis.Redis(host="127.0.0.1", port=6379, socket_timeout=1).ping() else 1)
except Exception:
    sys.exit(1)
PY
}

if ! redis_ping; then
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --logfile "$(mktemp -t redis-tokenguard.XXXXXX.log)"
  for _ in $(seq 50); do redis_ping && break; sleep 0.1; done
  redis_ping || { echo "setup: Redis did not start" >&2; exit 1; }
fi

# PostgreSQL's server binaries (initdb, pg_ctl, postgres): the tests run a private cluster of
# their own on a free port (tests/helpers/pg_server.py); no system cluster is started.
pg_binaries() {
  command -v initdb >/dev/null 2>&1 && return 0
  command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ] && return 0
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}
if ! pg_binaries; then
  if [ "$(id -u)" = 0 ] && [ ! -e /usr/sbin/policy-rc.d ]; then
    # Debian's package starts a cluster on 5432 unless policy-rc.d says no (101).
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    apt_install postgresql
    rm -f /usr/sbin/policy-rc.d
    trap - EXIT
  else
    apt_install postgresql
  fi
fi

# xmlsec1 checks and makes the XML signatures of SAML logins (pysaml2, tests/auth/test_saml.py).
command -v xmlsec1 >/dev/null 2>&1 || apt_install xmlsec1

# wrk drives the server benchmarks (their smoke test runs in the suite).
if ! command -v wrk >/dev/null 2>&1; then
  apt_install wrk || true
fi

# OpenLDAP's slapd serves the LDAP login tests (tests/helpers/ldap_server.py starts its own).
# Debian's postinst would start a system slapd: a policy-rc.d answering 101 forbids it.
if ! command -v slapd >/dev/null 2>&1 && [ ! -x /usr/sbin/slapd ]; then
  if [ "$(id -u)" = 0 ] && [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    apt_install slapd ldap-utils
    rm -f /usr/sbin/policy-rc.d
    trap - EXIT
  else
    apt_install slapd ldap-utils
  fi
fi

# Node and npm drive the official @directus/sdk in tests/e2e (the test runs `npm ci` itself).
if ! command -v npm >/dev/null 2>&1; then
  apt_install nodejs npm
fi

# Debian's Chromium and the playwright package drive the browser tests (no browser download).
bash scripts/install-browser.sh
