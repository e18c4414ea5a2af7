"""Directus's realtime (WebSocket) authentication as a sans-IO state machine.

One :class:`Connection` per socket. It is fed events — the upgrade request
(:meth:`Connection.connect`), each client frame (:meth:`Connection.message`), a timer that
fired (:meth:`Connection.timer`) — and answers with a list of :data:`Action` values for a
shell to carry out: accept the socket, start the app with a principal, send a JSON frame,
close, refuse the upgrade, hand a frame to the app, (re)arm or cancel a timer. An event that
needs a store (a static token, a login, a refresh) answers with a
:data:`~tokenguard.flow.Flow` producing that list, so that one logic serves every store, as
for HTTP. Nothing here does I/O, reads a clock it was not given, or logs a frame: ``auth``
frames carry passwords and tokens.

The three modes are Directus's ``WEBSOCKETS_REST_AUTH`` (spec §14, and what a real Directus
answered, which wins):

``public``
    the socket opens at once with the public principal; ``auth`` frames upgrade it.
``handshake`` (default)
    the socket opens, and its first frame must be an ``auth`` frame that authenticates,
    within ``WEBSOCKETS_REST_AUTH_TIMEOUT`` seconds; otherwise ``AUTH_FAILED`` and close.
    The app is only started once it has.
``strict``
    the upgrade request itself must carry a token; otherwise the upgrade is refused (401).

In every mode an upgrade that carries a token (``?access_token=``, ``Authorization:
Bearer``, the session cookie) is authenticated at upgrade time, and a bad one is refused.
Later ``auth`` frames re-authenticate the socket; when the token's ``exp`` passes, the client
is told ``TOKEN_EXPIRED`` and has ``WEBSOCKETS_REST_AUTH_TIMEOUT`` seconds to send a new
``auth`` frame before ``AUTH_TIMEOUT`` and close (in public mode it drops to public).

Stricter than Directus, on purpose: while a socket waits for re-authentication after its
token expired, frames other than ``auth`` are not handed to the app (the client gets the
``TOKEN_EXPIRED`` message back, with its ``uid``), and the app sees the public principal. A
socket opened with the session cookie has its session checked again at every heartbeat: a
logout reaches it within ``WEBSOCKETS_HEARTBEAT_PERIOD`` (as ``TOKEN_EXPIRED``), instead of
when the cookie's JWT expires. And a socket whose token is revoked
(:mod:`tokenguard.guard.revocation`: a logout, a change of role, a suspension...) lapses as
an expired one does, as soon as the shell learns of it (:meth:`Connection.recheck`) or at the
next frame at the latest.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Generator
from dataclasses import dataclass
from types import GeneratorType
from typing import Any, Literal

from ..auth.service import AuthService, ClientInfo, Credentials, Tokens
from ..config import Settings
from ..errors import AuthError, invalid_credentials
from ..flow import Call, Flow
from ..guard.decide import Guard, Refusal
from ..guard.extract import Extracted
from ..guard.revocation import Revocations
from ..principal import Principal
from ..stores.base import refresh_token_key

__all__ = [
    "Accept",
    "Action",
    "CancelTimer",
    "Close",
    "Connection",
    "Deliver",
    "Realtime",
    "Reject",
    "SendJSON",
    "SetPrincipal",
    "SetTimer",
    "StartApp",
]

log = logging.getLogger("tokenguard.realtime")

Mode = Literal["public", "handshake", "strict"]
TimerName = Literal["handshake", "expiry", "reauth", "heartbeat"]

#: The close code sent with every close the middleware decides on. Directus closes with no
#: status (1005 on the client), which an ASGI server cannot send; 1000 is the nearest.
CLOSE_CODE = 1000


# -- actions -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Accept:
    """Accept the socket (handshake mode: before the app runs)."""


@dataclass(frozen=True, slots=True)
class StartApp:
    """Run the app's WebSocket handler with ``principal`` in its scope."""

    principal: Principal


@dataclass(frozen=True, slots=True)
class SetPrincipal:
    """The socket now speaks for ``principal`` (re-authentication, expiry)."""

    principal: Principal


@dataclass(frozen=True, slots=True)
class SendJSON:
    """Send ``text`` (a JSON message) to the client."""

    text: str


@dataclass(frozen=True, slots=True)
class Close:
    """Close the socket."""

    code: int = CLOSE_CODE


@dataclass(frozen=True, slots=True)
class Reject:
    """Refuse the upgrade with an HTTP 401 (Directus's raw ``401 Unauthorized``); ``error``
    is the Directus error that caused it, for the body."""

    error: AuthError
    status: int = 401


@dataclass(frozen=True, slots=True)
class Deliver:
    """Hand the client frame ``data`` (as received) to the app."""

    data: str | bytes


@dataclass(frozen=True, slots=True)
class SetTimer:
    """Fire :meth:`Connection.timer` with ``name`` after ``seconds`` (replaces an armed one)."""

    name: TimerName
    seconds: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    name: TimerName


Action = (
    Accept | StartApp | SetPrincipal | SendJSON | Close | Reject | Deliver | SetTimer | CancelTimer
)
Answer = list[Action]


# -- messages (Directus's wire format) ---------------------------------------------------------


def _dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def auth_ok(uid: Any = None, refresh_token: str | None = None) -> str:
    """``{"type":"auth","status":"ok"}`` with the ``uid`` and rotated refresh token, if any."""
    message: dict[str, Any] = {"type": "auth", "status": "ok"}
    if refresh_token is not None:
        message["refresh_token"] = refresh_token
    if uid is not None:
        message["uid"] = uid
    return _dumps(message)


def auth_error(code: str, message: str, uid: Any = None) -> str:
    """A ``{"type":"auth","status":"error","error":{code,message}}`` message (``uid`` last)."""
    out: dict[str, Any] = {
        "type": "auth",
        "status": "error",
        "error": {"code": code, "message": message},
    }
    if uid is not None:
        out["uid"] = uid
    return _dumps(out)


HANDSHAKE_FAILED = auth_error("AUTH_FAILED", "Authentication handshake failed.")
AUTH_TIMEOUT = auth_error("AUTH_TIMEOUT", "Authentication timed out.")
TOKEN_EXPIRED = auth_error("TOKEN_EXPIRED", "Token expired.")
UNPARSABLE = _dumps(
    {
        "type": "server",
        "status": "error",
        "error": {"code": "INVALID_PAYLOAD", "message": "Unable to parse the incoming message."},
    }
)
PING = _dumps({"type": "ping"})


def too_many_messages(ms_before_next: int) -> str:
    """The frame Directus answers a message over the per-connection rate limit with."""
    message = f"Too many messages, retry after {ms_before_next}ms."
    error = {"code": "REQUESTS_EXCEEDED", "message": message}
    return _dumps({"type": "server", "status": "error", "error": error})


def _pong(uid: Any) -> str:
    return _dumps({"type": "pong", "uid": uid} if uid is not None else {"type": "pong"})


def parse_message(data: str | bytes) -> dict[str, Any] | None:
    """A client frame as Directus's ``WebSocketMessage`` reads it: a JSON object whose
    ``type`` is a string and whose ``uid``, if present, a string or a number. ``None`` when
    the frame is not one."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            return None
    try:
        message = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return None
    if "uid" in message and not _is_uid(message["uid"]):
        return None
    return message


def _is_uid(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, (str, int))


@dataclass(frozen=True, slots=True)
class _AuthFrame:
    """The credentials of a well-formed ``auth`` frame (never shown in a repr)."""

    access_token: str | None
    refresh_token: str | None
    email: str | None
    password: str | None

    def __repr__(self) -> str:
        return "_AuthFrame(<redacted>)"


def _auth_frame(message: dict[str, Any]) -> _AuthFrame | None:
    """Directus's ``WebSocketAuthMessage``: at least one of ``access_token``,
    ``refresh_token`` or ``email`` + ``password``, each a string."""
    fields: dict[str, str | None] = {}
    for name in ("access_token", "refresh_token", "email", "password"):
        value = message.get(name)
        if value is not None and not isinstance(value, str):
            return None
        fields[name] = value
    login = fields["email"] is not None and fields["password"] is not None
    if fields["access_token"] is None and fields["refresh_token"] is None and not login:
        return None
    if not login:
        fields["email"] = fields["password"] = None
    return _AuthFrame(**fields)


# -- the machine ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Authenticated:
    principal: Principal
    refresh_token: str | None


class Realtime:
    """What every connection shares: settings, the guard and the auth service."""

    def __init__(
        self,
        settings: Settings,
        guard: Guard,
        service: AuthService,
        *,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.settings = settings
        self.guard = guard
        self.service = service
        self.clock = clock if clock is not None else guard.clock
        self.mode: Mode = settings.websockets_rest_auth  # type: ignore[assignment]
        self.auth_timeout = float(settings.websockets_rest_auth_timeout_s)
        self.heartbeat = (
            float(settings.websockets_heartbeat_period_s)
            if settings.websockets_heartbeat_enabled
            else None
        )
        #: RATE_LIMITER_*: points per window for the frames of each connection, or None.
        self.message_points = (
            settings.rate_limiter_points if settings.rate_limiter_enabled else None
        )
        self.message_window = settings.rate_limiter_duration_ms / 1000

    def connection(self, client: ClientInfo | None = None) -> Connection:
        """A fresh state machine for one socket; ``client`` is copied into sessions."""
        return Connection(self, client if client is not None else ClientInfo())


_State = Literal["new", "handshake", "open", "expired", "closed"]


class Connection:
    """One socket's authentication state. Not thread-safe: feed it one event at a time."""

    def __init__(self, realtime: Realtime, client: ClientInfo) -> None:
        self._rt = realtime
        self._client = client
        self.state: _State = "new"
        self.principal: Principal | None = None
        self._active = True  # a frame arrived since the last heartbeat ping (or it just opened)
        # The per-connection message limit's fixed window. A socket lives in one process, so
        # its count needs no shared store (and no round trip per frame).
        self._window_ends = 0.0
        self._window_count = 0
        #: When the principal authenticated (the revocation registry's clock): a static
        #: token, which has no issue time, is void once its user is revoked after this.
        self._since = 0.0

    @property
    def mode(self) -> Mode:
        return self._rt.mode

    @property
    def revocations(self) -> Revocations:
        """The registry whose writes this socket watches (see :meth:`recheck`)."""
        return self._rt.guard.revocations

    # -- events --------------------------------------------------------------------------

    def connect(
        self,
        authorization: str | None,
        query_string: str,
        cookie: str | None,
        *,
        authorization_count: int = 1,
    ) -> Answer | Flow[Answer]:
        """The upgrade request arrived (its raw ``Authorization``, query string and
        ``Cookie``)."""
        if self.state != "new":
            raise RuntimeError("connect() twice")
        rt = self._rt
        found = rt.guard.extractor(
            authorization, query_string, cookie, authorization_count=authorization_count
        )
        if isinstance(found, AuthError):
            return self._reject(found)
        if found is not None:
            return self._token_upgrade(found)
        if self.mode == "strict":
            return self._reject(invalid_credentials())
        if self.mode == "public":
            return self._open(rt.guard.public)
        self.state = "handshake"
        return [Accept(), SetTimer("handshake", rt.auth_timeout), *self._heartbeat()]

    def message(self, data: str | bytes) -> Answer | Flow[Answer]:
        """A client frame (text, or bytes as received)."""
        state = self.state
        if state in ("new", "closed"):
            return []
        self._active = True
        if self._rt.message_points is not None:
            refused = self._count_message()
            if refused is not None:
                return refused
        parsed = parse_message(data)
        if state == "handshake":
            return self._handshake(parsed)
        if parsed is None:
            return [SendJSON(UNPARSABLE)]
        kind = parsed["type"]
        uid = parsed.get("uid")
        if kind == "auth":
            frame = _auth_frame(parsed)
            if frame is None:
                return []  # Directus swallows a malformed re-auth frame
            return self._reauth(frame, uid)
        if kind == "ping":
            return [SendJSON(_pong(uid))]
        if kind == "pong":
            return []
        if state == "expired" and self.mode != "public":
            return [SendJSON(auth_error("TOKEN_EXPIRED", "Token expired.", uid))]
        if self._revoked():
            # Revoked since the last check: the frame is not the app's (as once expired).
            return self._lapse(uid)
        return [Deliver(data)]

    def recheck(self) -> Answer:
        """Revocations arrived (tokenguard.guard.revocation): when they void this socket's
        principal (a logout, a change of role, a suspension...), the client is told
        ``TOKEN_EXPIRED`` and the socket goes on as for an expired token — the app sees the
        public principal at once, and the socket closes with ``AUTH_TIMEOUT`` unless a new
        ``auth`` frame (a refresh into the new role) comes within
        ``WEBSOCKETS_REST_AUTH_TIMEOUT``."""
        if self.state != "open" or not self._revoked():
            return []
        log.info("realtime socket's token was revoked: re-authentication required")
        return self._lapse()

    def _revoked(self) -> bool:
        principal = self.principal
        if principal is None:
            return False
        return self._rt.guard.revocations.refuses_principal(principal, self._since)

    def _count_message(self) -> Answer | None:
        """Directus's per-connection limit on incoming frames: past it, every frame (an
        ``auth`` one too) is dropped with ``REQUESTS_EXCEEDED`` until the window ends."""
        rt = self._rt
        now = rt.clock()
        if now >= self._window_ends:
            self._window_ends, self._window_count = now + rt.message_window, 0
        self._window_count += 1
        assert rt.message_points is not None
        if self._window_count <= rt.message_points:
            return None
        return [SendJSON(too_many_messages(max(0, math.ceil((self._window_ends - now) * 1000))))]

    def timer(self, name: TimerName) -> Answer | Flow[Answer]:
        """The timer ``name`` fired. A heartbeat also re-checks a session-cookie principal's
        session, so that a logout reaches live sockets within a heartbeat period."""
        state = self.state
        if state == "closed":
            return []
        if name == "handshake":
            if state == "handshake":
                return self._close(HANDSHAKE_FAILED)
            return []
        if name == "expiry":
            return self._expire()
        if name == "reauth":
            if state == "expired" and self.mode != "public":
                return self._close(AUTH_TIMEOUT)
            return []
        if name == "heartbeat":
            if state == "new":  # an authentication is under way: look again later
                return self._heartbeat()
            if not self._active:
                return self._close(None)
            self._active = False
            beat: Answer = [SendJSON(PING), *self._heartbeat()]
            principal = self.principal
            if state == "open" and principal is not None and principal.via == "session":
                return self._revalidate(principal, beat)
            return beat
        return []

    def disconnected(self) -> Answer:
        """The client went away."""
        self.state = "closed"
        return [CancelTimer(n) for n in ("handshake", "expiry", "reauth", "heartbeat")]

    # -- steps ---------------------------------------------------------------------------

    def _reject(self, error: AuthError) -> Answer:
        self.state = "closed"
        return [Reject(error)]

    def _close(self, text: str | None) -> Answer:
        self.state = "closed"
        actions: Answer = [SendJSON(text)] if text is not None else []
        actions.append(Close())
        actions.extend(CancelTimer(n) for n in ("handshake", "expiry", "reauth", "heartbeat"))
        return actions

    def _heartbeat(self) -> Answer:
        period = self._rt.heartbeat
        return [SetTimer("heartbeat", period)] if period is not None else []

    def _expiry(self, principal: Principal) -> Answer:
        if principal.expires_at is None:
            return [CancelTimer("expiry")]
        return [SetTimer("expiry", max(0.0, principal.expires_at - self._rt.clock()))]

    def _open(self, principal: Principal) -> Answer:
        self.state = "open"
        self.principal = principal
        self._since = self._rt.guard.revocations.clock()
        return [StartApp(principal), *self._expiry(principal), *self._heartbeat()]

    def _token_upgrade(self, found: Extracted) -> Answer | Flow[Answer]:
        outcome = self._rt.guard.authenticate_token(found)
        if type(outcome) is GeneratorType:
            return self._token_upgrade_flow(outcome)
        return self._upgraded(outcome)  # type: ignore[arg-type]

    def _token_upgrade_flow(self, flow: Flow[Principal | Refusal]) -> Flow[Answer]:
        outcome = yield from flow
        return self._upgraded(outcome)

    def _upgraded(self, outcome: Principal | Refusal) -> Answer:
        if isinstance(outcome, Refusal):
            return self._reject(outcome.error)
        if outcome.user is None:
            # Directus requires a user at upgrade; a token for no one is refused.
            return self._reject(invalid_credentials())
        return self._open(outcome)

    def _handshake(self, parsed: dict[str, Any] | None) -> Answer | Flow[Answer]:
        # Only the wait for the first frame is timed, as in Directus.
        if parsed is None or parsed["type"] != "auth":
            return self._close(HANDSHAKE_FAILED)
        frame = _auth_frame(parsed)
        if frame is None:
            return self._close(HANDSHAKE_FAILED)
        self.state = "new"  # nothing else is taken until the answer is in
        return self._handshake_flow(frame, parsed.get("uid"))

    def _handshake_flow(self, frame: _AuthFrame, uid: Any) -> Flow[Answer]:
        done = yield from self._authenticate(frame)
        if done is None:
            self.state = "handshake"
            return self._close(HANDSHAKE_FAILED)
        return [
            CancelTimer("handshake"),
            SendJSON(auth_ok(uid, done.refresh_token)),
            *self._open(done.principal),
        ]

    def _reauth(self, frame: _AuthFrame, uid: Any) -> Flow[Answer]:
        done = yield from self._authenticate(frame)
        if self.state == "closed":
            return []
        if done is None:
            failed = SendJSON(auth_error("AUTH_FAILED", "Authentication failed.", uid))
            public = self._rt.guard.public
            if self.mode == "public":
                self.principal = public
                self.state = "open"
                return [failed, SetPrincipal(public), CancelTimer("expiry"), CancelTimer("reauth")]
            self.principal = None
            return [failed, SetPrincipal(public), *self._close(None)]
        self.state = "open"
        self.principal = done.principal
        self._since = self._rt.guard.revocations.clock()
        return [
            SendJSON(auth_ok(uid, done.refresh_token)),
            SetPrincipal(done.principal),
            CancelTimer("reauth"),
            *self._expiry(done.principal),
        ]

    def _revalidate(self, principal: Principal, beat: Answer) -> Flow[Answer]:
        guard = self._rt.guard
        session = principal.session or ""
        try:
            record = yield Call(
                guard.sessions.get, (refresh_token_key(session), int(self._rt.clock() * 1000))
            )
        except Exception as exc:  # cannot tell now: keep the socket, ask again next beat
            log.warning("realtime session check failed: %s", type(exc).__name__)
            return beat
        if self.state != "open" or self.principal is not principal:
            return beat  # re-authenticated meanwhile
        if record is not None and record.user_id == principal.user:
            return beat
        log.info("realtime socket's session is gone: re-authentication required")
        return [*beat, *self._lapse()]

    def _expire(self) -> Answer:
        principal = self.principal
        if self.state != "open" or principal is None or principal.expires_at is None:
            return []
        remaining = principal.expires_at - self._rt.clock()
        if remaining > 0:  # fired early (clock skew between timer and clock): re-arm
            return [SetTimer("expiry", remaining)]
        return self._lapse()

    def _lapse(self, uid: Any = None) -> Answer:
        """The credential stopped being valid: tell the client, wait for a new one."""
        public = self._rt.guard.public
        self.principal = public
        self.state = "expired"
        told = TOKEN_EXPIRED if uid is None else auth_error("TOKEN_EXPIRED", "Token expired.", uid)
        actions: Answer = [SendJSON(told), SetPrincipal(public), CancelTimer("expiry")]
        if self.mode == "public":
            self.state = "open"
        else:
            actions.append(SetTimer("reauth", self._rt.auth_timeout))
        return actions

    # -- authentication ------------------------------------------------------------------

    def _authenticate(self, frame: _AuthFrame) -> Generator[Any, Any, _Authenticated | None]:
        """Directus's ``authenticateConnection``: login, then refresh, then the access token;
        the last access token wins. Any failure is ``None`` (the reason is not told)."""
        rt = self._rt
        service = rt.service
        access: str | None = None
        refresh: str | None = None
        try:
            if frame.email is not None and frame.password is not None:
                tokens: Tokens = yield from service.login(
                    Credentials(frame.email, frame.password),
                    "json",
                    self._client,
                    service.monotonic(),
                )
                access, refresh = tokens.access_token, tokens.refresh_token
            if frame.refresh_token is not None:
                tokens = yield from service.refresh(frame.refresh_token, "json", self._client)
                access, refresh = tokens.access_token, tokens.refresh_token
            if frame.access_token is not None:
                access = frame.access_token
            if not access:
                return None
            outcome: Any = rt.guard.authenticate_token(Extracted(access, "header", "auth"))
            if type(outcome) is GeneratorType:
                outcome = yield from outcome
        except AuthError as error:
            log.info("realtime authentication refused: %s", error.code)
            return None
        except Exception as exc:  # a bug or a store failure: refuse, never crash the socket
            log.error("realtime authentication failed: %s", type(exc).__name__)
            return None
        if not isinstance(outcome, Principal) or outcome.user is None:
            return None
        return _Authenticated(outcome, refresh)
