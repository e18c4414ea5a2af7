"""What issuing and verifying access tokens need to know: one small, frozen value.

:mod:`tokenguard.jose` reads no settings. Whoever holds the settings builds a
:class:`TokenPolicy` (``tokenguard.config.token_policy`` does it for
:class:`~tokenguard.config.Settings`) and hands it to
:class:`~tokenguard.jose.tokens.TokenVerifier` and
:func:`~tokenguard.jose.tokens.issue_access_token`; tests and tools can build one directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ConfigError
from .keys import KeyRing

__all__ = ["HMAC_ALGORITHMS", "TokenPolicy"]

#: HMAC algorithms the request path verifies itself; asymmetric keys live in a KeyRing.
HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    """The access tokens' keys and claims rules.

    ``secret`` is the HMAC key (``algorithm`` one of :data:`HMAC_ALGORITHMS`);
    ``accept_hmac=False`` retires it for verifying (a service on asymmetric keys, or a
    verify-only one that holds no secret) while it still signs when no active key exists.
    ``keys`` holds the asymmetric keys by ``kid`` and the active signer, if any.
    """

    secret: bytes = field(repr=False)
    algorithm: str = "HS256"
    issuer: str = "directus"
    audience: str | None = None
    leeway_s: float = 5.0
    require_exp: bool = True
    max_length: int = 4096
    accept_hmac: bool = True
    keys: KeyRing | None = None

    def __post_init__(self) -> None:
        if self.algorithm not in HMAC_ALGORITHMS:
            raise ConfigError(
                f"the HMAC algorithm must be one of {', '.join(HMAC_ALGORITHMS)}, "
                f"not {self.algorithm!r}"
            )
