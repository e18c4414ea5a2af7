"""Why a token was refused: ``INVALID_TOKEN`` and ``TOKEN_EXPIRED`` values that also say why.

The reason is for the DEBUG log of the ``tokenguard`` logger only (never the token itself);
the answer is Directus's, the same body for every reason, so that a forger learns nothing.
The values are made once here and shared (an error on the request path is returned, never
raised): a refusal costs no allocation, and its reason costs nothing until it is logged.
"""

from __future__ import annotations

from ..errors import AuthError

__all__ = [
    "ALGORITHM_NOT_ACCEPTED",
    "BAD_SIGNATURE",
    "EXPIRED",
    "INVALID_CLAIMS",
    "MALFORMED",
    "NOT_YET_VALID",
    "TokenRefusal",
    "UNKNOWN_KEY",
    "WRONG_AUDIENCE",
    "reason_of",
]


class TokenRefusal(AuthError):
    """``INVALID_TOKEN`` (403), or ``TOKEN_EXPIRED`` (401) when ``expired``, with ``reason``."""

    __slots__ = ("reason",)

    def __init__(self, reason: str, *, expired: bool = False) -> None:
        if expired:
            super().__init__(401, "TOKEN_EXPIRED", "Token expired.")
        else:
            super().__init__(403, "INVALID_TOKEN", "Invalid token.")
        #: Why, in a few words, for the log.
        self.reason = reason


MALFORMED = TokenRefusal("malformed")
ALGORITHM_NOT_ACCEPTED = TokenRefusal("algorithm not accepted")
UNKNOWN_KEY = TokenRefusal("unknown key")
BAD_SIGNATURE = TokenRefusal("bad signature")
EXPIRED = TokenRefusal("expired", expired=True)
NOT_YET_VALID = TokenRefusal("not yet valid")
WRONG_AUDIENCE = TokenRefusal("wrong audience")
INVALID_CLAIMS = TokenRefusal("invalid claims")


def reason_of(error: AuthError) -> str:
    """The reason a refusal carries, else its Directus code."""
    return error.reason if isinstance(error, TokenRefusal) else error.code
