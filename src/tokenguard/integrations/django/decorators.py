"""``login_required``-style decorators answering as Directus does (401/403 JSON).

They work on sync and async views, and on class-based views' methods through Django's
``method_decorator``. They only read what the middleware decided: no token is checked twice.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from asgiref.sync import iscoroutinefunction
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest

from ...errors import AuthError
from ...principal import Principal
from ..access import role_refusal, user_refusal
from .responses import error_response

__all__ = ["get_principal", "require_role", "require_user", "requires_role", "requires_user"]

F = TypeVar("F", bound=Callable[..., Any])


def get_principal(request: HttpRequest) -> Principal:
    """The principal the middleware attached (``ImproperlyConfigured`` if it is not in
    ``MIDDLEWARE``)."""
    principal = getattr(request, "principal", None)
    if not isinstance(principal, Principal):
        raise ImproperlyConfigured(
            "tokenguard.integrations.django.TokenGuardMiddleware is not in MIDDLEWARE"
        )
    return principal


def _guarded(check: Callable[[Principal], AuthError | None]) -> Callable[[F], F]:
    def decorate(view: F) -> F:
        if iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                error = check(get_principal(request))
                if error is not None:
                    return error_response(error, request.method or "GET")
                return await view(request, *args, **kwargs)

            return cast(F, async_wrapper)

        @functools.wraps(view)
        def sync_wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            error = check(get_principal(request))
            if error is not None:
                return error_response(error, request.method or "GET")
            return view(request, *args, **kwargs)

        return cast(F, sync_wrapper)

    return decorate


#: Refuse the public caller with 401 ``INVALID_CREDENTIALS`` (Directus's ``/users/me``).
requires_user = _guarded(user_refusal)


def requires_role(*roles: str, admin_ok: bool = True) -> Callable[[F], F]:
    """Allow only users with one of ``roles`` (administrators too, unless
    ``admin_ok=False``): 401 ``INVALID_CREDENTIALS`` for the public caller, 403
    ``FORBIDDEN`` for another user."""
    return _guarded(lambda principal: role_refusal(principal, roles, admin_ok))


#: The names the Flask and Starlette integrations use.
require_user = requires_user
require_role = requires_role
