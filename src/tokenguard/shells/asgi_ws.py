"""The ASGI shell for WebSocket scopes: the realtime state machine wired to a real socket.

Enabled by ``WEBSOCKETS_ENABLED``; :class:`~tokenguard.shells.asgi.TokenGuardMiddleware` hands
every ``websocket`` scope here. Two kinds of sockets:

- at ``WEBSOCKETS_REST_PATH`` (default ``/websocket``), Directus's realtime protocol: the
  middleware sits between the client and the app's handler, runs the handshake
  (:mod:`tokenguard.http.realtime`), consumes every ``auth``, ``ping`` and ``pong`` frame (they
  never reach the app, and are never logged), pushes ``TOKEN_EXPIRED``/``AUTH_TIMEOUT`` and
  the heartbeat, and passes every other frame through. In handshake mode it accepts the
  socket itself and starts the app only once the client has authenticated; the app's own
  ``websocket.accept`` is then swallowed (a subprotocol it chooses cannot be applied).
- any other path: authenticated at the upgrade exactly as an HTTP request is (a bad token is
  refused, no token is the public principal), then handed to the app untouched.

In both, the principal is in ``scope["state"]["user"]`` (``websocket.state.user``),
``scope["state"]["role"]`` and ``scope["user"]``; on the realtime path these are updated in
place when the socket re-authenticates or its token expires, so read them per message.
A refused upgrade is an HTTP 401 with a Directus error body when the server supports the
``websocket.http.response`` extension (uvicorn does), and a close before accept (which
servers answer with 403) otherwise. Stricter than Directus: an upgrade authenticated by the
session cookie from an untrusted ``Origin`` is refused (403 ``FORBIDDEN``, the CSRF policy of
:mod:`tokenguard.guard.csrf`), against cross-site WebSocket hijacking.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, MutableMapping
from types import GeneratorType
from typing import Any

import anyio

from ..app import TokenGuard
from ..auth.service import ClientInfo
from ..errors import AuthError, forbidden
from ..flow import run_async
from ..guard.pipeline import Pass, Refuse
from ..http.realtime import (
    CLOSE_CODE,
    Accept,
    Action,
    CancelTimer,
    Close,
    Connection,
    Deliver,
    Realtime,
    Reject,
    SendJSON,
    SetPrincipal,
    SetTimer,
    StartApp,
    TimerName,
)
from ..http.views import JSON_TYPE
from ..principal import Principal
from ..types import ASGIApp, Receive, Scope, Send
from .scope import read_scope, set_scope_query

__all__ = ["WebSocketAuth", "WebSocketClosed"]

log = logging.getLogger("tokenguard.realtime")

Message = MutableMapping[str, Any]

#: Frames waiting for the app; beyond this the middleware stops reading (back-pressure).
APP_QUEUE = 64


class WebSocketClosed(OSError):
    """Raised by ``send`` when the app writes to a socket the middleware has closed (ASGI asks
    servers to raise an ``OSError`` subclass there too)."""


def _set_principal(scope: Scope, state: dict[str, Any], principal: Principal) -> None:
    state["user"] = principal
    state["role"] = principal.role
    scope["user"] = principal
    scope["auth"] = principal


async def _refuse(
    scope: Scope, send: Send, status: int, error: AuthError, extra: list[tuple[str, str]]
) -> None:
    """Refuse an upgrade: a real HTTP response when the server can send one."""
    if "websocket.http.response" in (scope.get("extensions") or {}):
        body = error.body
        headers = [
            (b"content-type", JSON_TYPE.encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        headers.extend((n.encode(), v.encode("latin-1")) for n, v in extra)
        await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})


class WebSocketAuth:
    """Authentication for ``websocket`` scopes, built once per middleware: the request
    pipeline decides the upgrade; a realtime socket then runs its protocol here."""

    def __init__(self, core: TokenGuard) -> None:
        settings = core.settings
        self.core = core
        self.pipeline = core.pipeline
        self.realtime = Realtime(settings, core.guard, core.auth)
        self.limit = settings.websockets_rest_conn_limit
        self.connections = 0

    async def __call__(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        request = read_scope(scope, "https" if scope.get("scheme") in ("wss", "https") else "http")
        decision: Any = self.pipeline.upgrade(request)
        if type(decision) is GeneratorType:
            decision = await run_async(decision)
        if decision.query is not None:
            set_scope_query(scope, decision.query)
        if type(decision) is Refuse:
            error = decision.error
            await _refuse(scope, send, error.status, error, decision.headers)
            return
        if type(decision) is Pass:
            # Any other path: authenticated at the upgrade, as an HTTP request is.
            state = dict(scope.get("state") or ())
            _set_principal(scope, state, decision.principal)
            scope["state"] = state
            await app(scope, receive, send)
            return
        if self.limit is not None and self.connections >= self.limit:
            # Directus answers a raw 403 and drops the socket.
            await _refuse(scope, send, 403, forbidden(), [])
            return
        info = ClientInfo(
            request.peer, request.first_header("user-agent"), request.first_header("origin")
        )
        self.connections += 1
        try:
            socket = _Socket(app, scope, receive, send, self.realtime.connection(info))
            await socket.run(
                request.authorization, request.authorization_count, request.query, request.cookie
            )
        finally:
            self.connections -= 1


class _Socket:
    """One realtime socket: a reader task, a timer task and the app, around a
    :class:`~tokenguard.http.realtime.Connection`."""

    def __init__(
        self, app: ASGIApp, scope: Scope, receive: Receive, send: Send, conn: Connection
    ) -> None:
        self.app = app
        self.scope = scope
        self.receive = receive
        self.send = send
        self.conn = conn
        self.state: dict[str, Any] = dict(scope.get("state") or ())
        self.accepted = False
        self.closed = False  # no more frames either way
        self.run_app = False
        self.started = anyio.Event()  # the app may start, or never will
        self._send_lock = anyio.Lock()
        self._machine_lock = anyio.Lock()
        self._to_app, self._from_reader = anyio.create_memory_object_stream[Message](APP_QUEUE)
        self._timers: dict[TimerName, float] = {}
        self._timers_changed = anyio.Event()
        self._swallow_body = False

    async def run(
        self, authorization: str | None, count: int, query: str, cookie: str | None
    ) -> None:
        first = await self.receive()
        if first["type"] != "websocket.connect":
            return  # the client left before anything happened
        error: Exception | None = None
        async with anyio.create_task_group() as tg:
            await self._feed(
                functools.partial(
                    self.conn.connect, authorization, query, cookie, authorization_count=count
                )
            )
            if not self.closed:
                tg.start_soon(self._reader)
                tg.start_soon(self._timer_loop)
            await self.started.wait()
            if self.run_app:
                self.scope["state"] = self.state
                try:
                    await self.app(self.scope, self._app_receive, self._app_send)
                except Exception as exc:  # re-raised below, once the helpers are stopped
                    error = exc
            tg.cancel_scope.cancel()
        if error is not None:
            raise error

    # -- feeding the machine --------------------------------------------------------------

    async def _feed(self, event: Callable[[], Any]) -> None:
        deliver: list[Message] = []
        async with self._machine_lock:
            answer = event()
            actions: list[Action] = answer if isinstance(answer, list) else await run_async(answer)
            for action in actions:
                if isinstance(action, Deliver):
                    data = action.data
                    key = "text" if isinstance(data, str) else "bytes"
                    deliver.append({"type": "websocket.receive", key: data})
                else:
                    await self._execute(action)
        for message in deliver:  # outside the lock: a slow app must not stall the timers
            await self._to_app_send(message)

    async def _to_app_send(self, message: Message) -> None:
        try:
            await self._to_app.send(message)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass  # the socket closed meanwhile: the app has been told

    async def _execute(self, action: Action) -> None:
        if isinstance(action, SendJSON):
            if self.accepted and not self.closed:
                await self._raw_send({"type": "websocket.send", "text": action.text})
        elif isinstance(action, SetTimer):
            self._timers[action.name] = anyio.current_time() + action.seconds
            self._timers_changed.set()
        elif isinstance(action, CancelTimer):
            if self._timers.pop(action.name, None) is not None:
                self._timers_changed.set()
        elif isinstance(action, SetPrincipal):
            _set_principal(self.scope, self.state, action.principal)
        elif isinstance(action, StartApp):
            _set_principal(self.scope, self.state, action.principal)
            self._to_app.send_nowait({"type": "websocket.connect"})
            self.run_app = True
            self.started.set()
        elif isinstance(action, Accept):
            await self._raw_send({"type": "websocket.accept"})
            self.accepted = True
        elif isinstance(action, Close):
            await self._close(action.code)
        elif isinstance(action, Reject):
            self.closed = True
            await _refuse(self.scope, self._raw_send, action.status, action.error, [])
            self.started.set()

    async def _close(self, code: int) -> None:
        if self.closed:
            return
        self.closed = True
        self._timers.clear()
        await self._raw_send({"type": "websocket.close", "code": code})
        if self.run_app:
            try:
                self._to_app.send_nowait({"type": "websocket.disconnect", "code": code})
            except anyio.WouldBlock:
                pass  # the app is behind: it reads what is queued, then the end of the stream
            self._to_app.close()
        self.started.set()

    async def _raw_send(self, message: Message) -> None:
        async with self._send_lock:
            try:
                await self.send(message)
            except Exception as exc:  # the client is gone: nothing more to say to it
                log.debug("websocket send failed: %s", type(exc).__name__)
                self.closed = True

    # -- helper tasks -------------------------------------------------------------------------

    async def _reader(self) -> None:
        try:
            await self._read()
        except Exception as exc:  # a bug here must not surface as a traceback to anyone
            log.error("websocket reader failed: %s", type(exc).__name__)
            await self._close(1011)

    async def _read(self) -> None:
        while True:
            try:
                message = await self.receive()
            except Exception:
                message = {"type": "websocket.disconnect", "code": 1006}
            kind = message["type"]
            if kind == "websocket.receive":
                data = message.get("text")
                if data is None:
                    data = message.get("bytes") or b""
                await self._feed(functools.partial(self.conn.message, data))
            elif kind == "websocket.disconnect":
                async with self._machine_lock:
                    for action in self.conn.disconnected():
                        await self._execute(action)
                    was_closed, self.closed = self.closed, True
                if self.run_app and not was_closed:
                    await self._to_app_send(message)
                self.started.set()
                return

    async def _timer_loop(self) -> None:
        try:
            await self._timers_run()
        except Exception as exc:
            log.error("websocket timers failed: %s", type(exc).__name__)
            await self._close(1011)

    async def _timers_run(self) -> None:
        while True:
            changed = self._timers_changed = anyio.Event()
            if not self._timers:
                await changed.wait()
                continue
            name = min(self._timers, key=self._timers.__getitem__)
            delay = self._timers[name] - anyio.current_time()
            if delay > 0:
                with anyio.move_on_after(delay):
                    await changed.wait()
                continue
            del self._timers[name]
            await self._feed(functools.partial(self.conn.timer, name))

    # -- what the app sees --------------------------------------------------------------------

    async def _app_receive(self) -> Message:
        try:
            return await self._from_reader.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            return {"type": "websocket.disconnect", "code": CLOSE_CODE}

    async def _app_send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "websocket.accept":
            if not self.accepted:  # handshake mode: the middleware accepted already
                await self._raw_send(message)
                self.accepted = True
            return
        if kind == "websocket.http.response.start" and self.accepted:
            # The app refuses a socket the middleware has already accepted: close it instead.
            self._swallow_body = True
            await self._close(CLOSE_CODE)
            return
        if kind == "websocket.http.response.body" and self._swallow_body:
            return
        if self.closed:
            raise WebSocketClosed("the WebSocket is closed")
        if kind == "websocket.close":
            async with self._machine_lock:
                for action in self.conn.disconnected():
                    await self._execute(action)
                self.closed = True
            async with self._send_lock:
                await self.send(message)
            return
        async with self._send_lock:
            await self.send(message)
