"""The ASGI shell under plain ASGI and under Starlette (add_middleware, request.state.user)."""

from __future__ import annotations

import asyncio
import json

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

from tests.helpers.tokens import OTHER_SECRET, SECRET, mint
from tokenguard import Principal, TokenGuardMiddleware
from tokenguard.integrations.starlette import require_role, require_user


async def whoami(request: Request) -> JSONResponse:
    p = request.state.user
    assert isinstance(p, Principal) and request.user is p
    return JSONResponse({"user": p.user, "role": request.state.role, "via": p.via})


@require_user
async def private(request: Request) -> JSONResponse:
    return JSONResponse({"user": request.state.user.user})


@require_role("editor-role", admin_ok=False)
def editors(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


async def ws(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("hello")
    await websocket.close()


def make_app() -> Starlette:
    app = Starlette(routes=[Route("/", whoami), Route("/private", private), Route("/editors", editors), WebSocketRoute("/ws", ws)])
    app.add_middleware(TokenGuardMiddleware, secret=SECRET, public_role="public")
    return app


def get(path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=make_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await client.get(path, headers=headers)

    return asyncio.run(go())


def test_public_principal_in_starlette_handler() -> None:
    r = get("/")
    assert r.status_code == 200
    assert r.json() == {"user": None, "role": "public", "via": "public"}


def test_jwt_principal_in_starlette_handler() -> None:
    r = get("/", {"Authorization": f"Bearer {mint()}"})
    assert r.json() == {"user": "8f0c2b1e-4c5d-4e6f-9a0b-1c2d3e4f5a6b", "role": "editor-role", "via": "jwt"}
    r = get(f"/?access_token={mint()}")
    assert r.json()["via"] == "jwt"


def test_refusal_is_directus_shaped() -> None:
    r = get("/", {"Authorization": f"Bearer {mint(secret=OTHER_SECRET)}"})
    assert r.status_code == 403
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    assert r.content == b'{"errors":[{"message":"Invalid token.","extensions":{"code":"INVALID_TOKEN"}}]}'
    r = get("/", {"Cookie": "directus_session_token=garbage"})
    assert r.status_code == 401
    assert r.headers["set-cookie"] == (
        "directus_session_token=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax"
    )


def test_require_user_and_role_helpers() -> None:
    r = get("/private")
    assert r.status_code == 401
    assert r.json() == {"errors": [{"message": "Invalid user credentials.", "extensions": {"code": "INVALID_CREDENTIALS"}}]}
    assert get("/private", {"Authorization": f"Bearer {mint()}"}).json() == {"user": "8f0c2b1e-4c5d-4e6f-9a0b-1c2d3e4f5a6b"}
    assert get("/editors", {"Authorization": f"Bearer {mint()}"}).json() == {"ok": True}
    r = get("/editors", {"Authorization": f"Bearer {mint(role='viewer', admin_access=True)}"})
    assert r.status_code == 403 and r.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"


def test_websocket_and_lifespan_pass_through() -> None:
    # The client's context runs lifespan startup/shutdown through the middleware.
    with TestClient(make_app()) as client, client.websocket_connect("/ws") as socket:
        assert socket.receive_text() == "hello"


def test_plain_asgi_app() -> None:
    seen: dict[str, object] = {}

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        seen["state"] = scope["state"]
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    middleware = TokenGuardMiddleware(app, secret=SECRET)
    messages: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        messages.append(message)

    token = mint()
    scope = {"type": "http", "method": "GET", "path": "/", "query_string": b"", "headers": [(b"authorization", f"Bearer {token}".encode())], "state": {"shared": 1}}
    asyncio.run(middleware(scope, receive, send))
    assert messages[0]["status"] == 204
    state = seen["state"]
    assert isinstance(state, dict) and state["shared"] == 1 and state["user"].via == "jwt"
    # Two Authorization headers are refused.
    messages.clear()
    scope["headers"] = [(b"authorization", f"Bearer {token}".encode())] * 2
    asyncio.run(middleware(scope, receive, send))
    assert messages[0]["status"] == 400
    assert json.loads(messages[1]["body"])["errors"][0]["extensions"]["code"] == "INVALID_PAYLOAD"
