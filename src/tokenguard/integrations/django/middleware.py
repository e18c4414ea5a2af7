"""The Django middleware: every request authenticated as the shells do it.

It works under Django's WSGI handler, its ASGI handler and its test clients: one flow decides
each request (:meth:`TokenGuardMiddleware.decide`), driven by
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
from ...guard.decide import Refusal
from ...http.serve import environ_request
from ...http.views import RequestView, json_response
from ...principal import Principal
from ...shells.asgi import _strip_query_token as strip_scope_query_token
from ...shells.environ import authenticate_environ, csrf_refusal, header_of, strip_query_token
from .conf import get_guard
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
        self._guard = self.core.guard
        self._router = self.core.router
        self._auth_prefix = self._router.path_prefixes
        core_settings = self.core.settings
        self._strip = (
            frozenset(core_settings.query_params) if core_settings.strip_query_token else None
        )
        self._throttles = self.core.throttles
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
        query: str = meta.get("QUERY_STRING", "")
        if self._throttles:
            refusal = yield from self.core.throttle(meta.get("REMOTE_ADDR"), header_of(meta))
            if refusal is not None:
                if query and self._strip:
                    strip_query_token(meta, query, self._strip)
                    self._stripped(request, query)
                return self._refuse(refusal, request)
        outcome = authenticate_environ(self._guard, meta, query, self._strip)
        if query and self._strip:
            self._stripped(request, query)
        if type(outcome) is GeneratorType:
            outcome = yield from outcome
        if type(outcome) is Refusal:
            return self._refuse(outcome, request)
        assert isinstance(outcome, Principal)
        method = request.method or "GET"
        path = request.path_info
        if path.startswith(self._auth_prefix) and self._router.answers(method, path):
            view = environ_request(
                self._router,
                meta,
                outcome,
                stream=request,
                # Django's ASGI handler has read the whole body before the middleware runs.
                terminated=True if hasattr(request, "scope") else None,
            )
            if isinstance(view, RequestView):
                view = yield from self._router.handle(view, request.scheme)
            return http_response(view, method)
        if outcome.via != "public" and meta.get("HTTP_COOKIE"):
            refusal = csrf_refusal(self.core, meta, outcome, query, request.scheme)
            if refusal is not None:
                return self._refuse(refusal, request)
        self.attach(request, outcome)
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

    def _stripped(self, request: HttpRequest, query: str) -> None:
        """After ``request.META`` lost the query token: the rest of the request too."""
        if request.META.get("QUERY_STRING", "") == query:
            return  # nothing was taken out
        # request.GET is parsed lazily from META, unless a middleware before us read it.
        request.__dict__.pop("GET", None)
        scope = getattr(request, "scope", None)
        if scope is not None and self._strip:
            # Under ASGI the server's access log prints the scope's query string.
            raw = scope.get("query_string", b"")
            if isinstance(raw, bytes):  # a str from Django's AsyncClient
                raw = raw.decode("latin-1")
            strip_scope_query_token(scope, raw, self._strip)

    def _refuse(self, refusal: Refusal, request: HttpRequest) -> HttpResponse:
        error = refusal.error
        view = json_response(error.status, error.body, self.core.refusal_headers(refusal))
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
