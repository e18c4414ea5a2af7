"""Environment variables that look meant for tokenguard but that it does not read.

A misspelt variable is otherwise silent: ``ACCES_TOKEN_TTL=5m`` leaves tokens living the
default 15 minutes. :func:`unknown_settings` lists every ``TOKENGUARD_*`` variable that is no
setting, and every other variable one typo away from a name tokenguard reads (Directus's
names); :func:`warn_unknown_settings` logs one warning for each.
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Mapping

from .parsers import as_list
from .settings import ENV_NAMES

__all__ = ["unknown_settings", "warn_unknown_settings"]

log = logging.getLogger("tokenguard")

_PREFIX = "TOKENGUARD_"
_KNOWN = frozenset(ENV_NAMES.values())
_KNOWN_PLAIN = tuple(sorted(name for name in _KNOWN if not name.startswith(_PREFIX)))
# A TOKENGUARD_ name is compared without its prefix, which every candidate would share (and
# which would make TOKENGUARD_FOO look like TOKENGUARD_DEV): the rest against each name's rest,
# so TOKENGUARD_ACCESS_TOKEN_TTL points to ACCESS_TOKEN_TTL.
_BY_REST = {name.removeprefix(_PREFIX): name for name in sorted(_KNOWN)}
_RESTS = tuple(_BY_REST)

# How alike (difflib's ratio) a name must be to one tokenguard reads to count as a near miss.
# Any variable may sit in the environment, so for names without the prefix only a typo's
# distance counts (ACCES_TOKEN_TTL: 0.97); a TOKENGUARD_ name is tokenguard's for sure, so
# the closest name is offered more freely.
_NEAR_MISS = 0.85
_SUGGESTION = 0.6

# Directus variables that tokenguard leaves alone but that lie a typo away from one it reads:
# a deployment sharing Directus's environment must not be warned about them.
_DIRECTUS_ONLY = frozenset(
    {
        "EMAIL_SMTP_POOL",
        "RATE_LIMITER_BLOCK_DURATION",
        "WEBSOCKETS_LOGS_CONN_LIMIT",
        "WEBSOCKETS_LOGS_ENABLED",
    }
)


def unknown_settings(environ: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """The suspect variables of ``environ``, sorted, each with the closest variable tokenguard
    reads (``None`` when none is close): every ``TOKENGUARD_*`` variable tokenguard does not
    read, and any other variable that is a near miss of one it does. A provider's
    ``AUTH_<NAME>_*`` variables are never suspects."""
    listed = as_list("AUTH_PROVIDERS", environ.get("AUTH_PROVIDERS", ""))
    providers = tuple(f"AUTH_{name.upper()}_" for name in listed)
    found: list[tuple[str, str | None]] = []
    for name in sorted(environ):
        upper = name.upper()
        if name in _KNOWN or upper in _DIRECTUS_ONLY or upper.startswith(providers):
            continue
        if upper.startswith(_PREFIX):
            rest = _closest(upper.removeprefix(_PREFIX), _RESTS, _SUGGESTION)
            found.append((name, None if rest is None else _BY_REST[rest]))
            continue
        closest = _closest(upper, _KNOWN_PLAIN, _NEAR_MISS) or _transposition_of(upper)
        if closest is not None:
            found.append((name, closest))
    return found


def warn_unknown_settings(environ: Mapping[str, str] | None = None) -> None:
    """Log a warning on the ``tokenguard`` logger for each of :func:`unknown_settings`
    (default ``os.environ``), naming the closest setting. Values are never logged."""
    for name, closest in unknown_settings(os.environ if environ is None else environ):
        if closest is None:
            log.warning("%s is set but tokenguard reads no such setting", name)
        else:
            log.warning(
                "%s is set but tokenguard reads no such setting; did you mean %s?", name, closest
            )


def _closest(name: str, candidates: tuple[str, ...], cutoff: float) -> str | None:
    match = difflib.get_close_matches(name, candidates, n=1, cutoff=cutoff)
    return match[0] if match else None


def _transposition_of(name: str) -> str | None:
    # Two neighbouring letters swapped, the commonest typo, which a short name's ratio misses
    # (SECERT is 0.83 like SECRET).
    for known in _KNOWN_PLAIN:
        if len(known) != len(name):
            continue
        differ = [i for i, (a, b) in enumerate(zip(name, known, strict=True)) if a != b]
        if (
            len(differ) == 2
            and differ[1] == differ[0] + 1
            and name[differ[0]] == known[differ[1]]
            and name[differ[1]] == known[differ[0]]
        ):
            return known
    return None
