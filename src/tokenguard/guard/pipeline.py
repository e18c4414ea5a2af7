"""One request, one decision: the whole request path in one place, with no I/O of its own.

A shell (ASGI, WSGI, WebSocket, Django) fills a :class:`RequestHead` and asks
:meth:`RequestPipeline.decide` (or :meth:`RequestPipeline.upgrade` for a WebSocket upgrade)
for a decision:

- :class:`Pass`: the app runs with this principal;
- :class:`Route`: the ``/auth`` router answers, with this principal;
- :class:`Refuse`: this error is the answer, with these extra headers (the session cookie's
  deletion when it was the culprit, ``Retry-After`` on a 429);
- :class:`Handshake` (upgrades only): the realtime protocol authenticates the socket itself.

Each carries ``query``: the query string without its token parameters when one was taken out
(``TOKENGUARD_STRIP_QUERY_TOKEN``), for the shell to write back before anything else sees the
URL (the app, the router, the server's access log), else ``None``. The answer is a decision at
once, or a :data:`~tokenguard.flow.Flow` of one when a store must be asked (the rate limits, a
static token, a session); the shell drives it with :func:`~tokenguard.flow.run_sync` or
:func:`~tokenguard.flow.run_async`.

The steps, in this order: app-wide throttling (``RATE_LIMITER_*``), the raw-header memo,
authentication, query stripping, the route check, the cross-site check (an unsafe request the
session cookie authenticated must come from a trusted origin, :mod:`tokenguard.guard.csrf`).
:meth:`RequestPipeline.cached` is the first two alone, for the common request (one repeated
Bearer token) that the shell can answer before building anything.
"""

from __future__ import annotations

from types import GeneratorType
from typing import Protocol

from ..auth.service import ClientInfo
from ..config import Settings
from ..errors import AuthError
from ..flow import Flow
from ..logs.audit import Audit
from ..logs.redact import remove_query_params
from ..principal import Principal
from .csrf import SAFE_METHODS, CsrfPolicy
from .decide import Guard, Outcome, Refusal
from .extract import Extracted
from .limits import Limits, TooManyRequests, client_address

__all__ = [
    "Decision",
    "Handshake",
    "Pass",
    "Refuse",
    "RequestHead",
    "RequestPipeline",
    "Route",
    "Routes",
]


class RequestHead(Protocol):
    """What the pipeline reads of a request, filled by a shell (attributes or properties)."""

    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def authorization(self) -> str | None:
        """The deciding ``Authorization`` value (the first of several)."""

    @property
    def authorization_count(self) -> int:
        """How many ``Authorization`` headers the request had."""

    @property
    def raw_authorization(self) -> bytes | str | None:
        """The header as the shell read it (the key of the raw-header memo), or ``None``."""

    @property
    def query(self) -> str: ...
    @property
    def cookie(self) -> str | None: ...
    @property
    def peer(self) -> str | None:
        """The address of the connection's other end."""

    @property
    def scheme(self) -> str:
        """``http`` or ``https``, as the request arrived."""

    def header(self, name: str) -> str | None:
        """A rare header by lower-case name, repeated lines joined with ``, ``."""

    def first_header(self, name: str) -> str | None:
        """A rare header by lower-case name: its first line only."""


class Routes(Protocol):
    """The part of the ``/auth`` router the pipeline asks (:class:`~tokenguard.http.routes.
    AuthRouter`)."""

    @property
    def path_prefixes(self) -> tuple[str, ...]: ...
    @property
    def csrf(self) -> CsrfPolicy: ...

    def answers(self, method: str, path: str) -> bool: ...


# Plain slotted classes rather than dataclasses: one is built for every request that misses
# the raw-header memo, and a frozen dataclass's __init__ costs several times more.


class Pass:
    """The app runs, with ``principal`` attached."""

    __slots__ = ("principal", "query")

    def __init__(self, principal: Principal, query: str | None = None) -> None:
        self.principal = principal
        self.query = query

    def __repr__(self) -> str:
        return f"Pass({self.principal!r})"


class Route:
    """The ``/auth`` router answers, with ``principal`` as the caller."""

    __slots__ = ("principal", "query")

    def __init__(self, principal: Principal, query: str | None = None) -> None:
        self.principal = principal
        self.query = query

    def __repr__(self) -> str:
        return f"Route({self.principal!r})"


class Refuse:
    """``error`` is the answer, with ``headers`` added to its response."""

    __slots__ = ("error", "headers", "query")

    def __init__(
        self, error: AuthError, headers: list[tuple[str, str]], query: str | None = None
    ) -> None:
        self.error = error
        self.headers = headers
        self.query = query

    def __repr__(self) -> str:
        return f"Refuse({self.error.status}, {self.error.code!r})"


class Handshake:
    """A WebSocket upgrade at the realtime path: the realtime protocol
    (:mod:`tokenguard.http.realtime`) authenticates the socket itself."""

    __slots__ = ("query",)

    def __init__(self, query: str | None = None) -> None:
        self.query = query

    def __repr__(self) -> str:
        return "Handshake()"


Decision = Pass | Route | Refuse


class RequestPipeline:
    """Decides every request of one :class:`~tokenguard.app.TokenGuard`; built once by it,
    shared by its shells, safe to share between threads.

    ``clear_session_cookie`` is the ``Set-Cookie`` value that deletes the session cookie.
    """

    def __init__(
        self,
        settings: Settings,
        guard: Guard,
        limits: Limits,
        audit: Audit,
        routes: Routes,
        *,
        clear_session_cookie: str,
    ) -> None:
        self.guard = guard
        self.limits = limits
        self.audit = audit
        self.routes = routes
        #: Whether every request is counted (RATE_LIMITER_ENABLED / _GLOBAL_ENABLED).
        self.throttles = limits.per_request
        self._csrf = routes.csrf
        self._prefixes = routes.path_prefixes
        self._answers = routes.answers
        self._cached_bearer = guard.cached_bearer
        self._strip = frozenset(settings.query_params) if settings.strip_query_token else None
        self._trust_hops = settings.ip_trust_proxy
        self._clear_session = clear_session_cookie
        self._realtime_path = (
            settings.websockets_rest_path if settings.websockets_rest_enabled else None
        )

    # -- HTTP --------------------------------------------------------------------------------

    def cached(
        self, authorization: bytes | str, query: bytes | str, method: str, path: str
    ) -> Principal | None:
        """The principal of a request the app may serve at once, from the raw-header memo;
        ``None`` means "ask :meth:`decide`".

        The caller guarantees there was exactly one ``Authorization`` header. Only when no
        rate limit counts requests (they come first) and the router does not answer the path.
        No cross-site check is needed: a memo hit means the credential is that Bearer header,
        never the cookie.
        """
        if self.throttles:
            return None
        principal = self._cached_bearer(authorization, query)
        if principal is None or (path.startswith(self._prefixes) and self._answers(method, path)):
            return None
        return principal

    def decide(self, request: RequestHead) -> Decision | Flow[Decision]:
        """The decision on an HTTP request, or the flow that reaches it."""
        if self.throttles:
            return self._throttled(request)
        return self._authenticate(request)

    def _throttled(self, request: RequestHead) -> Flow[Decision]:
        refusal = yield from self._throttle(request)
        if refusal is not None:
            # The URL still reaches the access log: the token goes out of it all the same.
            return self._refuse(refusal, self.strip_query(request.query))
        raw = request.raw_authorization
        if raw is not None and request.authorization_count == 1:
            # Counted, so the memo may answer now (a hit means no token in the query).
            principal = self._cached_bearer(raw, request.query)
            if principal is not None:
                return self._decided(request, principal, None)
        decision = self._authenticate(request)
        if type(decision) is GeneratorType:
            decision = yield from decision
        return decision  # type: ignore[return-value]

    def _authenticate(self, request: RequestHead) -> Decision | Flow[Decision]:
        query = request.query
        outcome = self.guard.authenticate(
            request.authorization,
            query,
            request.cookie,
            authorization_count=request.authorization_count,
            raw_authorization=request.raw_authorization,
        )
        stripped = self.strip_query(query) if query and self._strip else None
        if type(outcome) is GeneratorType:
            return self._after_flow(request, outcome, stripped)
        return self._decided(request, outcome, stripped)  # type: ignore[arg-type]

    def _after_flow(
        self, request: RequestHead, flow: Flow[Outcome], query: str | None
    ) -> Flow[Decision]:
        outcome = yield from flow
        return self._decided(request, outcome, query)

    def _decided(self, request: RequestHead, outcome: Outcome, query: str | None) -> Decision:
        if type(outcome) is Refusal:
            return self._refuse(outcome, query)
        assert isinstance(outcome, Principal)
        method = request.method
        path = request.path
        if path.startswith(self._prefixes) and self._answers(method, path):
            return Route(outcome, query)
        if (
            request.cookie
            and outcome.via != "public"
            and method not in SAFE_METHODS
            and self._from_cookie(request, 1)
        ):
            # Only here can the credential be the (ambient) session cookie.
            error = self._csrf.check(
                method,
                request.first_header("origin"),
                request.first_header("referer"),
                request.first_header("host"),
                request.scheme,
            )
            if error is not None:
                return Refuse(error, [], query)
        return Pass(outcome, query)

    # -- WebSocket -----------------------------------------------------------------------------

    def upgrade(self, request: RequestHead) -> Pass | Refuse | Handshake | Flow[Pass | Refuse]:
        """The decision on a WebSocket upgrade, or the flow that reaches it.

        The query token goes first (whatever follows), then the cross-site check (a browser
        sends the session cookie with an upgrade from any page, and always sends ``Origin``
        with it); at the realtime path the socket authenticates itself (:class:`Handshake`),
        anywhere else the upgrade is authenticated as an HTTP request is. No rate limit counts
        upgrades.
        """
        query = self.strip_query(request.query)
        if request.cookie and self._from_cookie(request, request.authorization_count):
            error = self._csrf.check(
                "WEBSOCKET",
                request.first_header("origin"),
                None,
                request.first_header("host"),
                request.scheme,
            )
            if error is not None:
                return Refuse(error, [], query)
        if self.is_realtime(request.path):
            return Handshake(query)
        outcome = self.guard.authenticate(
            request.authorization,
            request.query,
            request.cookie,
            authorization_count=request.authorization_count,
        )
        if type(outcome) is GeneratorType:
            return self._upgrade_flow(outcome, query)
        return self._upgraded(outcome, query)  # type: ignore[arg-type]

    def _upgrade_flow(self, flow: Flow[Outcome], query: str | None) -> Flow[Pass | Refuse]:
        outcome = yield from flow
        return self._upgraded(outcome, query)

    def _upgraded(self, outcome: Outcome, query: str | None) -> Pass | Refuse:
        if isinstance(outcome, Refusal):
            return self._refuse(outcome, query)
        return Pass(outcome, query)

    def is_realtime(self, path: str) -> bool:
        """Whether ``path`` is the realtime protocol's (``WEBSOCKETS_REST_PATH``, with one
        optional trailing slash)."""
        rest = self._realtime_path
        if rest is None:
            return False
        return path == rest or (path.endswith("/") and path[:-1] == rest and len(path) > 1)

    # -- the steps -------------------------------------------------------------------------------

    def strip_query(self, query: str) -> str | None:
        """``query`` without its token parameters, or ``None`` when nothing was taken out (or
        ``TOKENGUARD_STRIP_QUERY_TOKEN`` is off)."""
        if not query or not self._strip:
            return None
        stripped = remove_query_params(query, self._strip)
        return None if stripped is query else stripped

    def _throttle(self, request: RequestHead) -> Flow[Refusal | None]:
        """Count one request against Directus's app-wide limiters, before it is
        authenticated (so that refused tokens count too): ``None`` to go on, or the 429
        (``REQUESTS_EXCEEDED``) or 503 (limiter unreachable: fail closed) to answer.

        ``x-forwarded-for`` is read only behind ``IP_TRUST_PROXY``; on a refusal the audit
        record takes ``user-agent`` and ``origin``.
        """
        header = request.header
        forwarded = header("x-forwarded-for") if self._trust_hops else None
        address = client_address(request.peer, forwarded, self._trust_hops)
        try:
            yield from self.limits.check_request(address)
        except TooManyRequests as error:
            if error.first:
                client = ClientInfo(address, header("user-agent"), header("origin"))
                yield from self.audit.emit(
                    "throttle", "blocked", client, provider=None, reason=error.code
                )
            return Refusal(error)
        except AuthError as error:
            return Refusal(error)
        return None

    def _from_cookie(self, request: RequestHead, authorization_count: int) -> bool:
        """Whether the request's token is the session cookie, the one credential a browser
        sends by itself (see :mod:`tokenguard.guard.csrf`)."""
        found = self.guard.extractor(
            request.authorization,
            request.query,
            request.cookie,
            authorization_count=authorization_count,
        )
        return isinstance(found, Extracted) and found.source == "cookie"

    def _refuse(self, refusal: Refusal, query: str | None) -> Refuse:
        """The decision for a refusal: the session cookie's deletion when it was the culprit,
        ``Retry-After`` on a 429."""
        headers: list[tuple[str, str]] = []
        if refusal.clear_session_cookie:
            headers.append(("set-cookie", self._clear_session))
        elif refusal.error.retry_after is not None:  # a 429, or a 503 that will pass
            headers.append(("retry-after", str(refusal.error.retry_after)))
        return Refuse(refusal.error, headers, query)
