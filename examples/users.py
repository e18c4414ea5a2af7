"""What every example answers for Directus's ``GET /users/me``: one shape, written once."""

from __future__ import annotations

from typing import Any

from tokenguard.stores.base import User

__all__ = ["users_me_body"]


def users_me_body(user: User) -> dict[str, Any]:
    """The fields of ``user`` Directus returns to its owner by default."""
    return {
        "data": {
            "id": user.id,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "email": user.email,
            "status": user.status,
            "role": user.role,
            "provider": user.provider,
        }
    }
