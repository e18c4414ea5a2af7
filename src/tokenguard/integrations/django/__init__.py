"""Django integration: a middleware, ``request.user`` from the token, view decorators.

::

    # settings.py
    MIDDLEWARE = [
        ...,
        "django.contrib.auth.middleware.AuthenticationMiddleware",  # if you use it: before
        "tokenguard.integrations.django.TokenGuardMiddleware",
    ]
    TOKENGUARD = {"public_role": "public"}  # keyword settings; the rest from the environment

    # views.py
    from tokenguard.integrations.django import requires_role, requires_user

    @requires_role("administrator")
    def admin(request):
        return JsonResponse({"hello": request.user.get_username()})

Works under Django's WSGI and ASGI handlers and its test clients; ``django.contrib.auth``
is not needed. See :class:`TokenGuardMiddleware` for what a request carries.

The project's own ``django.contrib.auth`` users can be tokenguard's users
(``TOKENGUARD = {"django_users": True}``, :mod:`.users`, which imports
``django.contrib.auth``: nothing else here does); :mod:`.backends` logs them in to
Django by e-mail; ``manage.py tokenguard ...`` runs the command line (:mod:`.apps`); DRF and
Channels have :mod:`tokenguard.integrations.drf` and :mod:`tokenguard.integrations.channels`.
"""

from __future__ import annotations

from .conf import close_guard, get_guard
from .decorators import get_principal, require_role, require_user, requires_role, requires_user
from .middleware import TokenGuardMiddleware
from .responses import error_response
from .user import TokenGuardUser

__all__ = [
    "TokenGuardMiddleware",
    "TokenGuardUser",
    "close_guard",
    "error_response",
    "get_guard",
    "get_principal",
    "require_role",
    "require_user",
    "requires_role",
    "requires_user",
]
