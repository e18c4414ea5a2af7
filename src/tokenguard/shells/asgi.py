"""The ASGI shell: scope in, principal attached, the core's answer written out.

Works as plain ASGI middleware (``TokenGuardMiddleware(app)``) and through Starlette's or
FastAPI's ``app.add_middleware(TokenGuardMiddleware, ...)``. The principal lands in
``scope["state"]["user"]`` (``request.state.user``), ``scope["state"]["role"]`` and
``scope["user"]`` (``request.user``), and in ``scope["auth"]`` (``request.auth``, whose
:attr:`~tokenguard.principal.Principal.scopes` Starlette's ``@requires`` reads). Lifespan
scopes pass through (a middleware that made its own :class:`~tokenguard.app.TokenGuard` closes
it at the lifespan shutdown, before the app's ``lifespan.shutdown.complete`` goes out); so do
WebSocket scopes unless ``WEBSOCKETS_ENABLED`` is set (then see :mod:`tokenguard.shells.asgi_ws`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import GeneratorType
from typing import Any

from ..app import TokenGuard
from ..flow import run_async
from ..guard.csrf import SAFE_METHODS
from ..guard.decide import Refusal
from ..http.serve import serve_asgi
from ..http.views import JSON_TYPE
from ..logs.redact import remove_query_params
from ..principal import Principal
from ..types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["TokenGuardMiddleware"]

log = logging.getLogger("tokenguard")


def _header_of(scope: Scope) -> Callable[[str], str | None]:
    def header(name: str) -> str | None:
        # Repeated headers joined as one, as the routes see them: a proxy that adds its own
        # X-Forwarded-For line must not leave us reading the client's line.
        key = name.encode("latin-1")
        values = [v.decode("latin-1") for k, v in scope["headers"] if k == key]
        return ", ".join(values) if values else None

    return header


def _strip_query_token(scope: Scope, query: str, names: frozenset[str]) -> None:
    """Take the query token out of the URL the app (and the server's access log) sees."""
    stripped = remove_query_params(query, names)
    if stripped is query:
        return
    scope["query_string"] = stripped.encode("latin-1")
    raw_path = scope.get("raw_path")
    if raw_path and b"?" in raw_path:
        path = raw_path.partition(b"?")[0]
        scope["raw_path"] = path + b"?" + scope["query_string"] if stripped else path


class TokenGuardMiddleware:
    """Authenticate every HTTP request before ``app`` sees it.

    Pass a ready :class:`~tokenguard.app.TokenGuard` as ``guard`` to share stores (you
    close it), or settings as keyword arguments (they override the environment; the
    middleware then closes the guard it made at the lifespan shutdown, or on :meth:`aclose`).
    """

    def __init__(self, app: ASGIApp, guard: TokenGuard | None = None, **options: Any) -> None:
        self.app = app
        #: Whether the guard is this middleware's to close.
        self.owns_core = guard is None
        self.core = guard if guard is not None else TokenGuard(flavour="async", **options)
        self._guard = self.core.guard
        self._router = self.core.router
        self._auth_prefix = self._router.path_prefixes
        settings = self.core.settings
        self._strip = frozenset(settings.query_params) if settings.strip_query_token else None
        self._throttles = self.core.throttles
        self._websockets: Any = None
        if settings.websockets_enabled:
            from .asgi_ws import WebSocketAuth  # imported only when used

            self._websockets = WebSocketAuth(self.core)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket" and self._websockets is not None:
                await self._websockets(self.app, scope, receive, send)
                return
            if scope["type"] == "lifespan" and self.owns_core:
                await self.app(scope, receive, self._closing_send(send))
                return
            await self.app(scope, receive, send)
            return
        if self._throttles and await self._throttled(scope, send):
            return
        raw_authorization: bytes | None = None
        count = 0
        cookies: list[str] | None = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                count += 1
                if count == 1:
                    raw_authorization = value
            elif name == b"cookie":
                if cookies is None:
                    cookies = []
                cookies.append(value.decode("latin-1"))
        raw_query: bytes = scope.get("query_string", b"")
        outcome: Any = None
        if count == 1:
            # The common request, a repeated Bearer token: answered from the guard's cache
            # without decoding or parsing anything (None when not certain).
            outcome = self._guard.cached_bearer(raw_authorization, raw_query)  # type: ignore[arg-type]
        authorization: str | None = None
        query = ""
        if outcome is None:
            if raw_authorization is not None:
                authorization = raw_authorization.decode("latin-1")
            query = raw_query.decode("latin-1")
            outcome = self._guard.authenticate(
                authorization,
                query,
                "; ".join(cookies) if cookies else None,
                authorization_count=count,
                raw_authorization=raw_authorization,
            )
            if query and self._strip:
                _strip_query_token(scope, query, self._strip)
            if type(outcome) is GeneratorType:
                outcome = await run_async(outcome)
            if type(outcome) is Refusal:
                await self._refuse(outcome, send)
                return
        assert isinstance(outcome, Principal)
        path = scope["path"]
        if path.startswith(self._auth_prefix) and self._router.answers(scope["method"], path):
            await serve_asgi(self._router, scope, receive, send, outcome)
            return
        if cookies and outcome.via != "public" and scope["method"] not in SAFE_METHODS:
            # Only here can the credential be the (ambient) session cookie.
            if authorization is None and raw_authorization is not None:
                authorization = raw_authorization.decode("latin-1")
            refusal = self._csrf(
                scope, outcome, authorization, raw_query.decode("latin-1"), "; ".join(cookies)
            )
            if refusal is not None:
                await self._refuse(refusal, send)
                return
        # A copy, never the dict we were given: a server that (against the ASGI spec) shared
        # one state dict between requests would otherwise hand one request's user to another.
        state = scope.get("state")
        state = dict(state) if state else {}
        state["user"] = outcome
        state["role"] = outcome.role
        scope["state"] = state
        scope["user"] = outcome
        scope["auth"] = outcome  # its .scopes serve Starlette's @requires
        await self.app(scope, receive, send)

    async def aclose(self) -> None:
        """Close the guard this middleware made (idempotent; a guard passed in is left to
        its owner)."""
        if self.owns_core:
            await self.core.aclose()

    def _closing_send(self, send: Send) -> Send:
        # The app (Starlette's router, or whatever handles lifespan) says when shutdown is
        # done; the guard is closed just before that reaches the server, after the app's own
        # shutdown handlers, which may still use it.
        async def closing_send(message: Message) -> None:
            if message.get("type") in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                try:
                    await self.aclose()
                except Exception as exc:  # the server must still hear that shutdown is done
                    log.warning("closing tokenguard failed: %s", type(exc).__name__)
            await send(message)

        return closing_send

    def _csrf(
        self, scope: Scope, principal: Principal, authorization: str | None, query: str, cookie: str
    ) -> Refusal | None:
        found: dict[bytes, str] = {}
        for name, value in scope["headers"]:
            if name in (b"origin", b"referer", b"host") and name not in found:
                found[name] = value.decode("latin-1")
        return self.core.csrf_refusal(
            scope["method"],
            principal,
            authorization,
            query,
            cookie,
            found.get(b"origin"),
            found.get(b"referer"),
            found.get(b"host"),
            scope.get("scheme", "http"),
        )

    async def _throttled(self, scope: Scope, send: Send) -> bool:
        """Count the request against the app-wide rate limits; answer it if refused."""
        client = scope.get("client")
        peer = client[0] if client else None
        refusal = await run_async(self.core.throttle(peer, _header_of(scope)))
        if refusal is None:
            return False
        query = scope.get("query_string", b"").decode("latin-1")
        if query and self._strip:
            _strip_query_token(scope, query, self._strip)  # the access log still sees the URL
        await self._refuse(refusal, send)
        return True

    async def _refuse(self, refusal: Refusal, send: Send) -> None:
        body = refusal.error.body
        headers = [
            (b"content-type", JSON_TYPE.encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        for name, value in self.core.refusal_headers(refusal):
            headers.append((name.encode(), value.encode("latin-1")))
        await send(
            {"type": "http.response.start", "status": refusal.error.status, "headers": headers}
        )
        await send({"type": "http.response.body", "body": body})
