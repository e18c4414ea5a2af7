"""A Flask app wrapped by tokenguard, configured like a Directus server.

Run it with ``bash examples/run.sh flask``: gunicorn serves it (``python -m examples.serve
flask`` with ``SECRET`` set). ``python -m examples.flask_app.app`` runs Werkzeug's development
server instead, for development only. Same settings and routes as the Starlette example.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, Response

from examples.static import HEADERS, LOGIN_PAGE, asset
from examples.users import users_me_body
from tokenguard.errors import invalid_credentials, route_not_found
from tokenguard.integrations.flask import (
    TokenGuardFlask,
    current_user,
    error_response,
    require_role,
    require_user,
)
from tokenguard.users import seed_from_env

# No Flask static folder: /static/<name> serves the login page's files, shared with Starlette.
app = Flask(__name__, static_folder=None)
tokenguard = TokenGuardFlask(app)
assert tokenguard.guard is not None
users = tokenguard.guard.users
seed_from_env(users)  # type: ignore[arg-type]


@app.get("/")
def home() -> dict[str, Any]:
    """Public: anyone may call it; the public role is attached when there is no token."""
    return {"data": {"hello": "world", "role": current_user.role, "via": current_user.via}}


@app.get("/users/me")
def users_me() -> Any:
    """Who am I, as Directus's ``GET /users/me`` answers it."""
    if not current_user.is_authenticated:
        return error_response(invalid_credentials())
    user = users.get_by_id(current_user.user)  # type: ignore[union-attr, arg-type]
    if user is None:
        return error_response(invalid_credentials())
    return users_me_body(user)


@app.get("/private")
@require_user
def private() -> dict[str, Any]:
    """Any logged-in user."""
    return {"data": {"secret": "for users only", "user": current_user.user}}


@app.post("/private")
@require_user
def private_post() -> dict[str, Any]:
    """Any logged-in user, with an unsafe method: a cookie-authenticated call must come from
    this origin (tokenguard's cross-site check)."""
    return {"data": {"posted": True, "user": current_user.user}}


@app.get("/login")
def login_page() -> Any:
    """The login page (``examples/static``): session mode in a browser."""
    return _static(LOGIN_PAGE, "/login")


@app.get("/static/<name>")
def static_file(name: str) -> Any:
    return _static(name, f"/static/{name}")


def _static(name: str, path: str) -> Any:
    found = asset(name)
    if found is None:
        return error_response(route_not_found(path))
    body, content_type = found
    return Response(body, content_type=content_type, headers=HEADERS)


@app.get("/admin")
@require_role("administrator")
def admin() -> dict[str, Any]:
    """Administrators only (a role, or the admin_access flag)."""
    return {"data": {"secret": "for administrators only"}}


def main() -> None:
    from werkzeug.serving import run_simple

    try:
        run_simple(
            os.environ.get("HOST", "127.0.0.1"),
            int(os.environ.get("PORT", "8055")),
            app,
            threaded=True,
        )
    finally:
        tokenguard.close()  # WSGI has no shutdown event: stop threads, close connections


if __name__ == "__main__":
    main()
