"""Open WebSockets end with a revocation: a real uvicorn serving the ASGI middleware in a
thread, the ``websockets`` client, and revocations made the ways a server makes them (a
json-mode logout over HTTP; ``TokenGuard.revoke_user`` from another thread, as the
cross-process subscriber applies them).

- a realtime socket (``/websocket``) is told ``TOKEN_EXPIRED`` at once, hands no more frames
  to the app, and closes with ``AUTH_TIMEOUT`` unless the client re-authenticates (a
  refresh into what the user now is);
- an app's own socket (any other path) is closed with 4403 ``Token revoked.``, and the app
  receives ``websocket.disconnect``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.helpers.auth import FAST, SECRET
from tests.helpers.servers import free_port
from tokenguard import TokenGuard, TokenGuardMiddleware
from tokenguard.shells.asgi_ws import REVOKED_CODE, REVOKED_REASON
from tokenguard.stores.memory import MemorySessionStore, MemoryUserStore
from tokenguard.users import create_user, set_static_token

pytestmark = pytest.mark.e2e

EMAIL = "ws-revoked@example.com"
PASSWORD = "ws revoked horse battery staple"
#: How soon an idle socket must learn of a revocation (the wake-up is immediate; the poll
#: that backs it runs every second).
BOUND_S = 1.5


@dataclass
class Stack:
    url: str
    port: int
    core: TokenGuard
    users: MemoryUserStore
    user_id: str
    static: str
    #: What the app's own socket saw: ("disconnect", code) when told it ended.
    seen: list[tuple[str, Any]] = field(default_factory=list)


async def _app(scope: dict[str, Any], receive: Any, send: Any, seen: list[Any]) -> None:
    if scope["type"] == "http":
        user = getattr(scope.get("user"), "user", None)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": f"user={user}".encode()})
        return
    if scope["type"] != "websocket":
        return
    first = await receive()
    assert first["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            seen.append(("disconnect", message.get("code")))
            return
        principal = scope["state"]["user"]  # read per frame: the realtime path updates it
        reply = {"type": "echo", "message": message.get("text"), "user": principal.user,
                 "via": principal.via, "role": principal.role}  # fmt: skip
        await send({"type": "websocket.send", "text": json.dumps(reply)})


@pytest.fixture
def stack() -> Iterator[Stack]:
    port = free_port()
    users = MemoryUserStore()
    user = create_user(users, EMAIL, password=PASSWORD, role="editor")
    static = set_static_token(users, user.id)
    core = TokenGuard(
        secret=SECRET,
        users=users,
        sessions=MemorySessionStore(),
        passwords=FAST,
        flavour="async",
        login_stall_ms=0,
        websockets_enabled=True,
        websockets_rest_auth_timeout_s=1,
        websockets_heartbeat_enabled=False,
    )
    seen: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await _app(scope, receive, send, seen)

    server = uvicorn.Server(
        uvicorn.Config(
            TokenGuardMiddleware(app, guard=core),
            host="127.0.0.1", port=port, log_level="warning", lifespan="off",
        )
    )  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    try:
        yield Stack(f"http://127.0.0.1:{port}", port, core, users, user.id, static, seen)
    finally:
        server.should_exit = True
        thread.join(5)
        core.close()


def login(stack: Stack) -> dict[str, Any]:
    reply = httpx.post(
        stack.url + "/auth/login", json={"email": EMAIL, "password": PASSWORD, "mode": "json"}
    )
    assert reply.status_code == 200, reply.text
    return reply.json()["data"]  # type: ignore[no-any-return]


def logout(stack: Stack, refresh_token: str) -> None:
    reply = httpx.post(
        stack.url + "/auth/logout", json={"refresh_token": refresh_token, "mode": "json"}
    )
    assert reply.status_code == 204, reply.text


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


async def recv(ws: ClientConnection, timeout: float = 5) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))  # type: ignore[no-any-return]


async def closed_within(ws: ClientConnection, timeout: float) -> tuple[int | None, str | None]:
    """Wait for the server to close (no frame comes first); its close code and reason."""
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), timeout)
    return ws.close_code, ws.close_reason


def token_expired(uid: Any = None) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": "auth",
        "status": "error",
        "error": {"code": "TOKEN_EXPIRED", "message": "Token expired."},
    }
    if uid is not None:
        message["uid"] = uid
    return message


AUTH_TIMEOUT = {
    "type": "auth",
    "status": "error",
    "error": {"code": "AUTH_TIMEOUT", "message": "Authentication timed out."},
}


# -- the realtime path -------------------------------------------------------------------------


def test_a_logout_reaches_an_idle_realtime_socket_at_once(stack: Stack) -> None:
    tokens = login(stack)
    url = f"ws://127.0.0.1:{stack.port}/websocket?access_token={tokens['access_token']}"

    async def go() -> None:
        async with connect(url) as ws:
            await ws.send('{"type":"hello"}')
            assert (await recv(ws))["via"] == "jwt"
            started = time.monotonic()
            await asyncio.to_thread(logout, stack, tokens["refresh_token"])
            assert await recv(ws, timeout=BOUND_S) == token_expired()
            assert time.monotonic() - started < BOUND_S
            # Nothing more reaches the app for the revoked token.
            await ws.send('{"type":"subscribe","uid":"s1"}')
            assert await recv(ws) == token_expired("s1")
            # No new credential within WEBSOCKETS_REST_AUTH_TIMEOUT: closed, as on expiry.
            assert await recv(ws, timeout=3) == AUTH_TIMEOUT
            assert (await closed_within(ws, 3))[0] == 1000

    run(go())


def test_a_role_change_lapses_the_socket_and_a_refresh_brings_the_new_role(
    stack: Stack,
) -> None:
    tokens = login(stack)
    url = f"ws://127.0.0.1:{stack.port}/websocket?access_token={tokens['access_token']}"

    async def go() -> None:
        async with connect(url) as ws:
            await ws.send('{"type":"hello"}')
            assert (await recv(ws))["role"] == "editor"
            # The role changes, as a provider's group sync does; from another thread, as
            # the cross-process subscriber applies what other processes announce.
            before = stack.users.get_by_id(stack.user_id)
            after = stack.users.update(stack.user_id, role="viewer")
            assert before is not None and after is not None
            started = time.monotonic()
            await asyncio.to_thread(
                lambda: stack.core.revoke_user(stack.user_id)  # what user_changed decides
            )
            assert await recv(ws, timeout=BOUND_S) == token_expired()
            assert time.monotonic() - started < BOUND_S
            refresh = json.dumps({"type": "auth", "refresh_token": tokens["refresh_token"]})
            await ws.send(refresh)
            ok = await recv(ws)
            assert ok["status"] == "ok" and isinstance(ok["refresh_token"], str), ok
            await ws.send('{"type":"hello"}')
            assert (await recv(ws))["role"] == "viewer"
            await asyncio.sleep(1.5)  # past AUTH_TIMEOUT: the re-authenticated socket stays
            await ws.send('{"type":"hello"}')
            assert (await recv(ws))["via"] == "jwt"

    run(go())


def test_a_static_token_socket_lapses_when_its_user_is_revoked(stack: Stack) -> None:
    url = f"ws://127.0.0.1:{stack.port}/websocket?access_token={stack.static}"

    async def go() -> None:
        async with connect(url) as ws:
            await ws.send('{"type":"hello"}')
            assert (await recv(ws))["via"] == "static"
            await asyncio.to_thread(lambda: stack.core.revoke_user(stack.user_id))
            assert await recv(ws, timeout=BOUND_S) == token_expired()

    run(go())


def test_another_users_revocation_leaves_the_socket_alone(stack: Stack) -> None:
    tokens = login(stack)
    url = f"ws://127.0.0.1:{stack.port}/websocket?access_token={tokens['access_token']}"

    async def go() -> None:
        async with connect(url) as ws:
            await asyncio.to_thread(lambda: stack.core.revoke_user("someone-else"))
            await asyncio.to_thread(lambda: stack.core.revoke_session("another-session"))
            with pytest.raises(TimeoutError):
                await recv(ws, timeout=0.5)
            await ws.send('{"type":"hello"}')
            assert (await recv(ws))["via"] == "jwt"

    run(go())


# -- an app's own socket -------------------------------------------------------------------------


def test_a_logout_closes_an_apps_own_socket(stack: Stack) -> None:
    tokens = login(stack)
    url = f"ws://127.0.0.1:{stack.port}/chat?access_token={tokens['access_token']}"

    async def go() -> None:
        async with connect(url) as ws:
            await ws.send("hi")
            assert (await recv(ws))["user"] == stack.user_id
            started = time.monotonic()
            await asyncio.to_thread(logout, stack, tokens["refresh_token"])
            code, reason = await closed_within(ws, BOUND_S)
            assert time.monotonic() - started < BOUND_S
            assert (code, reason) == (REVOKED_CODE, REVOKED_REASON) == (4403, "Token revoked.")

    run(go())
    deadline = time.monotonic() + 2
    while not stack.seen and time.monotonic() < deadline:
        time.sleep(0.02)
    assert stack.seen == [("disconnect", 4403)]


def test_a_suspension_closes_an_apps_static_token_socket(stack: Stack) -> None:
    url = f"ws://127.0.0.1:{stack.port}/chat?access_token={stack.static}"

    async def go() -> None:
        async with connect(url) as ws:
            await ws.send("hi")
            assert (await recv(ws))["via"] == "static"
            await asyncio.to_thread(lambda: stack.core.revoke_user(stack.user_id))
            assert await closed_within(ws, BOUND_S) == (4403, "Token revoked.")

    run(go())


def test_public_sockets_and_other_users_sockets_stay_open(stack: Stack) -> None:
    tokens = login(stack)

    async def go() -> None:
        async with (
            connect(f"ws://127.0.0.1:{stack.port}/chat") as public,
            connect(f"ws://127.0.0.1:{stack.port}/chat?access_token={tokens['access_token']}") as own,
        ):
            await asyncio.to_thread(lambda: stack.core.revoke_user("someone-else"))
            await asyncio.sleep(0.3)
            for ws, user in ((public, None), (own, stack.user_id)):
                await ws.send("still there?")
                assert (await recv(ws))["user"] == user
            # Revoking its user closes the authenticated one only.
            await asyncio.to_thread(lambda: stack.core.revoke_user(stack.user_id))
            assert (await closed_within(own, BOUND_S))[0] == 4403
            await public.send("and now?")
            assert (await recv(public))["user"] is None

    run(go())
