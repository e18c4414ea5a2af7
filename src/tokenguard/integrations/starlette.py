"""Starlette/FastAPI helpers: require a user or a role in an endpoint.

::

    from tokenguard.integrations.starlette import require_role, require_user

    @require_user
    async def me(request):
        return JSONResponse({"id": request.state.user.user})
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar, cast

from starlette.requests import HTTPConnection
from starlette.responses import Response

from ..errors import AuthError
from ..principal import Principal
from .access import role_refusal, user_refusal

__all__ = ["error_response", "get_principal", "require_role", "require_user"]

F = TypeVar("F", bound=Callable[..., Any])


def get_principal(conn: HTTPConnection) -> Principal:
    """The principal tokenguard attached to this request."""
    principal = conn.scope.get("state", {}).get("user")
    if not isinstance(principal, Principal):
        raise RuntimeError("TokenGuardMiddleware is not installed on this app")
    return principal


def error_response(error: AuthError) -> Response:
    return Response(
        error.body, status_code=error.status, media_type="application/json; charset=utf-8"
    )


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
