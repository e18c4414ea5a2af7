"""The ASGI shell: scope in, one call into the request pipeline, its decision written out.

Works as plain ASGI middleware (``TokenGuardMiddleware(app)``) and through Starlette's or
FastAPI's ``app.add_middleware(TokenGuardMiddleware, ...)``. The principal lands in
``scope["state"]["user"]`` (``request.state.user``), ``scope["state"]["role"]`` and
``scope["user"]`` (``request.user``), and in ``scope["auth"]`` (``request.auth``, whose
:attr:`~tokenguard.principal.Principal.scopes` Starlette's ``@requires`` reads). Lifespan
scopes pass through (a middleware that made its own :class:`~tokenguard.app.TokenGuard` closes
it at the lifespan shutdown, before the app's ``lifespan.shutdown.complete`` goes out); so do
WebSocket scopes unless ``WEBSOCKETS_ENABLED`` is set (then see :mod:`tokenguard.shells.asgi_ws`).

An :class:`~tokenguard.errors.AuthError` the app raises before its response started (FastAPI's
``Depends(current_user)`` for the public caller) is answered with Directus's body and status,
as a refusal here would be, with or without an exception handler registered for it.
"""

from __future__ import annotations

import logging
from types import GeneratorType
from typing import Any

from ..app import TokenGuard
from ..errors import AuthError
from ..flow import run_async
from ..guard.pipeline import Pass, Refuse, Route
from ..http.serve import serve_asgi
from ..http.views import JSON_TYPE
from ..types import ASGIApp, Message, Receive, Scope, Send
from .scope import ScopeRequest, set_scope_query

__all__ = ["TokenGuardMiddleware"]

log = logging.getLogger("tokenguard")


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
        self._pipeline = self.core.pipeline
        self._cached = self._pipeline.cached
        self._decide = self._pipeline.decide
        self._router = self.core.router
        self._websockets: Any = None
        if self.core.settings.websockets_enabled:
            from .asgi_ws import WebSocketAuth  # imported only when used (anyio, realtime)

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
        raw_authorization: bytes | None = None
        count = 0
        cookies: list[str] | None = None
        headers = scope["headers"]
        for name, value in headers:
            if name == b"authorization":
                count += 1
                if count == 1:
                    raw_authorization = value
            elif name == b"cookie":
                if cookies is None:
                    cookies = []
                cookies.append(value.decode("latin-1"))
        raw_query: bytes = scope.get("query_string", b"")
        principal = None
        if count == 1:
            # The common request, a repeated Bearer token: answered from the memo without
            # decoding or parsing anything (None when not certain).
            principal = self._cached(
                raw_authorization,  # type: ignore[arg-type]
                raw_query,
                scope["method"],
                scope["path"],
            )
        if principal is None:
            decision: Any = self._decide(
                ScopeRequest(
                    scope,
                    headers,
                    raw_authorization,
                    count,
                    cookies,
                    raw_query,
                    scope.get("scheme", "http"),
                )
            )
            if type(decision) is GeneratorType:
                decision = await run_async(decision)
            if decision.query is not None:
                set_scope_query(scope, decision.query)
            if type(decision) is not Pass:
                if type(decision) is Route:
                    await serve_asgi(self._router, scope, receive, send, decision.principal)
                else:
                    await self._refuse(decision, send)
                return
            principal = decision.principal
        # A copy, never the dict we were given: a server that (against the ASGI spec) shared
        # one state dict between requests would otherwise hand one request's user to another.
        state = scope.get("state")
        state = dict(state) if state else {}
        state["user"] = principal
        state["role"] = principal.role
        scope["state"] = state
        scope["user"] = principal
        scope["auth"] = principal  # its .scopes serve Starlette's @requires
        try:
            await self.app(scope, receive, send)
        except AuthError as error:
            # Raised by the app before it answered: FastAPI's ``Depends(current_user)`` under
            # plain ``add_middleware``, with no exception handler for it. Answered as the
            # refusals above are, not as a 500. (A ``try`` costs nothing until it catches.)
            await self._answer_raised(error, send)

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

    async def _answer_raised(self, error: AuthError, send: Send) -> None:
        headers: list[tuple[str, str]] = []
        if error.retry_after is not None:
            headers.append(("retry-after", str(error.retry_after)))
        try:
            await self._refuse(Refuse(error, headers), send)
        except Exception:
            # The app had started its response (a streaming body raised it): the server
            # refuses a second start, and the app's own error is what happened.
            raise error from None

    async def _refuse(self, refusal: Refuse, send: Send) -> None:
        body = refusal.error.body
        headers = [
            (b"content-type", JSON_TYPE.encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        for name, value in refusal.headers:
            headers.append((name.encode(), value.encode("latin-1")))
        await send(
            {"type": "http.response.start", "status": refusal.error.status, "headers": headers}
        )
        await send({"type": "http.response.body", "body": body})
