"""A Flask app behind TokenGuardFlask that logs its URL and can crash.

Run by gunicorn and by Werkzeug's development server (``python -m ... PORT``) in the
log-redaction end-to-end tests.
"""

from __future__ import annotations

import sys

from flask import Flask, g, request

from tests.e2e.apps.log_common import failure, stores
from tokenguard import TokenGuard
from tokenguard.integrations.flask import TokenGuardFlask

app = Flask("log_wsgi_app")
users, sessions = stores()
TokenGuardFlask(app, TokenGuard(users=users, sessions=sessions))


@app.get("/ok")
def ok() -> dict[str, str]:
    app.logger.warning("app saw %s", request.url)
    return {
        "query": request.query_string.decode("latin-1"),
        "raw_uri": str(request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")),
        "via": g.user.via,
    }


@app.get("/boom")
def boom() -> dict[str, str]:
    raise failure(request.url, request.headers.get("Authorization"), request.headers.get("Cookie"))


if __name__ == "__main__":
    from werkzeug.serving import run_simple

    run_simple("127.0.0.1", int(sys.argv[1]), app, threaded=True)
