"""FastAPI dependencies (current_user, optional_user, require_role), the Bearer scheme in the
OpenAPI schema, and Starlette's @requires over the principal — through the real middleware."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Security
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.helpers.auth import EMAIL, FAST, PASSWORD, USER_ID, make_user
from tests.helpers.servers import serve
from tests.helpers.tokens import SECRET, mint
from tokenguard import Principal, TokenGuard, TokenGuardMiddleware
from tokenguard.integrations.fastapi import (
    current_user,
    document_auth_routes,
    install,
    optional_user,
    require_role,
)
from tokenguard.jose.tokens import hash_token
from tokenguard.stores.memory import MemorySessionStore, MemoryUserStore

STATIC = "fastapi-static-token-0123456789abcdef"
INVALID_CREDENTIALS = b'{"errors":[{"message":"Invalid user credentials.","extensions":{"code":"INVALID_CREDENTIALS"}}]}'
FORBIDDEN = b'{"errors":[{"message":"You don\'t have permission to access this.","extensions":{"code":"FORBIDDEN"}}]}'
INVALID_TOKEN = b'{"errors":[{"message":"Invalid token.","extensions":{"code":"INVALID_TOKEN"}}]}'


def make_guard() -> TokenGuard:
    users = MemoryUserStore()
    users.create(make_user(token_hash=hash_token(STATIC)))
    return TokenGuard(
        users=users,
        sessions=MemorySessionStore(),
        flavour="async",
        secret=SECRET,
        passwords=FAST,
        login_stall_ms=0,
        public_role="public",
    )


def fastapi_app(guard: TokenGuard, setup: str = "install") -> FastAPI:
    app = FastAPI()
    if setup == "install":
        install(app, guard)
    else:  # what the README's "Wrap a Starlette (or FastAPI) app" shows, with no handler
        app.add_middleware(TokenGuardMiddleware, guard=guard)  # type: ignore[arg-type]

    @app.get("/who")
    async def who(p: Annotated[Principal, Depends(optional_user)]) -> dict[str, Any]:
        return {"user": p.user, "role": p.role, "via": p.via}

    @app.get("/me")
    async def me(p: Annotated[Principal, Depends(current_user)]) -> dict[str, Any]:
        return {"user": p.user, "via": p.via}

    @app.get("/editors", dependencies=[Depends(require_role("editor-role"))])
    async def editors() -> dict[str, str]:
        return {"ok": "editors"}

    @app.get("/strict", dependencies=[Depends(require_role("other-role", admin_ok=False))])
    async def strict() -> dict[str, str]:
        return {"ok": "strict"}

    @app.get("/open")
    async def open_route() -> dict[str, str]:
        return {"ok": "open"}

    @app.get("/admins")
    async def admins(p: Annotated[Principal, Security(current_user, scopes=["admin"])]) -> dict[str, Any]:
        return {"user": p.user}

    @app.get("/editor-app", dependencies=[Security(current_user, scopes=["role:editor-role", "app"])])
    async def editor_app() -> dict[str, str]:
        return {"ok": "editor-app"}

    @app.get("/raises")
    async def raises() -> dict[str, str]:
        from tokenguard.errors import forbidden

        raise forbidden()

    return app


class Client:
    """httpx over the ASGI app, on one event loop (the app is the real middleware stack)."""

    def __init__(self, app: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self.loop.run_until_complete(self.client.get(url, **kw))

    def post(self, url: str, **kw: Any) -> httpx.Response:
        return self.loop.run_until_complete(self.client.post(url, **kw))

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()


@pytest.fixture(params=["install", "add_middleware"])
def client(request: pytest.FixtureRequest) -> Iterator[Client]:
    c = Client(fastapi_app(make_guard(), request.param))
    yield c
    c.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_optional_user_is_the_public_principal_without_a_token(client: Client) -> None:
    r = client.get("/who")
    assert (r.status_code, r.json()) == (200, {"user": None, "role": "public", "via": "public"})


def test_current_user_from_every_credential(client: Client) -> None:
    jwt = mint(id=USER_ID)
    assert client.get("/me", headers=bearer(jwt)).json() == {"user": USER_ID, "via": "jwt"}
    assert client.get("/me", headers=bearer(STATIC)).json() == {"user": USER_ID, "via": "static"}
    assert client.get("/me", params={"access_token": jwt}).json() == {"user": USER_ID, "via": "jwt"}
    login = client.post("/auth/login", json={"email": EMAIL, "password": PASSWORD, "mode": "session"})
    assert login.status_code == 200
    assert client.get("/me").json() == {"user": USER_ID, "via": "session"}  # the session cookie


def test_current_user_refuses_the_public_caller_as_directus(client: Client) -> None:
    r = client.get("/me")
    assert (r.status_code, r.content) == (401, INVALID_CREDENTIALS)
    assert r.headers["content-type"] == "application/json; charset=utf-8"


def test_a_bad_token_never_reaches_a_dependency(client: Client) -> None:
    from tests.helpers.tokens import OTHER_SECRET

    for path in ("/who", "/me", "/open"):
        r = client.get(path, headers=bearer(mint(secret=OTHER_SECRET)))
        assert (r.status_code, r.content) == (403, INVALID_TOKEN)


def test_require_role(client: Client) -> None:
    assert client.get("/editors", headers=bearer(mint(role="editor-role"))).json() == {"ok": "editors"}
    r = client.get("/editors", headers=bearer(mint(role="viewer-role")))
    assert (r.status_code, r.content) == (403, FORBIDDEN)
    assert client.get("/editors", headers=bearer(mint(role="viewer-role", admin_access=True))).status_code == 200
    r = client.get("/editors")
    assert (r.status_code, r.content) == (401, INVALID_CREDENTIALS)
    # admin_ok=False: the admin flag does not stand in for the role.
    r = client.get("/strict", headers=bearer(mint(role="viewer-role", admin_access=True)))
    assert (r.status_code, r.content) == (403, FORBIDDEN)
    assert client.get("/strict", headers=bearer(mint(role="other-role"))).status_code == 200


def test_security_scopes_are_the_principals(client: Client) -> None:
    r = client.get("/admins", headers=bearer(mint(id=USER_ID, admin_access=True)))
    assert (r.status_code, r.json()) == (200, {"user": USER_ID})
    r = client.get("/admins", headers=bearer(mint(id=USER_ID)))
    assert (r.status_code, r.content) == (403, FORBIDDEN)
    r = client.get("/admins")
    assert (r.status_code, r.content) == (401, INVALID_CREDENTIALS)
    good = bearer(mint(role="editor-role", app_access=True))
    assert client.get("/editor-app", headers=good).json() == {"ok": "editor-app"}
    r = client.get("/editor-app", headers=bearer(mint(role="editor-role", app_access=False)))
    assert (r.status_code, r.content) == (403, FORBIDDEN)
    r = client.get("/editor-app", headers=bearer(mint(role="viewer-role", app_access=True)))
    assert (r.status_code, r.content) == (403, FORBIDDEN)


def test_an_auth_error_the_endpoint_raises_is_answered_as_directus(client: Client) -> None:
    r = client.get("/raises", headers=bearer(mint()))
    assert (r.status_code, r.content) == (403, FORBIDDEN)
    assert r.headers["content-type"] == "application/json; charset=utf-8"


def test_the_openapi_schema_shows_a_bearer_scheme(client: Client) -> None:
    schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["directusToken"] == {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A Directus access token (JWT) or a user's static token.",
    }
    for path in ("/who", "/me", "/editors", "/strict"):
        assert schema["paths"][path]["get"]["security"] == [{"directusToken": []}], path
    assert "security" not in schema["paths"]["/open"]["get"]


def test_install_lists_the_auth_routes_in_the_openapi_document() -> None:
    c = Client(fastapi_app(make_guard(), "install"))
    try:
        schema = c.get("/openapi.json").json()
        docs = c.get("/docs")
    finally:
        c.close()
    for path in ("/auth/login", "/auth/refresh", "/auth/logout", "/auth/password/request"):
        assert path in schema["paths"], path
    login = schema["paths"]["/auth/login"]["post"]
    assert login["tags"] == ["auth"]
    assert login["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/LoginRequest"
    }
    assert "LoginRequest" in schema["components"]["schemas"]
    assert schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert "/me" in schema["paths"] and "/openapi.json" in docs.text


def test_document_auth_routes_beside_add_middleware() -> None:
    guard = make_guard()
    app = fastapi_app(guard, "add_middleware")
    c = Client(app)
    try:
        assert "/auth/login" not in c.get("/openapi.json").json()["paths"]
        app.openapi_schema = None  # FastAPI's cache of it
        document_auth_routes(app, guard)
        paths = c.get("/openapi.json").json()["paths"]
    finally:
        c.close()
    assert {"/auth/login", "/auth/refresh", "/me"} <= set(paths)
    assert paths["/auth/login"]["post"]["security"] == [{}, {"bearerAuth": []}, {"accessToken": []}, {"sessionCookie": []}]


class Error(BaseModel):
    """The app's own model, named as one of tokenguard's OpenAPI components."""

    mine: int


def test_the_apps_own_components_win_a_name_clash() -> None:
    guard = make_guard()
    app = FastAPI()
    install(app, guard)

    @app.get("/fails")
    async def fails() -> Error:
        return Error(mine=1)

    schema = app.openapi()
    assert schema is app.openapi()  # merged once, in place
    assert schema["components"]["schemas"]["Error"]["properties"] == {"mine": {"title": "Mine", "type": "integer"}}
    assert "errors" in schema["components"]["schemas"]["tokenguard_Error"]["properties"]
    login = schema["paths"]["/auth/login"]["post"]["responses"]["401"]["content"]["application/json"]
    assert login["schema"] == {"$ref": "#/components/schemas/tokenguard_Error"}


@given(value=st.text(max_size=300).map(lambda t: t.encode("utf-8").decode("latin-1")))
@settings(max_examples=150, deadline=None)
def test_any_authorization_header_is_answered_not_crashed(value: str) -> None:
    value = value.replace("\r", "").replace("\n", "").replace("\x00", "")
    c = Client(fastapi_app(make_guard()))
    try:
        r = c.get("/me", headers={"Authorization": value.encode("latin-1")})
    finally:
        c.close()
    assert r.status_code in (200, 400, 401, 403), (value, r.status_code, r.content)
    if r.status_code != 200:
        assert r.json()["errors"][0]["extensions"]["code"] in (
            "INVALID_CREDENTIALS",
            "INVALID_TOKEN",
            "TOKEN_EXPIRED",
            "INVALID_PAYLOAD",
        )


# -- Starlette's own authentication helpers ---------------------------------------------------


@requires("authenticated")
async def members(request: Request) -> JSONResponse:
    return JSONResponse({"name": request.user.display_name, "scopes": list(request.auth.scopes)})


@requires(["authenticated", "role:editor-role"])
async def editor_only(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


@requires("admin", status_code=401)
async def admin_only(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


def starlette_client() -> Client:
    app = Starlette(routes=[Route("/members", members), Route("/editor", editor_only), Route("/admin", admin_only)])
    return Client(TokenGuardMiddleware(app, guard=make_guard()))


def test_starlette_requires_reads_the_principal() -> None:
    c = starlette_client()
    try:
        r = c.get("/members", headers=bearer(mint(id=USER_ID, role="editor-role")))
        assert r.json() == {"name": USER_ID, "scopes": ["authenticated", "role:editor-role", "app"]}
        assert c.get("/members").status_code == 403  # the public caller has no scopes
        assert c.get("/editor", headers=bearer(mint(role="editor-role"))).status_code == 200
        assert c.get("/editor", headers=bearer(mint(role="viewer-role"))).status_code == 403
        assert c.get("/admin", headers=bearer(mint(admin_access=True))).status_code == 200
        assert c.get("/admin", headers=bearer(mint())).status_code == 401
    finally:
        c.close()


def test_principal_scopes() -> None:
    assert Principal(None, "public").scopes == ()
    assert Principal("u", None).scopes == ("authenticated",)
    full = Principal("u", "r", admin=True, app=True, via="jwt")
    assert full.scopes == ("authenticated", "role:r", "admin", "app")
    assert (full.display_name, full.identity) == ("u", "u")
    assert (Principal(None, "public").display_name, Principal(None, None).identity) == ("", "")


# -- under a real uvicorn ---------------------------------------------------------------------


@pytest.mark.parametrize("app", ["plain", "installed"])
def test_both_setups_answer_alike_under_uvicorn(app: str, tmp_path: Path) -> None:
    env = {"SECRET": SECRET, "TOKENGUARD_PUBLIC_ROLE": "public"}
    argv = [sys.executable, "-m", "uvicorn", f"tests.e2e.apps.fastapi_app:{app}", "--port", "{port}"]
    with serve(argv, env, tmp_path, ready_path="/ok") as server, httpx.Client(base_url=server.url) as http:
        r = http.get("/me")
        assert (r.status_code, r.content) == (401, INVALID_CREDENTIALS)
        assert r.headers["content-type"] == "application/json; charset=utf-8"
        r = http.get("/me", headers=bearer(mint(id=USER_ID, role="editor-role")))
        assert (r.status_code, r.json()) == (200, {"user": USER_ID, "role": "editor-role"})
        r = http.get("/admins", headers=bearer(mint(id=USER_ID)))
        assert (r.status_code, r.content) == (403, FORBIDDEN)
        r = http.get("/admins", headers=bearer(mint(id=USER_ID, admin_access=True)))
        assert (r.status_code, r.json()) == (200, {"user": USER_ID})
        paths = http.get("/openapi.json").json()["paths"]
        assert ("/auth/login" in paths) is (app == "installed")
    assert "500 Internal Server Error" not in server.output()
    assert "Traceback" not in server.output()
