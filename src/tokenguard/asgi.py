"""The ASGI shell: scope in, principal attached, the core's answer written out.

Works as plain ASGI middleware (``TokenGuardMiddleware(app)``) and through Starlette's or
FastAPI's ``app.add_middleware(TokenGuardMiddleware, ...)``. The principal lands in
``scope["state"]["user"]`` (``request.state.user``), ``scope["state"]["role"]`` and
``scope["user"]`` (``request.user``). Lifespan and WebSocket scopes pass through untouched.
"""

from __future__ import annotations

from types import GeneratorType
from typing import Any

from .core import TokenGuard
from .flow import run_async
from .guard import Refusal
from .http.serve import serve_asgi
from .http.views import JSON_TYPE
from .principal import Principal
from .types import ASGIApp, Receive, Scope, Send

__all__ = ["TokenGuardMiddleware"]


class TokenGuardMiddleware:
    """Authenticate every HTTP request before ``app`` sees it.

    Pass a ready :class:`~tokenguard.core.TokenGuard` as ``guard`` to share stores, or
    settings as keyword arguments (they override the environment).
    """

    def __init__(self, app: ASGIApp, guard: TokenGuard | None = None, **options: Any) -> None:
        self.app = app
        self.core = guard if guard is not None else TokenGuard(flavour="async", **options)
        self._guard = self.core.guard
        self._router = self.core.router
        self._auth_prefix = self._router.prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        authorization: str | None = None
        count = 0
        cookies: list[str] = []
        for name, value in scope["headers"]:
            if name == b"authorization":
                count += 1
                if count == 1:
                    authorization = value.decode("latin-1")
            elif name == b"cookie":
                cookies.append(value.decode("latin-1"))
        outcome = self._guard.authenticate(
            authorization,
            scope.get("query_string", b"").decode("latin-1"),
            "; ".join(cookies) if cookies else None,
            authorization_count=count,
        )
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
        state = dict(scope.get("state") or ())
        state["user"] = outcome
        state["role"] = outcome.role
        scope["state"] = state
        scope["user"] = outcome
        await self.app(scope, receive, send)

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
