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

Revocation (:mod:`tokenguard.guard.revocation`: a logout, a change of role or access, a
suspension, a password change...) reaches open sockets: each write to the registry wakes the
sockets of this process (:class:`RevocationWatch`; a poll every second where it cannot, and
every frame is checked anyway). A realtime socket is told ``TOKEN_EXPIRED`` and must
re-authenticate within ``WEBSOCKETS_REST_AUTH_TIMEOUT`` (as when its token expires); any other
socket is closed with code :data:`REVOKED_CODE` (``4403``, reason ``Token revoked.``) and its
app receives ``websocket.disconnect`` (a later ``send`` raises :class:`WebSocketClosed`).

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

import asyncio
import functools
import logging
import threading
import weakref
from collections.abc import Callable, MutableMapping
from types import GeneratorType
from typing import Any

import anyio

from ..app import TokenGuard
from ..auth.service import ClientInfo
from ..errors import AuthError, forbidden
from ..flow import run_async
from ..guard.pipeline import Pass, Refuse
from ..guard.revocation import Revocations
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

__all__ = [
    "REVOKED_CODE",
    "REVOKED_REASON",
    "RevocationWatch",
    "WebSocketAuth",
    "WebSocketClosed",
    "guarded_socket",
    "watch_for",
]

log = logging.getLogger("tokenguard.realtime")

Message = MutableMapping[str, Any]

#: Frames waiting for the app; beyond this the middleware stops reading (back-pressure).
APP_QUEUE = 64

#: The close code and reason of a socket whose token was revoked: 4403, the "Forbidden" of
#: Directus's GraphQL sockets (4000-4999 are the application's; 1008 would not say why).
REVOKED_CODE = 4403
REVOKED_REASON = "Token revoked."

#: How often an open socket looks at the registry when no wake-up can reach it (an event
#: loop other than asyncio's), and, as a safety net, when one can.
POLL_S = 1.0
SAFETY_POLL_S = 5.0


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


class RevocationWatch:
    """Wakes the open sockets of each asyncio event loop when a revocation is recorded.

    Registered once as a listener of a :class:`~tokenguard.guard.revocation.Revocations`
    (writes come from a request, the public API or the cross-process subscriber thread), it
    hands the wake-up to each loop that has sockets waiting (``call_soon_threadsafe``), so an
    idle socket learns of a revocation within milliseconds, at the cost of nothing while
    none happens. Each socket then checks its own principal: two dictionary lookups.
    """

    def __init__(self) -> None:
        self._events: dict[asyncio.AbstractEventLoop, asyncio.Event] = {}
        # Loops join from their own threads while a writer's thread notifies.
        self._lock = threading.Lock()

    def notify(self) -> None:
        """A revocation was recorded (any thread)."""
        with self._lock:
            loops = tuple(self._events)
        for loop in loops:
            try:
                loop.call_soon_threadsafe(self._wake, loop)
            except RuntimeError:  # the loop is closed: its sockets are gone with it
                with self._lock:
                    self._events.pop(loop, None)

    def _wake(self, loop: asyncio.AbstractEventLoop) -> None:
        # In the loop's thread: a fresh event for the next wait, the old one set.
        with self._lock:
            event = self._events.get(loop)
            self._events[loop] = asyncio.Event()
        if event is not None:
            event.set()

    async def wait(self, revocations: Revocations, seen: int) -> None:
        """Return once ``revocations`` has recorded anything since its version was ``seen``
        (at once if it has already), or after a poll interval at the latest."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not asyncio (trio): poll
            if revocations.version == seen:
                await anyio.sleep(POLL_S)
            return
        event = self._events.get(loop)
        if event is None:
            with self._lock:
                event = self._events[loop] = asyncio.Event()
        # The event is taken before the version is compared: a write after the comparison
        # schedules a wake-up that sets this event (or one that replaced it, set already).
        if revocations.version != seen:
            return
        with anyio.move_on_after(SAFETY_POLL_S):
            await event.wait()


_watches: weakref.WeakKeyDictionary[Revocations, RevocationWatch] = weakref.WeakKeyDictionary()


def watch_for(revocations: Revocations) -> RevocationWatch:
    """The one :class:`RevocationWatch` of ``revocations`` (made and registered once)."""
    watch = _watches.get(revocations)
    if watch is None:
        watch = _watches[revocations] = RevocationWatch()
        revocations.listeners.append(watch.notify)
    return watch


async def guarded_socket(
    app: ASGIApp,
    scope: Scope,
    receive: Receive,
    send: Send,
    principal: Principal,
    revocations: Revocations,
) -> None:
    """Run ``app`` on a WebSocket authenticated as ``principal`` at the upgrade, and close the
    socket (:data:`REVOKED_CODE`) when that principal's token is revoked: at once when the
    registry says so, else at the next frame either way. The public caller has nothing to
    lose: its socket is handed over untouched. A token naming a session but no user is
    watched too: its session can be revoked."""
    if principal.user is None and principal.sid is None:
        await app(scope, receive, send)
        return
    await _Guarded(app, scope, receive, send, principal, revocations).run()


class _Guarded:
    """One socket handed to the app, watched for the revocation of its principal."""

    def __init__(
        self,
        app: ASGIApp,
        scope: Scope,
        receive: Receive,
        send: Send,
        principal: Principal,
        revocations: Revocations,
    ) -> None:
        self.app = app
        self.scope = scope
        self.receive = receive
        self.send = send
        self.principal = principal
        self.revocations = revocations
        self.watch = watch_for(revocations)
        self.since = revocations.clock()
        self.accepted = False
        self.closed = False  # by the app, the client or a revocation: no more frames
        self._send_lock = anyio.Lock()
        self._to_app, self._from_reader = anyio.create_memory_object_stream[Message](APP_QUEUE)

    def _revoked(self) -> bool:
        return self.revocations.refuses_principal(self.principal, self.since)

    async def run(self) -> None:
        error: Exception | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._reader)
            tg.start_soon(self._watcher)
            try:
                await self.app(self.scope, self._app_receive, self._app_send)
            except Exception as exc:  # re-raised below, once the helpers are stopped
                error = exc
            tg.cancel_scope.cancel()
        if error is not None:
            raise error

    async def _reader(self) -> None:
        while True:
            try:
                message = await self.receive()
            except Exception:
                message = {"type": "websocket.disconnect", "code": 1006}
            try:
                await self._to_app.send(message)
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                return  # closed by a revocation: the app has been told
            if message["type"] == "websocket.disconnect":
                self.closed = True
                return

    async def _watcher(self) -> None:
        revocations = self.revocations
        seen = -1  # checked once at once: a revocation since the upgrade is not missed
        while not self.closed:
            await self.watch.wait(revocations, seen)
            seen = revocations.version  # read before the check: nothing falls in between
            if self._revoked():
                await self._close()
                return

    async def _close(self) -> None:
        if self.closed:
            return
        self.closed = True
        log.info("websocket closed: its token was revoked")
        message: Message = {"type": "websocket.close", "code": REVOKED_CODE}
        if self.accepted:
            message["reason"] = REVOKED_REASON
        else:
            message["code"] = 1008  # before the accept: the server answers the upgrade 403
        async with self._send_lock:
            try:
                await self.send(message)
            except Exception as exc:  # the client is gone already
                log.debug("websocket close failed: %s", type(exc).__name__)
        try:
            self._to_app.send_nowait({"type": "websocket.disconnect", "code": REVOKED_CODE})
        except (anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass  # the app is behind: it reads what is queued, then the end of the stream
        self._to_app.close()

    async def _app_receive(self) -> Message:
        try:
            message = await self._from_reader.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            return {"type": "websocket.disconnect", "code": REVOKED_CODE}
        if message["type"] == "websocket.receive" and self._revoked():
            await self._close()  # checked per frame too: never a frame for a revoked token
            return {"type": "websocket.disconnect", "code": REVOKED_CODE}
        return message

    async def _app_send(self, message: Message) -> None:
        if not self.closed and self._revoked():
            await self._close()
        if self.closed:
            if message["type"] == "websocket.close":
                return  # the app closing a socket already closed: nothing to do
            raise WebSocketClosed("the WebSocket is closed")
        kind = message["type"]
        if kind == "websocket.accept":
            self.accepted = True
        elif kind == "websocket.close" or kind == "websocket.http.response.body":
            self.closed = True
        async with self._send_lock:
            await self.send(message)


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
            await guarded_socket(
                app, scope, receive, send, decision.principal, self.core.guard.revocations
            )
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
                tg.start_soon(self._revocation_loop)
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

    async def _revocation_loop(self) -> None:
        revocations = self.conn.revocations
        watch = watch_for(revocations)
        seen = -1  # checked once at once: a revocation since the upgrade is not missed
        try:
            while not self.closed:
                await watch.wait(revocations, seen)
                seen = revocations.version  # read before the check: nothing falls in between
                await self._feed(self.conn.recheck)
        except Exception as exc:
            log.error("websocket revocation check failed: %s", type(exc).__name__)
            await self._close(1011)

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
