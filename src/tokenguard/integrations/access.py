"""Who may call a view: the checks behind every integration's ``require_user`` and
``require_role`` (one rule, whatever the framework)."""

from __future__ import annotations

from collections.abc import Collection

from ..errors import AuthError, forbidden, invalid_credentials
from ..principal import Principal

__all__ = ["role_refusal", "user_refusal"]


def user_refusal(principal: Principal) -> AuthError | None:
    """401 ``INVALID_CREDENTIALS`` for the public caller (as Directus's ``/users/me``)."""
    return None if principal.is_authenticated else invalid_credentials()


def role_refusal(
    principal: Principal, roles: Collection[str], admin_ok: bool = True
) -> AuthError | None:
    """401 for the public caller; 403 ``FORBIDDEN`` for a user whose role is not one of
    ``roles`` (administrators pass unless ``admin_ok`` is false)."""
    if not principal.is_authenticated:
        return invalid_credentials()
    if principal.role in roles or (admin_ok and principal.admin):
        return None
    return forbidden()
