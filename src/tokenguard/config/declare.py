"""How a setting is declared: once, on its :class:`~tokenguard.config.Settings` field.

A field made with :func:`setting` carries its environment variable, its parser, a line of
documentation and its group in the field's metadata. :meth:`Settings.from_env
<tokenguard.config.Settings.from_env>` reads the environment from them, the configuration
reference (``docs/configuration.md``) is written from them, and the unknown-variable check
(:mod:`tokenguard.config.unknown`) knows every name from them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, TypeVar

from .parsers import Parser

__all__ = ["Declared", "SettingSpec", "declared_settings", "setting"]

T = TypeVar("T")

# The key of a declared field's metadata; fields without it (derived values) are no settings.
_SPEC = "tokenguard.setting"


@dataclass(frozen=True, slots=True)
class SettingSpec:
    """What a setting's field declares besides its name, type and default."""

    #: The environment variable (Directus's name where Directus has one), or ``None`` for a
    #: setting given only as a keyword argument or gathered from several variables.
    env: str | None
    #: Turns the variable's text into the field's value; ``None`` keeps the text.
    parse: Parser | None
    #: One line for the configuration reference.
    doc: str
    #: The heading the setting is listed under in the configuration reference.
    group: str
    #: How the reference shows the default, when the value itself would mislead (``"15m"``
    #: rather than ``900000``); ``None``: the value.
    shown: str | None
    #: Never printed (``repr``) nor shown as a default: secrets and credentials.
    secret: bool


@dataclass(frozen=True, slots=True)
class Declared:
    """A declared setting: its field's name, its default and its :class:`SettingSpec`."""

    name: str
    default: Any
    spec: SettingSpec


def setting(
    default: T,
    *,
    env: str | None,
    doc: str,
    group: str,
    parse: Parser | None = None,
    shown: str | None = None,
    secret: bool = False,
) -> T:
    """A dataclass field declaring a setting: its default, environment variable, parser,
    documentation line and group, in one place."""
    spec = SettingSpec(env, parse, doc, group, shown, secret)
    made: T = dataclasses.field(default=default, repr=not secret, metadata={_SPEC: spec})
    return made


def declared_settings(cls: type[Any]) -> tuple[Declared, ...]:
    """The settings a dataclass declares with :func:`setting`, in field order."""
    found: list[Declared] = []
    for f in dataclasses.fields(cls):
        spec = f.metadata.get(_SPEC)
        if isinstance(spec, SettingSpec):
            found.append(Declared(f.name, f.default, spec))
    return tuple(found)
