"""Readings of a token independent of tokenguard's code, for tests that need an oracle."""

from __future__ import annotations

import base64
import json
import re
from typing import Any


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key")
    return result


def _no_constants(name: str) -> Any:
    raise ValueError(name)


def canonical_b64url(segment: str) -> bytes | None:
    """The bytes of canonical unpadded base64url (re-encoding gives the segment back), else
    ``None``."""
    if not segment or len(segment) % 4 == 1:
        return None
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except ValueError:  # binascii.Error
        return None
    if base64.urlsafe_b64encode(raw).rstrip(b"=") != segment.encode("ascii", "replace"):
        return None
    return raw


def names_issuer(token: str, issuer: str, max_length: int, *, strict: bool) -> bool:
    """Whether ``token``'s payload names ``issuer``: read as a strict verifier must (canonical
    base64url, JSON without duplicate keys or NaN) with ``strict``, else as loosely as Python
    can."""
    parts = token.split(".")
    if len(parts) != 3 or len(token) > max_length:
        return False
    try:
        if strict:
            raw = canonical_b64url(parts[1])
            if raw is None:
                return False
            payload = json.loads(raw, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constants)
        else:
            # As Node's Buffer: characters outside the alphabet skipped, padding included.
            data = re.sub(r"[^A-Za-z0-9_+/-]", "", parts[1])
            payload = json.loads(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)))
    except (ValueError, RecursionError):  # binascii.Error and UnicodeDecodeError are ValueErrors
        return False
    return isinstance(payload, dict) and payload.get("iss") == issuer
