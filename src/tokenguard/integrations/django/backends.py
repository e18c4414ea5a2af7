"""An authentication backend for ``AUTHENTICATION_BACKENDS``: Django's own logins (the
admin, ``LoginView``, ``authenticate()``) by e-mail and password, as ``/auth/login`` does.

::

    AUTHENTICATION_BACKENDS = ["tokenguard.integrations.django.backends.TokenGuardBackend"]

The account is found by the same :class:`~tokenguard.integrations.django.users.DjangoUserStore`
as tokenguard's login (the one in ``TOKENGUARD["django_users"]``, else one with the defaults):
by e-mail, case-insensitively, never a guess among several. The password is checked by
Django's hashers (``user.check_password``, which upgrades the hash as Django always does), and
inactive users are refused (``user_can_authenticate``). Permissions and ``get_user`` are
Django's ``ModelBackend``'s. Import it only from settings: it needs the app registry.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.hashers import make_password
from django.http import HttpRequest

from .conf import get_guard
from .users import DjangoUserStore

__all__ = ["TokenGuardBackend"]


def user_store() -> DjangoUserStore:
    """The Django user store tokenguard's login uses, or one with the defaults."""
    users = get_guard().users
    return users if isinstance(users, DjangoUserStore) else DjangoUserStore()


class TokenGuardBackend(ModelBackend):  # type: ignore[misc]  # Django ships no types
    """``authenticate(request, email=..., password=...)`` (or ``username=``, which the admin's
    login form sends: it is read as the e-mail)."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        email: str | None = None,
        **kwargs: Any,
    ) -> Any:
        identifier = email if email is not None else username
        if not identifier or password is None:
            return None
        account = user_store().account_by_email(identifier)
        if account is None:
            make_password(password)  # an unknown e-mail costs what a wrong password does
            return None
        if account.check_password(password) and self.user_can_authenticate(account):
            return account
        return None
