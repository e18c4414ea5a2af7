"""Strict reading of a compact JWS's segments: canonical base64url and strict JSON.

Both the HMAC fast path (:mod:`tokenguard.jose.tokens`) and the asymmetric key ring
(:mod:`tokenguard.jose.keys`) read headers and payloads through these two functions, so a
segment means the same thing to each. They are stricter than RFC 7515 asks: a token we
issued never fails them, and anything looser is where parser differentials live.
"""

from __future__ import annotations

import binascii
import json
from typing import Any

__all__ = ["DuplicateKey", "b64url_decode_strict", "no_constants", "no_duplicates", "strict_json"]

_B64URL_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_SEXTET = {byte: index for index, byte in enumerate(_B64URL_ALPHABET)}
# Bits of the last character that encode nothing, by length mod 4; they must be zero.
_UNUSED_BITS = {2: 0b1111, 3: 0b11}
_URL_TO_STD = bytes.maketrans(b"-_", b"+/")
_PADDING = {0: b"", 2: b"==", 3: b"="}


def b64url_decode_strict(segment: str) -> bytes | None:
    """Decode canonical, unpadded base64url, or return ``None``.

    Canonical means: only ``A-Z a-z 0-9 - _``, no padding, no length that cannot occur,
    and zero unused bits in the last character.
    """
    size = len(segment)
    if not size or size % 4 == 1:
        return None
    try:
        data = segment.encode("ascii")
    except UnicodeEncodeError:
        return None
    # Deleting every alphabet byte must leave nothing: one C pass instead of a re-encode.
    if data.translate(None, _B64URL_ALPHABET):
        return None
    if size % 4 and _SEXTET[data[-1]] & _UNUSED_BITS[size % 4]:
        return None
    try:
        return binascii.a2b_base64(data.translate(_URL_TO_STD) + _PADDING[size % 4])
    except binascii.Error:
        return None


class DuplicateKey(ValueError):
    """A JSON object names one member twice (parsers disagree on which one wins)."""


def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` that refuses an object with a repeated member name."""
    result = dict(pairs)
    if len(result) != len(pairs):
        raise DuplicateKey("duplicate key")
    return result


def no_constants(name: str) -> Any:
    """``parse_constant`` that refuses ``NaN``, ``Infinity`` and ``-Infinity`` (not JSON)."""
    raise ValueError(f"{name} is not JSON")


# Made once: json.loads with hooks builds a new decoder (and scanner) on every call.
_STRICT_DECODER = json.JSONDecoder(object_pairs_hook=no_duplicates, parse_constant=no_constants)


def strict_json(raw: bytes) -> Any:
    """``json.loads(raw, object_pairs_hook=no_duplicates, parse_constant=no_constants)``
    without a decoder per call.

    Raises :class:`DuplicateKey` for a repeated member name, and ``ValueError``,
    ``UnicodeDecodeError`` or ``RecursionError`` for anything else that is not JSON.
    """
    # A JSON object's text starts with '{"' in UTF-8 (no BOM, no NUL): what detect_encoding
    # would conclude, without its several checks.
    encoding = "utf-8" if raw.startswith(b'{"') else json.detect_encoding(raw)
    return _STRICT_DECODER.decode(raw.decode(encoding, "surrogatepass"))
