"""The setting parsers: typed values out, or a ConfigError naming the variable, nothing else."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenguard.config.parsers import (
    as_attempts,
    as_bool,
    as_duration,
    as_hops,
    as_int,
    as_limit,
    as_list,
    as_lower,
    as_same_site,
    as_seconds,
    as_seconds_ms,
    as_size,
    password_policy_pattern,
)
from tokenguard.errors import ConfigError

PARSERS: list[Callable[[str, Any], Any]] = [
    as_attempts,
    as_bool,
    as_duration,
    as_hops,
    as_int,
    as_limit,
    as_list,
    as_lower,
    as_same_site,
    as_seconds,
    as_seconds_ms,
    as_size,
]

# Text that looks like what the parsers read (numbers, exponents, units), so that the search
# reaches past the first "not a number" into overflow and rounding.
NUMBERISH = st.from_regex(
    r"\s*-?\d{0,400}\.?\d{0,3}(e[+-]?\d{1,4})?\s*(kb|mb|gb|b|ms|s|m|h|d|inf|nan)?\s*",
    fullmatch=True,
)
TEXT = st.one_of(st.text(max_size=60), NUMBERISH)


@pytest.mark.parametrize("parse", PARSERS, ids=lambda p: p.__name__)
@settings(deadline=None)  # a loaded CI machine: the property is about outcomes, not time
@given(text=TEXT)
def test_any_text_gives_a_value_or_a_config_error(parse: Callable[[str, Any], Any], text: str) -> None:
    try:
        parse("SOME_VARIABLE", text)
    except ConfigError as exc:
        assert "SOME_VARIABLE" in str(exc)


@given(text=st.one_of(st.text(max_size=40), st.from_regex(r"/.{0,20}/[imsu]{0,3}", fullmatch=True)))
def test_any_password_policy_gives_a_pattern_or_a_config_error(text: str) -> None:
    try:
        assert isinstance(password_policy_pattern(text), re.Pattern)
    except ConfigError as exc:
        assert "AUTH_PASSWORD_POLICY" in str(exc)


def test_values_as_directus_writes_them() -> None:
    assert [as_bool("V", v) for v in ("1", "TRUE", " yes ", "on")] == [True] * 4
    assert [as_bool("V", v) for v in ("0", "False", "no", "off", "")] == [False] * 5
    assert as_duration("V", "15m") == 900_000
    assert as_size("V", "1mb") == 1024**2
    assert as_size("V", "100kb") == 102_400
    assert as_size("V", "512") == 512
    assert as_same_site("V", "") == "strict"
    assert as_same_site("V", "None") == "none"
    assert as_list("V", " a, ,b ,") == ("a", "b")
    assert as_list("V", ["a", 1]) == ("a", "1")
    assert as_lower("V", " PG ") == "pg"
    assert as_seconds("V", "2.5") == 2.5
    assert as_seconds_ms("V", "0.0001") == 1
    assert as_seconds_ms("V", "60") == 60_000
    assert as_limit("V", "Infinity") is None
    assert as_limit("V", "7") == 7
    assert [as_attempts("V", v) for v in ("null", "false", "0", "", "3")] == [0, 0, 0, 0, 3]
    assert [as_hops("V", v) for v in ("true", "false", "2")] == [1, 0, 2]


@pytest.mark.parametrize(
    "parse, text",
    [
        (as_size, "inf"),
        (as_size, "1e400"),
        (as_size, "nan"),
        (as_seconds_ms, "1e306"),
        (as_seconds, "nan"),
        (as_bool, "maybe"),
        (as_int, "1.5"),
        (as_same_site, "sometimes"),
        (as_hops, "several"),
    ],
)
def test_out_of_range_values_are_config_errors(parse: Callable[[str, Any], Any], text: str) -> None:
    with pytest.raises(ConfigError, match="SOME_VARIABLE"):
        parse("SOME_VARIABLE", text)


def test_directus_regex_notation() -> None:
    pattern = password_policy_pattern("/^.{8,}$/i")
    assert pattern.search("long enough") and not pattern.search("short")
    with pytest.raises(ConfigError, match="AUTH_PASSWORD_POLICY"):
        password_policy_pattern("(unclosed")
