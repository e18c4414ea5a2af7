"""The token policy of a configuration: what :mod:`tokenguard.jose` needs of the settings.

:mod:`tokenguard.jose` reads no settings (it takes a :class:`~tokenguard.jose.policy.TokenPolicy`
value), so the translation from settings to policy lives here, on the settings' side.
"""

from __future__ import annotations

from ..jose.keys import key_ring_for
from ..jose.policy import TokenPolicy
from .settings import Settings

__all__ = ["revocation_windows_ms", "token_policy"]


def token_policy(settings: Settings) -> TokenPolicy:
    """What :mod:`tokenguard.jose` needs of ``settings`` to issue and verify access tokens.

    The key ring is the process's one ring for these settings (shared by issuer and verifier).
    """
    return TokenPolicy(
        secret=settings.secret_bytes,
        algorithm=settings.algorithm,
        issuer=settings.issuer,
        audience=settings.audience,
        leeway_s=settings.leeway_ms / 1000,
        require_exp=not settings.allow_tokens_without_exp,
        max_length=settings.max_token_length,
        accept_hmac=settings.jwt_accept_hmac,
        keys=key_ring_for(
            settings.jwt_keys,
            settings.jwks_url,
            settings.jwks_cache_ms,
            settings.jwks_min_refetch_ms,
        ),
    )


def revocation_windows_ms(settings: Settings) -> tuple[int, int]:
    """How long a revocation can refuse a token, in ms: a user's (the longest token lifetime,
    ``SESSION_COOKIE_TTL`` included, plus the leeway) and a session's (``ACCESS_TOKEN_TTL``
    plus the leeway: a session-mode token's session is checked against the store anyway).

    Every process's registry (:mod:`tokenguard.guard.revocation`) keeps its entries that
    long, and the session stores their windows of revocations.
    """
    user_ms = max(settings.access_token_ttl_ms, settings.session_cookie_ttl_ms)
    return user_ms + settings.leeway_ms, settings.access_token_ttl_ms + settings.leeway_ms
