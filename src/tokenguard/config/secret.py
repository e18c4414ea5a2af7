"""The signing secret: how a new one is made, and which ones are refused at start-up."""

from __future__ import annotations

import math
import secrets

from ..errors import ConfigError

__all__ = ["MIN_SECRET_BYTES", "check_secret", "generate_secret"]

#: HMAC algorithms the request path verifies itself; others go through PyJWT.

MIN_SECRET_BYTES = 32

# Published placeholders and the values people type when asked for "a secret".
_KNOWN_WEAK_SECRETS = frozenset(
    {
        "secret",
        "changeme",
        "change-me",
        "changethis",
        "password",
        "directus",
        "directus-test",
        "supersecret",
        "your-secret-key",
        "your-256-bit-secret",
        "replace-with-random-value",
        "0d599f0ec05c3bda8c3b8a68c32a1b47",  # CollectiveAccess's shipped JWT key
        "blah",
    }
)

_HOW_TO = (
    "Make a strong one with `tokenguard secret` (or "
    "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`) and set it as SECRET."
)

# RFC 7518 §3.2: an HMAC key at least as long as the hash output.
_MIN_KEY_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}


def generate_secret() -> str:
    """A new random secret: 48 random bytes, URL-safe base64 (64 characters)."""
    return secrets.token_urlsafe(48)


def check_secret(secret: str, algorithm: str = "HS256") -> None:
    """Raise :class:`~tokenguard.errors.ConfigError`, with advice, unless ``secret`` is fit to
    sign ``algorithm`` tokens: set, no placeholder, long enough, and varied enough."""
    raw = secret.encode()
    if not secret:
        raise ConfigError(f"SECRET is not set. {_HOW_TO}")
    lowered = secret.strip().lower()
    if lowered in _KNOWN_WEAK_SECRETS or any(
        lowered.startswith(p) for p in ("change", "your-", "replace")
    ):
        raise ConfigError(f"SECRET is a well-known placeholder value. {_HOW_TO}")
    needed = max(MIN_SECRET_BYTES, _MIN_KEY_BYTES.get(algorithm, MIN_SECRET_BYTES))
    if len(raw) < needed:
        raise ConfigError(
            f"SECRET is {len(raw)} bytes long; {algorithm} needs at least {needed}. {_HOW_TO}"
        )
    # A long run of one character, or a tiny alphabet, is not a secret however long it is.
    if _entropy_bits(secret) < 128:
        raise ConfigError(f"SECRET has too little variety to be a secret. {_HOW_TO}")


def _entropy_bits(text: str) -> float:
    counts: dict[str, int] = {}
    for ch in text:
        counts[ch] = counts.get(ch, 0) + 1
    n = len(text)
    per_char = -sum(c / n * math.log2(c / n) for c in counts.values())
    return per_char * n
