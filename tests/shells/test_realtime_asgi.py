"""The ASGI WebSocket shell in-process: what the app sees, what the server is sent, and the
edges a real server rarely shows (no ``websocket.http.response`` extension, an app that
raises, writes after the middleware closed, refuses a socket, or never reads)."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest

from tests.helpers.auth import FAST, ROLE, SECRET, USER_ID, make_user
from tokenguard import TokenGuard, TokenGuardMiddleware
from tokenguard.config import token_policy
from tokenguard.jose.tokens import issue_access_token
from tokenguard.shells.asgi_ws import WebSocketClosed
from tokenguard.stores.memory import MemorySessionStore, MemoryUserStore

pytestmark = pytest.mark.anyio

STATIC = "static-token-for-asgi-ws-tests-0123456789"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_core(**settings: Any) -> TokenGuard:
    from tokenguard.jose.tokens import hash_token

    users = MemoryUserStore()
    users.create(make_user(token_hash=hash_token(STATIC)))
    settings.setdefault("websockets_enabled", True)
    settings.setdefault("websockets_heartbeat_enabled", False)
    return TokenGuard(
        secret=SECRET,
        users=users,
        sessions=MemorySessionStore(),
        flavour="async",
        passwords=FAST,
        login_stall_ms=0,
        **settings,
    )


def token(core: TokenGuard, ttl_s: float = 900) -> str:
    return issue_access_token(
        token_policy(core.settings),
        user_id=USER_ID,
        role=ROLE,
        app_access=True,
        admin_access=False,
        ttl_ms=int(ttl_s * 1000),
        now=core.clock(),
    )


class FakeServer:
    """The server side of one socket: frames in, messages out."""

    def __init__(
        self, path: str = "/websocket", query: bytes = b"", extension: bool = True
    ) -> None:
        self.scope: dict[str, Any] = {
            "type": "websocket",
            "path": path,
            "raw_path": path.encode() + (b"?" + query if query else b""),
            "query_string": query,
            "headers": [(b"user-agent", b"pytest")],
            "client": ("127.0.0.1", 5000),
            "extensions": {"websocket.http.response": {}} if extension else {},
            "state": {"lifespan": "kept"},
        }
        self.inbox, self._incoming = anyio.create_memory_object_stream[dict[str, Any]](100)
        self.sent: list[dict[str, Any]] = []
        self.inbox.send_nowait({"type": "websocket.connect"})

    async def receive(self) -> dict[str, Any]:
        return await self._incoming.receive()

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    def frame(self, text: str) -> None:
        self.inbox.send_nowait({"type": "websocket.receive", "text": text})

    def leave(self) -> None:
        self.inbox.send_nowait({"type": "websocket.disconnect", "code": 1001})

    def texts(self) -> list[Any]:
        return [json.loads(m["text"]) for m in self.sent if m["type"] == "websocket.send"]

    def types(self) -> list[str]:
        return [m["type"] for m in self.sent]


class EchoApp:
    """Records what it sees and echoes each frame with the current principal."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.scope: dict[str, Any] | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.scope = scope
        message = await receive()
        self.seen.append(message)
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            self.seen.append(message)
            if message["type"] == "websocket.disconnect":
                return
            principal = scope["state"]["user"]
            reply = {"echo": message.get("text"), "via": principal.via}
            await send({"type": "websocket.send", "text": json.dumps(reply)})


async def run(app: Any, core: TokenGuard, server: FakeServer) -> None:
    middleware = TokenGuardMiddleware(app, guard=core)
    with anyio.fail_after(5):
        await middleware(server.scope, server.receive, server.send)


async def test_handshake_the_app_starts_only_after_auth_and_never_sees_auth_frames() -> None:
    core = make_core()
    app = EchoApp()
    server = FakeServer()
    server.frame(json.dumps({"type": "auth", "access_token": STATIC, "uid": 1}))
    server.frame('{"type":"hello"}')
    server.frame(json.dumps({"type": "auth", "access_token": token(core)}))
    server.frame('{"type":"again"}')
    server.leave()
    await run(app, core, server)
    # One accept (the middleware's); the app's own was swallowed.
    assert server.types().count("websocket.accept") == 1 and server.types()[0] == "websocket.accept"
    assert server.texts() == [
        {"type": "auth", "status": "ok", "uid": 1},
        {"echo": '{"type":"hello"}', "via": "static"},
        {"type": "auth", "status": "ok"},
        {"echo": '{"type":"again"}', "via": "jwt"},
    ]
    assert [m["type"] for m in app.seen] == [
        "websocket.connect",
        "websocket.receive",
        "websocket.receive",
        "websocket.disconnect",
    ]
    assert app.scope is not None and app.scope["state"]["lifespan"] == "kept"
    assert app.scope["user"].via == "jwt" and app.scope["state"]["role"] == ROLE


async def test_a_failed_handshake_never_starts_the_app() -> None:
    core = make_core()
    app = EchoApp()
    server = FakeServer()
    server.frame('{"type":"ping"}')
    await run(app, core, server)
    assert app.scope is None
    assert server.types() == ["websocket.accept", "websocket.send", "websocket.close"]
    assert server.texts()[0]["error"]["code"] == "AUTH_FAILED"


async def test_upgrade_refusal_without_the_response_extension_is_a_close() -> None:
    core = make_core(websockets_rest_auth="strict")
    server = FakeServer(extension=False)
    await run(EchoApp(), core, server)
    assert server.sent == [{"type": "websocket.close", "code": 1008}]


async def test_upgrade_refusal_is_a_401_with_a_directus_body() -> None:
    core = make_core()
    server = FakeServer(query=b"access_token=garbage&x=1")
    await run(EchoApp(), core, server)
    start, body = server.sent
    assert start["type"] == "websocket.http.response.start" and start["status"] == 401
    assert json.loads(body["body"])["errors"][0]["extensions"]["code"] == "INVALID_CREDENTIALS"
    assert server.scope["query_string"] == b"x=1"  # the token is gone from what gets logged
    assert b"access_token" not in server.scope["raw_path"]


async def test_app_exceptions_propagate_unwrapped() -> None:
    core = make_core()

    async def broken(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        raise LookupError("app bug")

    server = FakeServer(query=f"access_token={STATIC}".encode())
    with pytest.raises(LookupError, match="app bug"):
        await run(broken, core, server)


async def test_writing_after_the_middleware_closed_raises() -> None:
    core = make_core()
    errors: list[BaseException] = []

    async def writer(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        assert (await receive())["type"] == "websocket.disconnect"
        try:
            await send({"type": "websocket.send", "text": "late"})
        except WebSocketClosed as exc:
            errors.append(exc)

    server = FakeServer()
    server.frame(json.dumps({"type": "auth", "access_token": STATIC}))
    server.frame(json.dumps({"type": "auth", "access_token": "garbage"}))  # fails: closed
    await run(writer, core, server)
    assert len(errors) == 1
    assert server.types()[-1] == "websocket.close"


async def test_the_app_may_refuse_an_accepted_handshake_socket() -> None:
    core = make_core()

    async def refuser(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.http.response.start", "status": 403, "headers": []})
        await send({"type": "websocket.http.response.body", "body": b""})

    server = FakeServer()
    server.frame(json.dumps({"type": "auth", "access_token": STATIC}))
    await run(refuser, core, server)
    assert server.types() == ["websocket.accept", "websocket.send", "websocket.close"]


async def test_the_app_closing_stops_everything() -> None:
    core = make_core(websockets_heartbeat_enabled=True, websockets_heartbeat_period_s=0.05)

    async def closer(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 4000})

    server = FakeServer(query=f"access_token={STATIC}".encode())
    await run(closer, core, server)
    assert server.types() == ["websocket.accept", "websocket.close"]


async def test_expiry_on_a_live_socket() -> None:
    core = make_core(websockets_rest_auth_timeout_s=0.05, leeway_ms=0)
    app = EchoApp()
    server = FakeServer(query=f"access_token={token(core, ttl_s=1)}".encode())
    await run(app, core, server)
    codes = [t.get("error", {}).get("code") for t in server.texts()]
    assert codes == ["TOKEN_EXPIRED", "AUTH_TIMEOUT"]
    assert server.types()[-1] == "websocket.close"
    assert app.seen[-1]["type"] == "websocket.disconnect"
    assert app.scope is not None and app.scope["user"].via == "public"


async def test_connection_limit() -> None:
    core = make_core(websockets_rest_conn_limit=0)
    server = FakeServer()
    await run(EchoApp(), core, server)
    assert server.sent[0]["status"] == 403


async def test_other_paths_are_authenticated_at_upgrade_and_passed_through() -> None:
    core = make_core()
    app = EchoApp()
    server = FakeServer(path="/chat", query=f"access_token={STATIC}".encode())
    server.frame('{"type":"auth","access_token":"x"}')  # not our protocol here: passed on
    server.leave()
    await run(app, core, server)
    assert server.texts() == [{"echo": '{"type":"auth","access_token":"x"}', "via": "static"}]
    server = FakeServer(path="/chat")
    server.leave()
    app = EchoApp()
    await run(app, core, server)
    assert app.scope is not None and app.scope["user"].via == "public"


async def test_disabled_passes_through_untouched() -> None:
    core = make_core(websockets_enabled=False)
    app = EchoApp()
    server = FakeServer(query=b"access_token=garbage")
    server.leave()
    await run(app, core, server)
    assert app.scope is not None and "user" not in app.scope["state"]


async def test_a_close_while_the_app_is_behind_still_reaches_it() -> None:
    core = make_core(websockets_rest_auth_timeout_s=0.05, leeway_ms=0)
    got: list[str] = []

    async def slow(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await anyio.sleep(2.5)  # meanwhile the queue fills and the token expires
        while True:
            message = await receive()
            got.append(message["type"])
            if message["type"] == "websocket.disconnect":
                return

    server = FakeServer(query=f"access_token={token(core, ttl_s=1)}".encode())
    for i in range(90):
        server.frame(json.dumps({"type": "n", "i": i}))
    await run(slow, core, server)
    assert got[-1] == "websocket.disconnect" and got.count("websocket.disconnect") == 1
    assert 0 < got.count("websocket.receive") <= 90
    assert [t["error"]["code"] for t in server.texts()] == ["TOKEN_EXPIRED", "AUTH_TIMEOUT"]


@pytest.mark.parametrize("path", ["/websocket", "/chat"])
async def test_cross_site_upgrades_with_the_session_cookie_are_refused(path: str) -> None:
    from tests.helpers.auth import EMAIL, PASSWORD
    from tokenguard.auth.service import ClientInfo, Credentials
    from tokenguard.flow import run_async

    core = make_core()
    tokens = await run_async(
        core.auth.login(Credentials(EMAIL, PASSWORD), "session", ClientInfo(), 0.0)
    )
    cookie = f"directus_session_token={tokens.access_token}".encode()
    outcomes = {}
    for origin in (b"https://evil.example", b"http://app.example", None):
        server = FakeServer(path=path)
        server.scope["headers"] += [(b"cookie", cookie), (b"host", b"app.example")]
        if origin is not None:
            server.scope["headers"].append((b"origin", origin))
        server.leave()
        app = EchoApp()
        await run(app, core, server)
        outcomes[origin] = server.sent[0].get("status") if app.scope is None else "app"
    assert outcomes == {b"https://evil.example": 403, b"http://app.example": "app", None: "app"}
    # A token in the URL is not something a foreign page can borrow: no origin check.
    server = FakeServer(path=path, query=f"access_token={STATIC}".encode())
    server.scope["headers"].append((b"origin", b"https://evil.example"))
    server.leave()
    app = EchoApp()
    await run(app, core, server)
    assert app.scope is not None


# -- revocation ----------------------------------------------------------------------------------


async def _after_first_echo(app: EchoApp, core: TokenGuard, server: FakeServer, then: Any) -> None:
    """Run the socket; once the app has echoed a frame, revoke without waking the socket
    (no listener: as between two polls where no wake-up can reach it), then ``then()``."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(run, app, core, server)
        with anyio.fail_after(5):
            while not server.texts():
                await anyio.sleep(0.01)
        revocations = core.guard.revocations
        revocations.listeners.clear()
        revocations.revoke_user(USER_ID)
        then()


async def test_a_frame_after_a_revocation_closes_an_apps_socket_and_is_not_delivered() -> None:
    core = make_core()
    app = EchoApp()
    server = FakeServer("/chat", f"access_token={token(core)}".encode())
    server.frame("one")
    await _after_first_echo(app, core, server, lambda: server.frame("two"))
    assert server.texts() == [{"echo": "one", "via": "jwt"}]
    assert server.sent[-1] == {"type": "websocket.close", "code": 4403, "reason": "Token revoked."}
    assert app.seen[-1] == {"type": "websocket.disconnect", "code": 4403}
    assert "two" not in json.dumps(app.seen)


async def test_a_frame_after_a_revocation_lapses_a_realtime_socket() -> None:
    core = make_core()
    app = EchoApp()
    server = FakeServer("/websocket", f"access_token={token(core)}".encode())
    server.frame('{"type":"hello"}')

    def then() -> None:
        server.frame('{"type":"subscribe","uid":"u1"}')
        server.leave()

    await _after_first_echo(app, core, server, then)
    expired = {"code": "TOKEN_EXPIRED", "message": "Token expired."}
    assert server.texts() == [
        {"echo": '{"type":"hello"}', "via": "jwt"},
        {"type": "auth", "status": "error", "error": expired, "uid": "u1"},
    ]
    assert "subscribe" not in json.dumps(app.seen)


async def test_a_write_after_a_revocation_raises_and_sends_nothing() -> None:
    core = make_core()
    server = FakeServer("/chat", f"access_token={token(core)}".encode())
    raised: list[BaseException] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        core.guard.revocations.listeners.clear()
        core.guard.revocations.revoke_user(USER_ID)
        try:
            await send({"type": "websocket.send", "text": "for the revoked user"})
        except WebSocketClosed as exc:
            raised.append(exc)

    await run(app, core, server)
    assert len(raised) == 1
    assert server.sent == [
        {"type": "websocket.accept"},
        {"type": "websocket.close", "code": 4403, "reason": "Token revoked."},
    ]


async def test_a_socket_of_a_token_with_a_session_but_no_user_closes_when_it_is_revoked() -> None:
    # check_claims accepts a JWT with a sid and no id; the request path refuses it once its
    # session is revoked, so its socket must not be handed over unwatched.
    import jwt as pyjwt

    core = make_core()
    now = int(core.clock())
    sid = "s9-family-0000000000000"
    lone = pyjwt.encode(
        {"role": ROLE, "app_access": True, "admin_access": False, "iat": now, "exp": now + 900,
         "iss": "directus", "sid": sid},
        core.settings.secret,
        algorithm="HS256",
    )
    app = EchoApp()
    server = FakeServer("/chat", f"access_token={lone}".encode())
    server.frame("one")

    def then() -> None:
        core.guard.revocations.revoke_session(sid)
        server.frame("two")

    await _after_first_echo(app, core, server, then)
    assert server.texts() == [{"echo": "one", "via": "jwt"}]
    assert server.sent[-1] == {"type": "websocket.close", "code": 4403, "reason": "Token revoked."}
    assert "two" not in json.dumps(app.seen)
