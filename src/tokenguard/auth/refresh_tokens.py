"""Refresh tokens: opaque random strings, stored only as keys (``refresh_token_key``).

A new token is 64 characters of ``A-Za-z0-9_-`` (as Directus's ``nanoid(64)``): 48 random
bytes. Its first 22 characters name the session family and are kept across rotations.

The token that replaces a token on refresh is *derived*, not drawn: the same family, then
the first 42 characters of base64url(HMAC-SHA256(rotation key, old token)). Two concurrent
refreshes of one token therefore compute the same successor, so session mode's grace period
can hand the same new token to both without the store ever holding a token in clear. The
rotation key is derived from ``SECRET`` under a fixed label, so it is never the signing key
itself; without ``SECRET`` nobody can predict a successor from a stolen token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

from ..stores.base import FAMILY_LENGTH, REFRESH_TOKEN_LENGTH, refresh_token_key

__all__ = ["RefreshTokens", "is_refresh_token", "refresh_token_key"]

_SHAPE = re.compile(rf"[A-Za-z0-9_-]{{{REFRESH_TOKEN_LENGTH}}}")
_LABEL = b"tokenguard refresh-token rotation v1"


def is_refresh_token(value: object) -> bool:
    """Whether ``value`` has the shape of one of our refresh tokens (checked before any I/O)."""
    return isinstance(value, str) and _SHAPE.fullmatch(value) is not None


class RefreshTokens:
    """Makes new refresh tokens and derives their successors; built once from the secret."""

    __slots__ = ("_key",)

    def __init__(self, secret: bytes) -> None:
        self._key = hmac.new(secret, _LABEL, hashlib.sha256).digest()

    @staticmethod
    def new() -> str:
        """A fresh token for a new login (a new family)."""
        token = secrets.token_urlsafe(48)
        assert len(token) == REFRESH_TOKEN_LENGTH
        return token

    def successor(self, token: str) -> str:
        """The token that ``token`` rotates into (same family, derived tail)."""
        mac = hmac.new(self._key, token.encode("ascii"), hashlib.sha256).digest()
        tail = base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")
        return token[:FAMILY_LENGTH] + tail[: REFRESH_TOKEN_LENGTH - FAMILY_LENGTH]
