"""Starlette/FastAPI helpers: require a user or a role in an endpoint, and tokenguard as one
authentication backend among others under Starlette's ``AuthenticationMiddleware``.

::

    from tokenguard.integrations.starlette import require_role, require_user

    @require_user
    async def me(request):
        return JSONResponse({"id": request.state.user.user})

With :class:`~tokenguard.shells.asgi.TokenGuardMiddleware` tokenguard also serves the
``/auth`` endpoints. :class:`TokenGuardBackend` only authenticates (no ``/auth`` endpoints):
for an app that already has Starlette's ``AuthenticationMiddleware``::

    from starlette.middleware import Middleware
    from starlette.middleware.authentication import AuthenticationMiddleware

    guard = TokenGuard(flavour="async")
    app = Starlette(routes=..., middleware=[
        Middleware(AuthenticationMiddleware, backend=TokenGuardBackend(guard), on_error=on_error),
    ])
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from types import GeneratorType
from typing import Any, TypeVar, cast

from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    BaseUser,
)
from starlette.requests import HTTPConnection
from starlette.responses import PlainTextResponse, Response

from ..app import TokenGuard
from ..errors import AuthError
from ..flow import run_async
from ..guard.pipeline import Handshake, Refuse
from ..principal import Principal
from ..shells.scope import read_scope, set_scope_query
from .access import role_refusal, user_refusal

__all__ = [
    "TokenGuardBackend",
    "TokenRefused",
    "error_response",
    "get_principal",
    "on_error",
    "require_role",
    "require_user",
]

F = TypeVar("F", bound=Callable[..., Any])


def get_principal(conn: HTTPConnection) -> Principal:
    """The principal tokenguard attached to this request."""
    principal = conn.scope.get("state", {}).get("user")
    if not isinstance(principal, Principal):
        raise RuntimeError("TokenGuardMiddleware is not installed on this app")
    return principal


def error_response(error: AuthError, headers: list[tuple[str, str]] | None = None) -> Response:
    """``error`` as Directus answers it: its JSON body and status (and ``headers``, such as
    the session cookie's deletion or ``Retry-After``)."""
    response = Response(
        error.body, status_code=error.status, media_type="application/json; charset=utf-8"
    )
    for name, value in headers or ():
        response.headers.append(name, value)
    return response


def _find_request(args: tuple[Any, ...], kwargs: dict[str, Any]) -> HTTPConnection:
    for value in (*args, *kwargs.values()):
        if isinstance(value, HTTPConnection):
            return value
    raise RuntimeError("the endpoint takes no Request argument")


def _guarded(check: Callable[[Principal], AuthError | None]) -> Callable[[F], F]:
    def decorate(endpoint: F) -> F:
        if inspect.iscoroutinefunction(endpoint):

            @functools.wraps(endpoint)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                error = check(get_principal(_find_request(args, kwargs)))
                if error is not None:
                    return error_response(error)
                return await endpoint(*args, **kwargs)

            return cast(F, async_wrapper)

        @functools.wraps(endpoint)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            error = check(get_principal(_find_request(args, kwargs)))
            if error is not None:
                return error_response(error)
            return endpoint(*args, **kwargs)

        return cast(F, sync_wrapper)

    return decorate


#: Refuse the public caller with 401 ``INVALID_CREDENTIALS``.
require_user = _guarded(user_refusal)


def require_role(*roles: str, admin_ok: bool = True) -> Callable[[F], F]:
    """Allow only users with one of ``roles`` (and admins unless ``admin_ok=False``)."""
    return _guarded(lambda principal: role_refusal(principal, roles, admin_ok))


class TokenRefused(AuthenticationError):
    """A token :class:`TokenGuardBackend` refused: Starlette's ``AuthenticationError`` carrying
    the Directus ``error`` and the ``headers`` to answer it with (see :func:`on_error`)."""

    def __init__(self, error: AuthError, headers: list[tuple[str, str]]) -> None:
        super().__init__(error.message)
        self.error = error
        self.headers = headers


def on_error(conn: HTTPConnection, exc: Exception) -> Response:
    """``AuthenticationMiddleware(on_error=on_error)``: a refusal of :class:`TokenGuardBackend`
    as Directus answers it (``{"errors":[…]}``, its status); another backend's error as
    Starlette answers it by default (400, the message as text)."""
    if isinstance(exc, TokenRefused):
        return error_response(exc.error, exc.headers)
    return PlainTextResponse(str(exc), status_code=400)


class TokenGuardBackend(AuthenticationBackend):
    """tokenguard as a Starlette ``AuthenticationBackend``.

    :meth:`authenticate` asks the request pipeline (rate limits, the token from the header, the
    ``access_token`` query parameter or the session cookie, the cross-site check for cookie
    requests, the token taken out of the URL) and answers ``(AuthCredentials(principal.scopes),
    principal)`` for a user, ``None`` for the public caller (Starlette's
    ``UnauthenticatedUser``), and raises :class:`TokenRefused` for a bad token. The principal
    is also ``request.state.user`` (the public principal for the public caller), so that
    :func:`require_user` and :func:`require_role` work as under the middleware.

    Pass a ready :class:`~tokenguard.app.TokenGuard` as ``guard`` (you close it), or settings
    as keyword arguments (then close the backend with :meth:`aclose`). The ``/auth`` endpoints
    are not served: that takes :class:`~tokenguard.shells.asgi.TokenGuardMiddleware`.
    """

    def __init__(self, guard: TokenGuard | None = None, **options: Any) -> None:
        #: Whether the guard is this backend's to close.
        self.owns_core = guard is None
        self.core = guard if guard is not None else TokenGuard(flavour="async", **options)
        self._pipeline = self.core.pipeline

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        scope = conn.scope
        websocket = scope["type"] == "websocket"
        scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
        request = read_scope(scope, scheme)
        decision: Any = (
            self._pipeline.upgrade(request) if websocket else self._pipeline.decide(request)
        )
        if type(decision) is GeneratorType:
            decision = await run_async(decision)
        if decision.query is not None:
            set_scope_query(scope, decision.query)
        if type(decision) is Refuse:
            raise TokenRefused(decision.error, decision.headers)
        if type(decision) is Handshake:
            return None  # the realtime path: the socket authenticates itself
        principal: Principal = decision.principal  # Pass, or Route (an /auth path)
        # A copy, never the server's dict (see tokenguard.shells.asgi).
        state = scope.get("state")
        state = dict(state) if state else {}
        state["user"] = principal
        state["role"] = principal.role
        scope["state"] = state
        if not principal.is_authenticated:
            return None
        # Principal has BaseUser's three properties (is_authenticated, display_name, identity).
        return AuthCredentials(list(principal.scopes)), cast(BaseUser, principal)

    async def aclose(self) -> None:
        """Close the guard this backend made (a guard passed in is left to its owner)."""
        if self.owns_core:
            await self.core.aclose()
