from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers.tokens import SECRET
from tokenguard.config import Settings, generate_secret
from tokenguard.durations import parse_duration_ms
from tokenguard.errors import ConfigError


def test_duration_parsing_matches_ms() -> None:
    assert parse_duration_ms("15m") == 900_000
    assert parse_duration_ms("7d") == 604_800_000
    assert parse_duration_ms("1d") == 86_400_000
    assert parse_duration_ms("10s") == 10_000
    assert parse_duration_ms("500") == 500
    assert parse_duration_ms("1.5h") == 5_400_000
    assert parse_duration_ms("2 days") == 172_800_000
    assert parse_duration_ms("-1 minutes") == -60_000
    for bad in ("", "invalid string", "5 parsecs", "m"):
        with pytest.raises(ValueError):
            parse_duration_ms(bad)


@given(st.text(max_size=50))
def test_duration_parser_only_raises_value_error(text: str) -> None:
    try:
        parse_duration_ms(text)
    except ValueError:
        pass


@pytest.mark.parametrize(
    "secret, fragment",
    [
        ("", "not set"),
        ("secret", "placeholder"),
        ("0d599f0ec05c3bda8c3b8a68c32a1b47", "placeholder"),
        ("changeme-changeme-changeme-changeme", "placeholder"),
        ("short-but-random-Xy7", "needs at least 32"),
        ("a" * 64, "variety"),
    ],
)
def test_weak_secrets_are_refused_with_advice(secret: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings(secret=secret)
    assert fragment in str(info.value)
    assert "tokenguard secret" in str(info.value)


def test_generated_secret_is_accepted() -> None:
    assert Settings(secret=generate_secret()).algorithm == "HS256"


def test_dev_flag_allows_throwaway_secret_loudly() -> None:
    with pytest.warns(RuntimeWarning, match="throw-away"):
        s = Settings(dev=True)
    assert len(s.secret) >= 32


def test_from_env_uses_directus_names_and_kwargs_win() -> None:
    env = {
        "SECRET": SECRET,
        "ACCESS_TOKEN_TTL": "5m",
        "SESSION_COOKIE_NAME": "sess",
        "SESSION_COOKIE_SECURE": "true",
        "SESSION_COOKIE_SAME_SITE": "strict",
        "TOKENGUARD_QUERY_PARAMS": "access_token, jwt",
        "REFRESH_TOKEN_TTL": "2d",
    }
    s = Settings.from_env(env, refresh_token_ttl_ms="1d")
    assert s.access_token_ttl_ms == 300_000
    assert s.session_cookie_name == "sess"
    assert s.session_cookie_secure is True
    assert s.session_cookie_same_site == "strict"
    assert s.query_params == ("access_token", "jwt")
    assert s.refresh_token_ttl_ms == 86_400_000


def test_bad_values_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="ACCESS_TOKEN_TTL"):
        Settings.from_env({"SECRET": SECRET, "ACCESS_TOKEN_TTL": "soon"})
    with pytest.raises(ConfigError, match="SESSION_COOKIE_SECURE"):
        Settings.from_env({"SECRET": SECRET, "SESSION_COOKIE_SAME_SITE": "none"})
    with pytest.raises(ConfigError, match="unknown setting"):
        Settings.from_env({"SECRET": SECRET}, not_a_setting=1)
    with pytest.raises(ConfigError, match="ALGORITHM"):
        Settings(secret=SECRET, algorithm="none")
    with pytest.raises(ConfigError, match="true or false"):
        Settings.from_env({"SECRET": SECRET, "REFRESH_TOKEN_COOKIE_SECURE": "maybe"})


def test_secret_is_not_in_repr() -> None:
    text = repr(Settings(secret=SECRET))
    assert SECRET not in text
    assert "secret" not in text.replace("session", "")


def test_payload_size() -> None:
    assert Settings.from_env({"SECRET": SECRET}).max_payload_bytes == 1024 * 1024
    assert Settings.from_env({"SECRET": SECRET, "MAX_PAYLOAD_SIZE": "100kb"}).max_payload_bytes == 102_400
    assert Settings.from_env({"SECRET": SECRET, "MAX_PAYLOAD_SIZE": "512"}).max_payload_bytes == 512
    with pytest.raises(ConfigError, match="MAX_PAYLOAD_SIZE"):
        Settings.from_env({"SECRET": SECRET, "MAX_PAYLOAD_SIZE": "lots"})
