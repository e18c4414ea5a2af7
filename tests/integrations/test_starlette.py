"""tokenguard as a backend of Starlette's AuthenticationMiddleware: who the caller is, Starlette's
@requires over the principal's scopes, and Directus's refusals through ``on_error``."""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    BaseUser,
    SimpleUser,
    requires,
)
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.helpers.auth import FAST, USER_ID, make_user
from tests.helpers.tokens import OTHER_SECRET, SECRET, mint
from tokenguard import TokenGuard
from tokenguard.integrations.starlette import TokenGuardBackend, on_error, require_user
from tokenguard.jose.tokens import hash_token
from tokenguard.stores.base import SessionRecord, refresh_token_key
from tokenguard.stores.memory import MemorySessionStore, MemoryUserStore

STATIC = "starlette-static-token-0123456789abcdef"
INVALID_CREDENTIALS = b'{"errors":[{"message":"Invalid user credentials.","extensions":{"code":"INVALID_CREDENTIALS"}}]}'
INVALID_TOKEN = b'{"errors":[{"message":"Invalid token.","extensions":{"code":"INVALID_TOKEN"}}]}'
TOKEN_EXPIRED = b'{"errors":[{"message":"Token expired.","extensions":{"code":"TOKEN_EXPIRED"}}]}'


def make_guard() -> TokenGuard:
    users = MemoryUserStore()
    users.create(make_user(token_hash=hash_token(STATIC)))
    return TokenGuard(
        users=users, sessions=MemorySessionStore(), flavour="async", secret=SECRET, passwords=FAST,
        login_stall_ms=0, public_role="public",
    )


async def whoami(request: Request) -> JSONResponse:
    user = request.user
    return JSONResponse(
        {"authenticated": user.is_authenticated, "name": user.display_name,
         "scopes": list(request.auth.scopes), "query": request.url.query,
         "role": getattr(request.state, "role", None)}
    )


@requires("authenticated")
async def members(request: Request) -> JSONResponse:
    return JSONResponse({"name": request.user.display_name})


@requires("admin")
async def admins(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


@require_user
async def directus_members(request: Request) -> JSONResponse:
    return JSONResponse({"via": request.state.user.via})


ROUTES = [
    Route("/whoami", whoami, methods=["GET", "POST"]), Route("/members", members), Route("/admins", admins),
    Route("/directus-members", directus_members),
]


def run(app: Any, method: str, url: str, **kw: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
            return await c.request(method, url, **kw)

    return asyncio.run(go())


def app_with(backend: AuthenticationBackend, **kw: Any) -> Starlette:
    return Starlette(routes=ROUTES, middleware=[Middleware(AuthenticationMiddleware, backend=backend, **kw)])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_user_is_request_user_with_the_principals_scopes() -> None:
    app = app_with(TokenGuardBackend(make_guard()), on_error=on_error)
    r = run(app, "GET", "/whoami", headers=bearer(mint(id=USER_ID, role="editor-role")))
    assert r.json() == {
        "authenticated": True, "name": USER_ID, "scopes": ["authenticated", "role:editor-role", "app"],
        "query": "", "role": "editor-role",
    }
    r = run(app, "GET", "/whoami", headers=bearer(STATIC))
    assert (r.status_code, r.json()["name"]) == (200, USER_ID)
    # The query token counts, and is taken out of the URL the app sees.
    r = run(app, "GET", "/whoami", params={"access_token": mint(id=USER_ID), "page": "2"})
    assert (r.json()["name"], r.json()["query"]) == (USER_ID, "page=2")


def test_the_public_caller_is_starlettes_unauthenticated_user() -> None:
    app = app_with(TokenGuardBackend(make_guard()), on_error=on_error)
    r = run(app, "GET", "/whoami")
    assert r.json() == {"authenticated": False, "name": "", "scopes": [], "query": "", "role": "public"}
    # Starlette's @requires answers 403 for an anonymous caller, require_user Directus's 401.
    assert run(app, "GET", "/members").status_code == 403
    r = run(app, "GET", "/directus-members")
    assert (r.status_code, r.content) == (401, INVALID_CREDENTIALS)
    assert run(app, "GET", "/directus-members", headers=bearer(STATIC)).json() == {"via": "static"}
    assert run(app, "GET", "/members", headers=bearer(mint())).status_code == 200
    assert run(app, "GET", "/admins", headers=bearer(mint())).status_code == 403
    assert run(app, "GET", "/admins", headers=bearer(mint(admin_access=True))).status_code == 200


def test_a_bad_token_is_refused_as_directus_through_on_error() -> None:
    app = app_with(TokenGuardBackend(make_guard()), on_error=on_error)
    r = run(app, "GET", "/whoami", headers=bearer(mint(secret=OTHER_SECRET)))
    assert (r.status_code, r.content) == (403, INVALID_TOKEN)
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    r = run(app, "GET", "/whoami", headers=bearer(mint(exp=1, iat=0)))
    assert (r.status_code, r.content) == (401, TOKEN_EXPIRED)
    r = run(app, "GET", "/whoami", headers=bearer("not-a-known-static-token"))
    assert (r.status_code, r.content) == (401, INVALID_CREDENTIALS)
    # A bad session cookie: refused, and the cookie deleted with the answer, as Directus does.
    r = run(app, "GET", "/whoami", headers={"Cookie": f"directus_session_token={mint(secret=OTHER_SECRET)}"})
    assert (r.status_code, r.content) == (403, INVALID_TOKEN)
    assert r.headers["set-cookie"].startswith("directus_session_token=;")


def test_a_cross_site_request_on_the_session_cookie_is_refused() -> None:
    guard = make_guard()
    session = "F" * 22 + "s" * 42
    record = SessionRecord(refresh_token_key(session), session[:22], USER_ID, int(time.time() * 1000) + 60_000)
    guard.sessions.create(record)  # type: ignore[union-attr]
    cookie = {"Cookie": f"directus_session_token={mint(id=USER_ID, session=session)}"}
    app = app_with(TokenGuardBackend(guard), on_error=on_error)
    assert run(app, "POST", "/whoami", headers={**cookie, "Origin": "http://testserver"}).json()["name"] == USER_ID
    r = run(app, "POST", "/whoami", headers={**cookie, "Origin": "https://evil.example"})
    assert r.status_code == 403
    assert r.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"


def test_without_on_error_starlette_answers_its_own_way() -> None:
    app = app_with(TokenGuardBackend(make_guard()))
    r = run(app, "GET", "/whoami", headers=bearer(mint(secret=OTHER_SECRET)))
    assert (r.status_code, r.text) == (400, "Invalid token.")


class BasicBackend(AuthenticationBackend):
    """Another app's own backend (HTTP Basic), tried when tokenguard sees no token."""

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        auth = conn.headers.get("authorization", "")
        if not auth.startswith("Basic "):
            return None
        try:
            name, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        except (ValueError, binascii.Error) as exc:
            raise AuthenticationError("Invalid basic auth credentials") from exc
        if password != "letmein":
            raise AuthenticationError("Wrong password")
        return AuthCredentials(["authenticated", "basic"]), SimpleUser(name)


class Either(AuthenticationBackend):
    def __init__(self, *backends: AuthenticationBackend) -> None:
        self.backends = backends

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        for backend in self.backends:
            found = await backend.authenticate(conn)
            if found is not None:
                return found
        return None


def test_one_backend_among_others() -> None:
    app = app_with(Either(TokenGuardBackend(make_guard()), BasicBackend()), on_error=on_error)
    basic = {"Authorization": "Basic " + base64.b64encode(b"ann:letmein").decode()}
    # tokenguard reads only Bearer credentials: a Basic header is no token of its own.
    r = run(app, "GET", "/whoami", headers=basic)
    assert (r.json()["name"], r.json()["scopes"]) == ("ann", ["authenticated", "basic"])
    wrong = {"Authorization": "Basic " + base64.b64encode(b"ann:nope").decode()}
    assert (run(app, "GET", "/whoami", headers=wrong).status_code, run(app, "GET", "/whoami", headers=wrong).text) == (400, "Wrong password")
    assert run(app, "GET", "/whoami", headers=bearer(mint(id=USER_ID))).json()["name"] == USER_ID
    r = run(app, "GET", "/whoami", headers=bearer(mint(secret=OTHER_SECRET)))
    assert (r.status_code, r.content) == (403, INVALID_TOKEN)


def test_a_backend_made_from_settings_closes_its_guard() -> None:
    backend = TokenGuardBackend(secret=SECRET, users=MemoryUserStore(), sessions=MemorySessionStore())
    assert backend.owns_core
    asyncio.run(backend.aclose())
    shared = make_guard()
    assert not TokenGuardBackend(shared).owns_core
