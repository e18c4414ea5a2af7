"""Durations written the way Directus's environment writes them ("15m", "7d", "500")."""

from __future__ import annotations

import re

__all__ = ["parse_duration_ms"]

# Units of the `ms` package, which Directus uses for every *_TTL variable.
_UNITS_MS: dict[str, float] = {}
for _names, _size in (
    (("years", "year", "yrs", "yr", "y"), 365.25 * 86_400_000),
    (("weeks", "week", "w"), 7 * 86_400_000),
    (("days", "day", "d"), 86_400_000),
    (("hours", "hour", "hrs", "hr", "h"), 3_600_000),
    (("minutes", "minute", "mins", "min", "m"), 60_000),
    (("seconds", "second", "secs", "sec", "s"), 1000),
    (("milliseconds", "millisecond", "msecs", "msec", "ms"), 1),
):
    for _n in _names:
        _UNITS_MS[_n] = _size

_DURATION = re.compile(r"^(-?(?:\d+)?\.?\d+) *([a-z]+)?$", re.IGNORECASE)


def parse_duration_ms(value: str | int | float) -> int:
    """Return a duration in milliseconds.

    A bare number is milliseconds, as ``ms("900")`` is. (Directus hands a numeric TTL to
    jsonwebtoken, which reads it as *seconds*, while reporting ``expires`` in ms; we keep
    one meaning for both.) Raises ``ValueError`` for anything else.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, (int, float)):
        return int(value)
    text = value.strip()
    if len(text) > 100:
        raise ValueError("duration too long")
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"not a duration: {value!r}")
    number = float(m.group(1))
    unit = (m.group(2) or "ms").lower()
    if unit not in _UNITS_MS:
        raise ValueError(f"unknown duration unit in {value!r}")
    return round(number * _UNITS_MS[unit])
