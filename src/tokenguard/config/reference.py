"""The configuration reference, ``docs/configuration.md``, written from the declaration.

``python -m tokenguard.config > docs/configuration.md`` writes it again; a test fails when the
committed file no longer matches what the declaration says.
"""

from __future__ import annotations

from typing import Any

from .declare import Declared
from .parsers import as_duration, as_seconds_ms, as_size
from .settings import SETTINGS

__all__ = ["reference_markdown"]

_INTRO = """\
# Configuration reference

<!-- Written by `python -m tokenguard.config > docs/configuration.md` from the declaration of
the settings (tokenguard/config/settings.py); do not edit by hand. -->

Every setting is an environment variable and a keyword argument (of `TokenGuard`, the
middlewares, `Settings.from_env`, and Django's `TOKENGUARD = {...}`); keyword arguments win.
Durations take Directus's forms (`15m`, `7d`, `10s`, or a bare number of milliseconds); lists
are comma-separated. A provider's own variables, `AUTH_<NAME>_*`, are listed under
[provider settings](auth/sso.md#provider-settings).

At start-up, when the settings come from the environment, tokenguard logs a warning on the
`tokenguard` logger for each `TOKENGUARD_*` variable it does not read and for each variable a
typo away from one of the names below, naming the closest one.
"""

_DURATION_UNITS = (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000))
_SIZE_UNITS = (("gb", 1024**3), ("mb", 1024**2), ("kb", 1024))


def reference_markdown(settings: tuple[Declared, ...] = SETTINGS) -> str:
    """The configuration reference: an introduction, then a table per group (environment
    variable, keyword, default, meaning), groups and rows in declaration order."""
    groups: dict[str, list[Declared]] = {}
    for declared in settings:
        groups.setdefault(declared.spec.group, []).append(declared)
    parts = [_INTRO]
    for group, members in groups.items():
        rows = [
            f"## {group}",
            "",
            "| environment | keyword | default | meaning |",
            "| --- | --- | --- | --- |",
        ]
        for declared in members:
            env = f"`{declared.spec.env}`" if declared.spec.env is not None else "—"
            cells = (env, f"`{declared.name}`", _default_text(declared), declared.spec.doc)
            rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
        parts.append("\n".join(rows) + "\n")
    return "\n".join(parts)


def _default_text(declared: Declared) -> str:
    spec, value = declared.spec, declared.default
    if spec.shown is not None:
        return spec.shown
    if value is None or value == () or value == "" or spec.secret:
        return "—"
    return f"`{_value_text(value, spec.parse)}`"


def _value_text(value: Any, parse: Any) -> str:
    # In the form the environment variable takes, so the default can be copied as it is.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(str(item) for item in value)
    if parse is as_duration:
        return _in_units(value, _DURATION_UNITS, "ms")
    if parse is as_seconds_ms:
        return _number(value / 1000)
    if parse is as_size:
        return _in_units(value, _SIZE_UNITS, "b")
    if isinstance(value, float):
        return _number(value)
    return str(value)


def _in_units(amount: int, units: tuple[tuple[str, int], ...], smallest: str) -> str:
    for suffix, size in units:
        if amount and amount % size == 0:
            return f"{amount // size}{suffix}"
    return f"{amount}{smallest}"


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)
