"""The Django middleware: every request decided by the request pipeline, as the shells do it.

It works under Django's WSGI handler, its ASGI handler and its test clients: one flow answers
each request (:meth:`TokenGuardMiddleware.decide`: ``request.META`` in, one call into
:mod:`tokenguard.guard.pipeline`, its decision written out), driven by
:func:`~tokenguard.flow.run_sync` when Django calls the middleware synchronously and by
:func:`~tokenguard.flow.run_async` when it calls it asynchronously (see
:mod:`tokenguard.integrations.django.conf` for why one synchronous guard serves both).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from types import GeneratorType
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponse

from ...flow import Flow, run_async, run_sync
from ...guard.pipeline import Pass, Refuse, Route
from ...http.serve import environ_request
from ...http.views import RequestView, json_response
from ...principal import Principal
from ...shells.environ import set_environ_query
from ...shells.scope import set_scope_query
from .conf import get_guard
from .request import DjangoRequest
from .responses import http_response
from .user import TokenGuardUser

__all__ = ["TokenGuardMiddleware"]

log = logging.getLogger("tokenguard")

_AUTH_MIDDLEWARE = "django.contrib.auth.middleware.AuthenticationMiddleware"
_SELF = "tokenguard.integrations.django.TokenGuardMiddleware"


class TokenGuardMiddleware:
    """Authenticate every request before the view sees it; answer tokenguard's routes.

    A request with a bad token gets the Directus JSON error (never the public principal);
    one with no token goes on as the public caller. ``/auth/login``, ``/auth/refresh``,
    ``/auth/logout`` (and the other tokenguard routes) are answered here, cookies included.
    An unsafe request authenticated by the session cookie must come from a trusted origin.
    The view then finds:

    ``request.user``
        a :class:`~tokenguard.integrations.django.user.TokenGuardUser` (``user_class``), and
        ``request.auser()`` returning it
    ``request.principal``
        the :class:`~tokenguard.principal.Principal`
    ``request.auth_role``
        its role (the public role without a token)

    Place it after ``AuthenticationMiddleware`` when both are installed: the later one sets
    ``request.user`` (``request.principal`` is always tokenguard's).
    """

    sync_capable = True
    async_capable = True
    #: What ``request.user`` is made of; a subclass may change it.
    user_class: type[TokenGuardUser] = TokenGuardUser

    def __init__(
        self, get_response: Callable[[HttpRequest], HttpResponse | Awaitable[HttpResponse]]
    ) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
        self.core = get_guard()
        self._pipeline = self.core.pipeline
        self._router = self.core.router
        _warn_if_before_auth_middleware()

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        answer = run_sync(self.decide(request))
        if answer is not None:
            return answer
        return self.get_response(request)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        answer = await run_async(self.decide(request))
        if answer is not None:
            return answer
        response: HttpResponse = await self.get_response(request)
        return response

    def decide(self, request: HttpRequest) -> Flow[HttpResponse | None]:
        """The answer tokenguard gives itself (a refusal, an ``/auth`` route), or ``None``
        once the principal is attached and the view may run."""
        meta: dict[str, Any] = request.META
        method = request.method or "GET"
        path = request.path_info
        authorization = meta.get("HTTP_AUTHORIZATION")
        if authorization is not None and "," not in authorization:
            # The common request, a repeated Bearer token, answered from the memo.
            principal = self._pipeline.cached(
                authorization, meta.get("QUERY_STRING", ""), method, path
            )
            if principal is not None:
                self.attach(request, principal)
                return None
        decision: Any = self._pipeline.decide(DjangoRequest(request, method, path))
        if type(decision) is GeneratorType:
            decision = yield from decision
        if decision.query is not None:
            set_environ_query(meta, decision.query)
            self._stripped(request)
        if type(decision) is Route:
            view = environ_request(
                self._router,
                meta,
                decision.principal,
                stream=request,
                # Django's ASGI handler has read the whole body before the middleware runs.
                terminated=True if hasattr(request, "scope") else None,
            )
            if isinstance(view, RequestView):
                view = yield from self._router.handle(view, request.scheme)
            return http_response(view, method)
        if type(decision) is not Pass:
            return self._refuse(decision, request)
        self.attach(request, decision.principal)
        return None

    def attach(self, request: HttpRequest, principal: Principal) -> None:
        """Put the principal on the request (a subclass may add to it)."""
        user = self.user_class(principal)

        async def auser() -> TokenGuardUser:
            return user

        request.principal = principal
        request.auth_role = principal.role
        request.user = user
        request.auser = auser

    def _stripped(self, request: HttpRequest) -> None:
        """After ``request.META`` lost the query token: the rest of the request too."""
        # request.GET is parsed lazily from META, unless a middleware before us read it.
        request.__dict__.pop("GET", None)
        scope = getattr(request, "scope", None)
        if scope is not None:
            # Under ASGI the server's access log prints the scope's query string.
            raw = scope.get("query_string", b"")
            if isinstance(raw, bytes):  # a str from Django's AsyncClient
                raw = raw.decode("latin-1")
            stripped = self._pipeline.strip_query(raw)
            if stripped is not None:
                set_scope_query(scope, stripped)

    def _refuse(self, refusal: Refuse, request: HttpRequest) -> HttpResponse:
        error = refusal.error
        view = json_response(error.status, error.body, refusal.headers)
        return http_response(view, request.method or "GET")


def _warn_if_before_auth_middleware() -> None:
    middleware = list(getattr(settings, "MIDDLEWARE", None) or ())
    names = [m for m in middleware if m == _AUTH_MIDDLEWARE or m.endswith(".TokenGuardMiddleware")]
    if names and names[0] != _AUTH_MIDDLEWARE and _AUTH_MIDDLEWARE in names:
        log.warning(
            "%s comes before %s in MIDDLEWARE: request.user will be Django's session user "
            "(request.principal is still tokenguard's)",
            _SELF,
            _AUTH_MIDDLEWARE,
        )
