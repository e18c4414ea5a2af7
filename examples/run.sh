#!/usr/bin/env bash
# Install tokenguard into ./.venv and run an example app with an embedded SQLite store and a
# demo administrator, on a production server: uvicorn for the ASGI examples, gunicorn for the
# WSGI ones (examples/serve.py), their own forwarded-header handling off unless IP_TRUST_PROXY
# is set. Usage: bash examples/run.sh [starlette|flask|fastapi|flask_sqlalchemy|django]
# (WEB_CONCURRENCY=4 for four worker processes; IP_TRUST_PROXY / FORWARDED_ALLOW_IPS behind a
# reverse proxy: see SECURITY.md).
set -euo pipefail
cd "$(dirname "$0")/.."
which="${1:-starlette}"
case "$which" in starlette|flask|fastapi|flask_sqlalchemy|django) ;; *) echo "usage: $0 [starlette|flask|fastapi|flask_sqlalchemy|django]" >&2; exit 2 ;; esac

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[examples,sqlalchemy]"

# Demo settings, made once and kept in a local file so that tokens survive a restart.
demo=.tokenguard-demo.env
if [ ! -f "$demo" ]; then
  rand() { .venv/bin/python -c "import secrets; print(secrets.token_urlsafe($1))"; }
  umask 077
  {
    echo "SECRET=$(rand 48)"
    echo "ADMIN_EMAIL=admin@example.com"
    echo "ADMIN_PASSWORD=$(rand 12)"
    echo "ADMIN_TOKEN=$(rand 32)"
  } > "$demo"
fi
set -a
# shellcheck disable=SC1090
. "./$demo"
set +a
export DB_FILENAME="${DB_FILENAME:-tokenguard-demo.db}"
export HOST="${HOST:-127.0.0.1}" PORT="${PORT:-8055}"
url="http://$HOST:$PORT"

cat <<EOT

tokenguard demo ($which) on $url   (settings in $demo, users in $DB_FILENAME)

  Log in (json mode):
    curl -s -X POST $url/auth/login -H 'Content-Type: application/json' \\
         -d '{"email":"$ADMIN_EMAIL","password":"$ADMIN_PASSWORD"}'
  Or use the administrator's static token:
    curl -s $url/users/me -H 'Authorization: Bearer $ADMIN_TOKEN'
  Login page: $url/login
  Routes: /  (public)   /users/me   /private  (any user)   /admin  (administrator)

EOT
exec .venv/bin/python -m examples.serve "$which"
