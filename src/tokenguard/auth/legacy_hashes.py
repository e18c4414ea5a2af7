"""Verify password hashes that other software wrote, so that an existing user table keeps
working; a successful login then re-hashes the password with argon2id.

Recognised (by prefix, never guessed):

- bcrypt ``$2a$``/``$2b$``/``$2y$`` (PHP, Node, passlib, Devise…), with the ``bcrypt`` package;
- Werkzeug's ``pbkdf2:<hash>:<n>$salt$hex`` and ``scrypt:<n>:<r>:<p>$salt$hex`` (Flask apps'
  ``generate_password_hash``), checked by Werkzeug itself;
- Django's ``pbkdf2_sha256$…``, ``pbkdf2_sha1$…``, ``bcrypt_sha256$…``, ``bcrypt$…`` and
  ``argon2$…`` encodings (:mod:`hashlib`'s PBKDF2 and the ``bcrypt`` package).

Every comparison is constant-time (:func:`hmac.compare_digest`, or the library's own). A hash
that looks like one of these but is malformed verifies as ``False``, never raises.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable

from ..errors import MissingExtra

__all__ = ["is_legacy_hash", "verify_legacy"]

_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")
#: A stored hash asking for more PBKDF2 rounds than this is refused rather than run: it would
#: hold a worker for minutes (Django's 2024 default is 870 000).
MAX_PBKDF2_ITERATIONS = 10_000_000
# bcrypt reads at most 72 bytes; the libraries that wrote these hashes truncated silently,
# while bcrypt>=5 raises instead, so truncate as the writer did.
_BCRYPT_MAX = 72
# A bcrypt hash is exactly this shape (a cost from 04 to 31, 22 characters of salt and 31 of
# digest). Anything else is refused before bcrypt sees it: bcrypt 4.1 panics on a short one,
# and a Rust panic is not an Exception.
_BCRYPT_SHAPE = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")


def _bcrypt(password: bytes, stored: str) -> bool:
    try:
        import bcrypt
    except ImportError as exc:
        raise MissingExtra("verifying bcrypt password hashes", "bcrypt", "bcrypt") from exc
    if not _BCRYPT_SHAPE.fullmatch(stored):
        return False
    try:
        return bool(bcrypt.checkpw(password[:_BCRYPT_MAX], stored.encode("ascii")))
    except (ValueError, UnicodeEncodeError):
        return False


def _werkzeug(password: bytes, stored: str) -> bool:
    from werkzeug.security import check_password_hash

    try:
        return check_password_hash(stored, password.decode("utf-8", "surrogatepass"))
    except (ValueError, TypeError, UnicodeDecodeError, OverflowError, MemoryError):
        return False


def _django_pbkdf2(algorithm: str) -> Callable[[bytes, str], bool]:
    def verify(password: bytes, stored: str) -> bool:
        # <name>$<iterations>$<salt>$<base64 of the derived key>
        parts = stored.split("$")
        if len(parts) != 4 or not parts[1].isdigit():
            return False
        iterations = int(parts[1])
        if not 0 < iterations <= MAX_PBKDF2_ITERATIONS:
            return False
        try:
            expected = base64.b64decode(parts[3], validate=True)
        except (binascii.Error, ValueError):
            return False
        if not expected:
            return False
        derived = hashlib.pbkdf2_hmac(
            algorithm, password, parts[2].encode("utf-8"), iterations, dklen=len(expected)
        )
        return hmac.compare_digest(derived, expected)

    return verify


def _django_bcrypt_sha256(password: bytes, stored: str) -> bool:
    # Django hashes the password with SHA-256 (hex) first, lifting bcrypt's 72-byte limit.
    digest = hashlib.sha256(password).hexdigest().encode("ascii")
    return _bcrypt(digest, stored[len("bcrypt_sha256$") :])


def _django_bcrypt(password: bytes, stored: str) -> bool:
    return _bcrypt(password, stored[len("bcrypt$") :])


_SCHEMES: tuple[tuple[str, Callable[[bytes, str], bool]], ...] = (
    *((prefix, _bcrypt) for prefix in _BCRYPT_PREFIXES),
    ("pbkdf2:", _werkzeug),
    ("scrypt:", _werkzeug),
    ("pbkdf2_sha256$", _django_pbkdf2("sha256")),
    ("pbkdf2_sha1$", _django_pbkdf2("sha1")),
    ("bcrypt_sha256$", _django_bcrypt_sha256),
    ("bcrypt$", _django_bcrypt),
)


def is_legacy_hash(stored: str) -> bool:
    """Whether ``stored`` is in one of the recognised foreign formats."""
    return stored.startswith(tuple(prefix for prefix, _ in _SCHEMES))


def verify_legacy(stored: str, password: bytes) -> bool | None:
    """``True``/``False`` for a recognised foreign hash, ``None`` for any other string.
    Django's ``argon2$…`` is not handled here: strip its prefix and use argon2 (see
    :func:`argon2_of_django`)."""
    for prefix, verify in _SCHEMES:
        if stored.startswith(prefix):
            return verify(password, stored)
    return None


def argon2_of_django(stored: str) -> str | None:
    """The PHC string inside Django's ``argon2$argon2id$…`` encoding, or ``None``."""
    if stored.startswith("argon2$argon2"):
        return stored[len("argon2") :]
    return None
