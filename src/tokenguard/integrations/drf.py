"""Django REST framework: an authentication class and permission classes by role.

::

    # settings.py
    REST_FRAMEWORK = {
        "DEFAULT_AUTHENTICATION_CLASSES": ["tokenguard.integrations.drf.TokenGuardAuthentication"],
    }

    # views.py
    from tokenguard.integrations.drf import HasRole, IsAdmin

    class Reports(APIView):
        permission_classes = [HasRole("editor")]        # or [IsAdmin], [IsAuthenticated]

:class:`TokenGuardAuthentication` takes the token where tokenguard does (``Authorization:
Bearer``, the ``access_token`` query parameter, the session cookie). With
:class:`~tokenguard.integrations.django.TokenGuardMiddleware` installed (recommended: it also
answers ``/auth/login`` and the other routes) it reads what the middleware decided, so no
token is checked twice and a bad token never reaches the view (the middleware answered it
with Directus's error). Without the middleware it checks the token itself, with the same guard
(:func:`~tokenguard.integrations.django.get_guard`), and a refused token is DRF's 401
``AuthenticationFailed`` (or the refusal's status, 403 or 503).

``request.user`` is a :class:`~tokenguard.integrations.django.TokenGuardUser` and
``request.auth`` the :class:`~tokenguard.principal.Principal`; the public caller is
DRF's anonymous request (``authenticate`` answers ``None``), which ``IsAuthenticated`` and
:class:`HasRole` answer with 401 (``authenticate_header`` is ``Bearer``). A project without
``django.contrib.auth`` sets ``"UNAUTHENTICATED_USER":
"tokenguard.integrations.drf.anonymous_user"`` (DRF's default is Django's ``AnonymousUser``).

CSRF, as DRF's ``SessionAuthentication`` enforces it: only for a request authenticated by the
session cookie with an unsafe method, checked by tokenguard's policy (trusted origins, see
:mod:`tokenguard.guard.csrf`); a Bearer or query token, which a browser never sends by
itself, is not checked.
"""

from __future__ import annotations

from types import GeneratorType
from typing import Any

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission

from ..errors import AuthError
from ..flow import run_sync
from ..guard.pipeline import Pass, Refuse, Route
from ..principal import Principal
from .access import role_refusal
from .django.conf import get_guard
from .django.request import DjangoRequest
from .django.user import TokenGuardUser

__all__ = [
    "HasRole",
    "IsAdmin",
    "RolePermission",
    "TokenGuardAuthentication",
    "TokenRefused",
    "anonymous_user",
]


class TokenRefused(exceptions.APIException):  # type: ignore[misc]  # DRF ships no types
    """A refusal other than 401 (403 ``INVALID_TOKEN``, 503), with tokenguard's status."""

    def __init__(self, error: AuthError) -> None:
        super().__init__(detail=error.message, code=error.code)
        self.status_code = error.status


def _raise(error: AuthError) -> None:
    if error.status == 401:
        raise exceptions.AuthenticationFailed(detail=error.message, code=error.code)
    if error.status == 403 and error.code == "FORBIDDEN":
        raise exceptions.PermissionDenied(detail=error.message, code=error.code)
    raise TokenRefused(error)


def _principal_of(request: Any) -> Principal | None:
    """The principal DRF authenticated, or the middleware's, or ``None``."""
    auth = getattr(request, "auth", None)
    if isinstance(auth, Principal):
        return auth
    principal = getattr(getattr(request, "_request", request), "principal", None)
    return principal if isinstance(principal, Principal) else None


class TokenGuardAuthentication(BaseAuthentication):  # type: ignore[misc]  # DRF ships no types
    """``(TokenGuardUser, Principal)`` for a token, ``None`` for the public caller."""

    #: What ``request.user`` is made of; a subclass may change it.
    user_class: type[TokenGuardUser] = TokenGuardUser

    def authenticate(self, request: Any) -> tuple[TokenGuardUser, Principal] | None:
        django_request = request._request
        principal = getattr(django_request, "principal", None)
        if not isinstance(principal, Principal):
            principal = self._verify(django_request)
        if not principal.is_authenticated:
            return None
        return self.user_class(principal), principal

    def _verify(self, django_request: Any) -> Principal:
        """No middleware: the request pipeline decides here, CSRF included. ``META`` is left
        as it is (no query stripping): the URL was already routed and logged."""
        request = DjangoRequest(django_request, django_request.method, django_request.path_info)
        decision: Any = get_guard().pipeline.decide(request)
        if type(decision) is GeneratorType:
            decision = run_sync(decision)
        if isinstance(decision, Refuse):
            _raise(decision.error)
        assert isinstance(decision, (Pass, Route))
        return decision.principal

    def authenticate_header(self, request: Any) -> str:
        """``WWW-Authenticate`` of a 401, which makes DRF answer 401 rather than 403."""
        return 'Bearer realm="api"'


class RolePermission(BasePermission):  # type: ignore[misc]  # DRF ships no types
    """Allow callers whose role is one of :attr:`roles` (administrators too, unless
    :attr:`admin_ok` is false). Made by :func:`HasRole`."""

    roles: tuple[str, ...] = ()
    admin_ok: bool = True

    def has_permission(self, request: Any, view: Any) -> bool:
        principal = _principal_of(request)
        if principal is None:
            return False
        error = role_refusal(principal, self.roles, self.admin_ok)
        if error is not None:
            self.message = error.message
            return False
        return True


def HasRole(*roles: str, admin_ok: bool = True) -> type[RolePermission]:
    """A permission class for ``permission_classes``: the public caller gets 401, a user
    with another role 403. Combine it as DRF's own (``HasRole("editor") | IsAdmin``)."""
    if not roles:
        raise ValueError("HasRole needs at least one role")
    name = "HasRole(" + ", ".join(repr(role) for role in roles) + ")"
    attributes: dict[str, Any] = {"roles": roles, "admin_ok": admin_ok, "__module__": __name__}
    return type(name, (RolePermission,), attributes)


class IsAdmin(BasePermission):  # type: ignore[misc]  # DRF ships no types
    """Allow administrators only (the token's ``admin_access``)."""

    def has_permission(self, request: Any, view: Any) -> bool:
        principal = _principal_of(request)
        return principal is not None and principal.admin


def anonymous_user() -> TokenGuardUser:
    """The public caller as ``request.user``: DRF's ``UNAUTHENTICATED_USER`` for a project
    without ``django.contrib.auth`` (whose ``AnonymousUser`` DRF uses by default)."""
    return TokenGuardUser(get_guard().guard.public)
