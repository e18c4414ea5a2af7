"""Realtime authentication end to end: the ``websockets`` client against the Starlette example
under a real uvicorn, in each ``WEBSOCKETS_REST_AUTH`` mode (spec §14.3's matrix, and what a
real Directus answered: directus-observed.md "Realtime (WebSocket) details").

The example echoes every frame it is handed as ``{"type":"echo","message":…,"user":…,"via":…}``,
so a test sees both what the middleware answered and what reached the app, with which
principal.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.helpers.servers import Server, serve
from tests.helpers.tokens import SECRET, mint

pytestmark = pytest.mark.e2e

EMAIL = "ws-admin@example.com"
PASSWORD = "ws correct horse battery staple"
STATIC = "ws-admin-static-token-Hd8Kq2Lm5Np7"
BASE_ENV = {
    "SECRET": SECRET,
    "ADMIN_EMAIL": EMAIL,
    "ADMIN_PASSWORD": PASSWORD,
    "ADMIN_TOKEN": STATIC,
    "LOGIN_STALL_TIME": "5",
    "WEBSOCKETS_ENABLED": "true",
    "WEBSOCKETS_REST_AUTH_TIMEOUT": "1",
    "WEBSOCKETS_HEARTBEAT_ENABLED": "false",
}
COMMAND = [sys.executable, "-m", "examples.starlette_app.app"]

HANDSHAKE_FAILED = {
    "type": "auth",
    "status": "error",
    "error": {"code": "AUTH_FAILED", "message": "Authentication handshake failed."},
}
INVALID_CREDENTIALS = {
    "errors": [
        {"message": "Invalid user credentials.", "extensions": {"code": "INVALID_CREDENTIALS"}}
    ]
}


def _server(tmp_path_factory: pytest.TempPathFactory, name: str, **env: str) -> Iterator[Server]:
    with serve(COMMAND, {**BASE_ENV, **env}, tmp_path_factory.mktemp(name)) as server:
        yield server


@pytest.fixture(scope="module")
def handshake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _server(tmp_path_factory, "handshake")


@pytest.fixture(scope="module")
def public(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _server(tmp_path_factory, "public", WEBSOCKETS_REST_AUTH="public")


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _server(tmp_path_factory, "strict", WEBSOCKETS_REST_AUTH="strict")


@pytest.fixture(scope="module")
def short(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Access tokens live 2 s, no leeway: expiry on an open socket."""
    yield from _server(tmp_path_factory, "short", ACCESS_TOKEN_TTL="2s", TOKENGUARD_JWT_LEEWAY="0")


@pytest.fixture(scope="module")
def heartbeat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _server(
        tmp_path_factory,
        "heartbeat",
        WEBSOCKETS_HEARTBEAT_ENABLED="true",
        WEBSOCKETS_HEARTBEAT_PERIOD="0.5",
    )


@pytest.fixture(scope="module")
def disabled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _server(tmp_path_factory, "disabled", WEBSOCKETS_ENABLED="false")


def ws_url(server: Server, query: str = "") -> str:
    return f"ws://127.0.0.1:{server.port}/websocket" + (f"?{query}" if query else "")


def login(server: Server) -> dict[str, Any]:
    reply = httpx.post(
        f"{server.url}/auth/login", json={"email": EMAIL, "password": PASSWORD, "mode": "json"}
    )
    assert reply.status_code == 200, reply.text
    return reply.json()["data"]  # type: ignore[no-any-return]


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 20))


async def recv(ws: ClientConnection, timeout: float = 5) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))  # type: ignore[no-any-return]


async def closed(ws: ClientConnection, timeout: float = 5) -> int | None:
    """Wait for the server to close; its close code."""
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    return ws.close_code


async def echo(ws: ClientConnection, text: str = '{"type":"hello"}') -> dict[str, Any]:
    await ws.send(text)
    return await recv(ws)


# -- handshake (the default) -------------------------------------------------------------------


def test_handshake_with_email_and_password(handshake: Server) -> None:
    async def go() -> None:
        async with connect(ws_url(handshake)) as ws:
            await ws.send(
                json.dumps({"type": "auth", "email": EMAIL, "password": PASSWORD, "uid": "u1"})
            )
            reply = await recv(ws)
            assert list(reply) == ["type", "status", "refresh_token", "uid"]
            assert (
                reply["status"] == "ok"
                and reply["uid"] == "u1"
                and len(reply["refresh_token"]) == 64
            )
            got = await echo(ws)
            assert got["via"] == "jwt" and got["user"] and got["message"] == '{"type":"hello"}'
            # The refresh token it handed out works on the REST side.
            r = httpx.post(
                f"{handshake.url}/auth/refresh",
                json={"mode": "json", "refresh_token": reply["refresh_token"]},
            )
            assert r.status_code == 200

    run(go())


def test_handshake_with_access_refresh_and_static_tokens(handshake: Server) -> None:
    tokens = login(handshake)

    async def go() -> None:
        async with connect(ws_url(handshake)) as ws:
            await ws.send(json.dumps({"type": "auth", "access_token": tokens["access_token"]}))
            assert await recv(ws) == {"type": "auth", "status": "ok"}
            await ws.send('{"type":"ping","uid":5}')
            assert await recv(ws) == {"type": "pong", "uid": 5}
            assert (await echo(ws))["via"] == "jwt"
        async with connect(ws_url(handshake)) as ws:
            await ws.send(json.dumps({"type": "auth", "refresh_token": tokens["refresh_token"]}))
            reply = await recv(ws)
            assert reply["status"] == "ok" and reply["refresh_token"] != tokens["refresh_token"]
        async with connect(ws_url(handshake)) as ws:
            await ws.send(json.dumps({"type": "auth", "access_token": STATIC}))
            assert await recv(ws) == {"type": "auth", "status": "ok"}
            assert (await echo(ws))["via"] == "static"

    run(go())


@pytest.mark.parametrize(
    "first",
    [
        '{"type":"ping"}',
        '{"type":"subscribe","collection":"articles"}',
        "not json",
        json.dumps({"type": "auth", "email": EMAIL, "password": "wrong"}),
        json.dumps({"type": "auth", "email": "invalidEmail", "password": "x"}),
        json.dumps({"type": "auth", "email": EMAIL}),
        json.dumps({"type": "auth", "access_token": "garbage"}),
        json.dumps({"type": "auth", "access_token": mint(exp=1_000_000_000)}),
    ],
)
def test_handshake_failures(handshake: Server, first: str) -> None:
    async def go() -> None:
        async with connect(ws_url(handshake)) as ws:
            await ws.send(first)
            assert await recv(ws) == HANDSHAKE_FAILED
            assert await closed(ws) == 1000

    run(go())


def test_handshake_timeout(handshake: Server) -> None:
    async def go() -> None:
        async with connect(ws_url(handshake)) as ws:
            assert await recv(ws, timeout=5) == HANDSHAKE_FAILED
            assert await closed(ws) == 1000

    run(go())


def test_query_token_skips_the_handshake(handshake: Server) -> None:
    tokens = login(handshake)

    async def go() -> None:
        for token, via in ((tokens["access_token"], "jwt"), (STATIC, "static")):
            async with connect(ws_url(handshake, f"access_token={token}")) as ws:
                assert (await echo(ws, '{"type":"ping"}')) == {"type": "pong"}
                assert (await echo(ws))["via"] == via
        async with connect(
            ws_url(handshake),
            additional_headers={"Authorization": f"Bearer {tokens['access_token']}"},
        ) as ws:
            assert (await echo(ws))["via"] == "jwt"

    run(go())


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("access_token=garbage", "INVALID_CREDENTIALS"),
        ("access_token=a&access_token=b", "INVALID_PAYLOAD"),
        (f"access_token={mint(exp=1_000_000_000)}", "TOKEN_EXPIRED"),
        (
            f"access_token={mint(secret='tg-other-Zx8Cv7Bn6Mq5Wr4Et3Yu2Io1Pa0SdFgHjKl')}",
            "INVALID_TOKEN",
        ),
    ],
)
def test_bad_query_token_is_a_401_at_upgrade(handshake: Server, query: str, code: str) -> None:
    async def go() -> None:
        with pytest.raises(InvalidStatus) as info:
            async with connect(ws_url(handshake, query)):
                pass
        response = info.value.response
        assert response.status_code == 401
        assert json.loads(response.body)["errors"][0]["extensions"]["code"] == code

    run(go())
    assert "access_token=" not in handshake.output()  # the query token never reaches the log


def test_session_cookie_upgrade(handshake: Server) -> None:
    reply = httpx.post(
        f"{handshake.url}/auth/login",
        json={"email": EMAIL, "password": PASSWORD, "mode": "session"},
    )
    cookie = reply.headers["set-cookie"].split(";")[0]

    async def go() -> None:
        async with connect(ws_url(handshake), additional_headers={"Cookie": cookie}) as ws:
            assert (await echo(ws))["via"] == "session"

    run(go())
    httpx.post(f"{handshake.url}/auth/logout", json={"mode": "session"}, headers={"Cookie": cookie})

    async def after_logout() -> None:
        with pytest.raises(InvalidStatus) as info:
            async with connect(ws_url(handshake), additional_headers={"Cookie": cookie}):
                pass
        assert info.value.response.status_code == 401

    run(after_logout())


def test_auth_frames_never_reach_the_app_and_reauth_works(handshake: Server) -> None:
    tokens = login(handshake)

    async def go() -> None:
        async with connect(ws_url(handshake)) as ws:
            await ws.send(json.dumps({"type": "auth", "access_token": tokens["access_token"]}))
            assert (await recv(ws))["status"] == "ok"
            await ws.send(json.dumps({"type": "auth", "access_token": STATIC, "uid": "again"}))
            assert await recv(ws) == {"type": "auth", "status": "ok", "uid": "again"}
            await ws.send(json.dumps({"type": "auth", "email": EMAIL}))  # malformed: no answer
            got = await echo(ws, '{"type":"after"}')
            assert got["message"] == '{"type":"after"}' and got["via"] == "static"
            await ws.send("{broken")
            assert (await recv(ws))["error"]["code"] == "INVALID_PAYLOAD"
            await ws.send(json.dumps({"type": "auth", "access_token": "garbage", "uid": 3}))
            assert await recv(ws) == {
                "type": "auth",
                "status": "error",
                "error": {"code": "AUTH_FAILED", "message": "Authentication failed."},
                "uid": 3,
            }
            assert await closed(ws) == 1000

    run(go())
    assert PASSWORD not in handshake.output()


def test_other_websocket_paths_are_authenticated_like_http(handshake: Server) -> None:
    async def go() -> None:
        with pytest.raises(InvalidStatus) as info:
            async with connect(f"ws://127.0.0.1:{handshake.port}/elsewhere?access_token=garbage"):
                pass
        assert info.value.response.status_code == 401
        assert json.loads(info.value.response.body) == INVALID_CREDENTIALS

    run(go())


# -- public and strict ---------------------------------------------------------------------------


def test_public_mode(public: Server) -> None:
    tokens = login(public)

    async def go() -> None:
        async with connect(ws_url(public)) as ws:
            assert await echo(ws, '{"type":"ping"}') == {"type": "pong"}
            got = await echo(ws)
            assert got["via"] == "public" and got["user"] is None
            await ws.send(json.dumps({"type": "auth", "access_token": tokens["access_token"]}))
            assert await recv(ws) == {"type": "auth", "status": "ok"}
            assert (await echo(ws))["via"] == "jwt"
            await ws.send(json.dumps({"type": "auth", "access_token": "garbage"}))
            assert (await recv(ws))["error"]["code"] == "AUTH_FAILED"
            assert (await echo(ws))["via"] == "public"  # still open, public again

    run(go())


def test_strict_mode(strict: Server) -> None:
    tokens = login(strict)

    async def go() -> None:
        with pytest.raises(InvalidStatus) as info:
            async with connect(ws_url(strict)):
                pass
        assert info.value.response.status_code == 401
        assert json.loads(info.value.response.body) == INVALID_CREDENTIALS
        async with connect(ws_url(strict, f"access_token={tokens['access_token']}")) as ws:
            assert await echo(ws, '{"type":"ping"}') == {"type": "pong"}
            assert (await echo(ws))["via"] == "jwt"

    run(go())


# -- expiry, heartbeat, disabled ---------------------------------------------------------------


def test_token_expiry_then_auth_timeout(short: Server) -> None:
    tokens = login(short)

    async def go() -> None:
        async with connect(ws_url(short)) as ws:
            await ws.send(json.dumps({"type": "auth", "access_token": tokens["access_token"]}))
            assert await recv(ws) == {"type": "auth", "status": "ok"}
            assert await recv(ws, timeout=5) == {
                "type": "auth",
                "status": "error",
                "error": {"code": "TOKEN_EXPIRED", "message": "Token expired."},
            }
            await ws.send('{"type":"subscribe","uid":"s"}')  # not passed on while expired
            assert (await recv(ws))["error"]["code"] == "TOKEN_EXPIRED"
            assert await recv(ws, timeout=5) == {
                "type": "auth",
                "status": "error",
                "error": {"code": "AUTH_TIMEOUT", "message": "Authentication timed out."},
            }
            assert await closed(ws) == 1000

    run(go())


def test_token_expiry_then_reauth(short: Server) -> None:
    async def go() -> None:
        async with connect(ws_url(short, f"access_token={login(short)['access_token']}")) as ws:
            assert (await recv(ws, timeout=5))["error"]["code"] == "TOKEN_EXPIRED"
            await ws.send(json.dumps({"type": "auth", "access_token": STATIC}))
            assert await recv(ws) == {"type": "auth", "status": "ok"}
            assert (await echo(ws))["via"] == "static"
            await asyncio.sleep(1.5)  # past AUTH_TIMEOUT: the socket stays
            assert (await echo(ws))["via"] == "static"

    run(go())


def test_heartbeat(heartbeat: Server) -> None:
    async def go() -> None:
        async with connect(ws_url(heartbeat, f"access_token={STATIC}")) as ws:
            for _ in range(3):  # answering keeps the socket
                assert await recv(ws) == {"type": "ping"}
                await ws.send('{"type":"pong"}')
            assert await recv(ws) == {"type": "ping"}
            assert await closed(ws) == 1000  # silence for a whole period: closed

    run(go())


def test_disabled_passes_websockets_through(disabled: Server) -> None:
    async def go() -> None:
        with pytest.raises((InvalidStatus, ConnectionClosed)):
            async with connect(ws_url(disabled, f"access_token={STATIC}")) as ws:
                await ws.recv()

    run(go())
