"""Parsers of setting values: a variable's name and its raw value in, a typed value out.

Every parser raises :class:`~tokenguard.errors.ConfigError` (naming the variable) for a value
it cannot read, and nothing else, so a typo in the environment stops start-up with a sentence
instead of a traceback. They are shared by the :class:`~tokenguard.config.Settings` declaration
and by the provider variables (``AUTH_<NAME>_*``, :mod:`tokenguard.auth.providers`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, Literal

from ..durations import parse_duration_ms
from ..errors import ConfigError

__all__ = [
    "Parser",
    "SameSite",
    "as_attempts",
    "as_bool",
    "as_duration",
    "as_hops",
    "as_int",
    "as_limit",
    "as_list",
    "as_lower",
    "as_same_site",
    "as_seconds",
    "as_seconds_ms",
    "as_size",
    "password_policy_pattern",
]

#: A parser: the variable's name (for the error message) and its raw value.
Parser = Callable[[str, Any], Any]

SameSite = Literal["lax", "strict", "none"]


def as_bool(name: str, value: Any) -> bool:
    """``1``/``true``/``yes``/``on`` or ``0``/``false``/``no``/``off``/empty, any case."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name} must be true or false, not {value!r}")


def as_int(name: str, value: Any) -> int:
    """A whole number."""
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a whole number, not {value!r}") from None


def as_duration(name: str, value: Any) -> int:
    """A duration in milliseconds, written as Directus writes them: ``"15m"``, ``"7d"``, ``500``."""
    try:
        return parse_duration_ms(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(
            f'{name} must be a duration such as "15m", "7d" or "500", not {value!r}'
        ) from None


_SIZE_UNITS = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}


def as_size(name: str, value: Any) -> int:
    """A size in bytes: the ``bytes`` package's forms, as Directus's ``MAX_PAYLOAD_SIZE`` takes
    them (``"1mb"``, ``"100kb"``, ``512``)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    number, unit = text, "b"
    for suffix in ("kb", "mb", "gb", "b"):
        if text.endswith(suffix):
            number, unit = text[: -len(suffix)].strip(), suffix
            break
    try:
        return int(float(number) * _SIZE_UNITS[unit])
    except (ValueError, OverflowError):  # not a number; "nan"; "inf" or too large
        example = '"1mb" or "100kb"'
        raise ConfigError(f"{name} must be a size such as {example}, not {value!r}") from None


def as_same_site(name: str, value: Any) -> SameSite:
    """A cookie's ``SameSite``: ``lax``, ``strict`` or ``none`` (empty: ``strict``)."""
    text = str(value).strip().lower() or "strict"  # Directus falls back to strict when empty
    if text not in ("lax", "strict", "none"):
        raise ConfigError(f"{name} must be lax, strict or none, not {value!r}")
    return text  # type: ignore[return-value]


def as_list(name: str, value: Any) -> tuple[str, ...]:
    """A comma list (blank entries dropped), or the items of a list given as a value."""
    if isinstance(value, str):
        return tuple(p.strip() for p in value.split(",") if p.strip())
    return tuple(str(v) for v in value)


def as_lower(name: str, value: Any) -> str:
    """A keyword, compared case-insensitively (``DB_CLIENT=PG`` is ``pg``)."""
    return str(value).strip().lower()


def as_seconds(name: str, value: Any) -> float:
    """A positive number of seconds, fractions allowed."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number of seconds, not {value!r}") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"{name} must be a positive number of seconds")
    return seconds


def as_limit(name: str, value: Any) -> int | None:
    """A whole number, or ``infinity`` (or empty) for no limit (``None``)."""
    if str(value).strip().lower() in ("infinity", "inf", ""):
        return None  # Directus's default: no limit
    return as_int(name, value)


def as_seconds_ms(name: str, value: Any) -> int:
    """A positive number of seconds, as milliseconds (at least 1)."""
    # Directus's RATE_LIMITER_DURATION is in seconds (rate-limiter-flexible's `duration`).
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number of seconds, not {value!r}") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"{name} must be a positive number of seconds, not {value!r}")
    ms = seconds * 1000
    if not math.isfinite(ms):  # finite seconds, but too many to count in milliseconds
        raise ConfigError(f"{name} must be a positive number of seconds, not {value!r}")
    return max(1, round(ms))


def as_attempts(name: str, value: Any) -> int:
    """A count of attempts; ``null``, ``false``, ``0`` or empty turn the limit off (``0``)."""
    # Directus's auth_login_attempts: null turns the lockout off; so do 0 and "false".
    if value is None or str(value).strip().lower() in ("", "null", "false", "0"):
        return 0
    return as_int(name, value)


def as_hops(name: str, value: Any) -> int:
    """``IP_TRUST_PROXY``: ``false`` (no proxy), ``true`` (one), or how many proxies stand in
    front."""
    text = str(value).strip().lower()
    if text in ("true", "yes", "on"):
        return 1
    if text in ("false", "no", "off", ""):
        return 0
    return as_int(name, value)


_REGEX_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "u": 0}


def password_policy_pattern(policy: str) -> re.Pattern[str]:
    """``AUTH_PASSWORD_POLICY`` as a pattern: a regular expression, optionally written as
    Directus stores it, ``/…/flags`` (flags among ``i``, ``m``, ``s``, ``u``). A password
    passes when the pattern is found in it (JavaScript's ``RegExp.test``)."""
    source, flags = policy, 0
    if len(policy) >= 2 and policy.startswith("/"):
        end = policy.rfind("/")
        if end > 0 and all(ch in _REGEX_FLAGS for ch in policy[end + 1 :]):
            source = policy[1:end]
            for ch in policy[end + 1 :]:
                flags |= _REGEX_FLAGS[ch]
    try:
        return re.compile(source, flags)
    except re.error as exc:
        raise ConfigError(
            f"AUTH_PASSWORD_POLICY is not a valid regular expression: {exc}"
        ) from None
