"""``request.user`` for Django: the principal, shaped like ``django.contrib.auth``'s users.

It needs no database and no ``django.contrib.auth``: nothing here imports it. Code written
for Django's users (``login_required``, templates' ``user.is_authenticated``, the
``{% if perms %}`` checks) reads it as it reads a ``User`` or an ``AnonymousUser``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ...principal import Principal

__all__ = ["TokenGuardUser"]


class TokenGuardUser:
    """The caller tokenguard authenticated, or the public caller (``is_anonymous``).

    ``pk``/``id``/``username`` are the Directus user id (``None``/``""`` for the public
    caller); ``is_staff`` and ``is_superuser`` are the token's admin access; ``role`` and
    ``via`` are the principal's. Permissions are Directus's, not Django's: an active
    administrator has every Django permission (as a superuser has), anyone else none.
    Subclass it (and pass ``user_class`` to the middleware's subclass) for other rules.
    """

    __slots__ = ("principal",)

    def __init__(self, principal: Principal) -> None:
        #: The :class:`~tokenguard.principal.Principal` this user stands for.
        self.principal = principal

    # -- who -------------------------------------------------------------------------------

    @property
    def pk(self) -> str | None:
        return self.principal.user

    @property
    def id(self) -> str | None:
        return self.principal.user

    @property
    def username(self) -> str:
        return self.principal.user or ""

    def get_username(self) -> str:
        return self.username

    @property
    def role(self) -> str | None:
        return self.principal.role

    @property
    def via(self) -> str:
        return self.principal.via

    @property
    def is_authenticated(self) -> bool:
        return self.principal.is_authenticated

    @property
    def is_anonymous(self) -> bool:
        return not self.principal.is_authenticated

    @property
    def is_active(self) -> bool:
        # The guard only lets active users' tokens through; the public caller is no one.
        return self.principal.is_authenticated

    @property
    def is_staff(self) -> bool:
        return self.principal.is_authenticated and self.principal.admin

    @property
    def is_superuser(self) -> bool:
        return self.principal.is_authenticated and self.principal.admin

    # -- permissions (PermissionsMixin's interface) ----------------------------------------

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        return self.is_active and self.is_superuser

    def has_perms(self, perm_list: Iterable[str], obj: Any = None) -> bool:
        if isinstance(perm_list, str) or not isinstance(perm_list, Iterable):
            raise ValueError("perm_list must be an iterable of permissions.")  # as Django
        return all(self.has_perm(perm, obj) for perm in perm_list)

    def has_module_perms(self, app_label: str) -> bool:
        return self.is_active and self.is_superuser

    def get_user_permissions(self, obj: Any = None) -> set[str]:
        return set()

    def get_group_permissions(self, obj: Any = None) -> set[str]:
        return set()

    def get_all_permissions(self, obj: Any = None) -> set[str]:
        return set()

    # -- no database row -------------------------------------------------------------------

    def save(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("a tokenguard user has no database row to save")

    def delete(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("a tokenguard user has no database row to delete")

    def set_password(self, raw_password: str) -> None:
        raise NotImplementedError("passwords are set in tokenguard's user store")

    def check_password(self, raw_password: str) -> bool:
        raise NotImplementedError("passwords are checked by tokenguard's /auth/login")

    # -- values ----------------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TokenGuardUser) and other.principal == self.principal

    def __hash__(self) -> int:
        return hash(self.principal)

    def __str__(self) -> str:
        return self.principal.user or "AnonymousUser"

    def __repr__(self) -> str:
        return f"TokenGuardUser({self.principal!r})"
