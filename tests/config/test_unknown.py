"""Misspelt and unknown variables are named at start-up, with the closest setting."""

from __future__ import annotations

import logging

import pytest

from tests.helpers.tokens import SECRET
from tokenguard.app import TokenGuard
from tokenguard.config import Settings, unknown_settings, warn_unknown_settings

# Variables of a Directus deployment that tokenguard does not read: never suspects, though
# some lie close to names it does (EMAIL_SMTP_POOL, WEBSOCKETS_LOGS_ENABLED…).
DIRECTUS_ONLY = (
    "KEY", "HOST", "PORT", "LOG_LEVEL", "LOG_STYLE", "QUERY_LIMIT_MAX", "CACHE_ENABLED",
    "CACHE_TTL", "CACHE_STORE", "DB_SSL__REJECT_UNAUTHORIZED",
    "DB_POOL__ACQUIRE_TIMEOUT_MILLIS", "DB_EXCLUDE_TABLES", "DB_SEARCH_PATH", "REDIS_ENABLED",
    "REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD", "REDIS_USERNAME", "REDIS_DB", "REDIS_URL",
    "EMAIL_VERIFICATION_TOKEN_TTL", "USER_INVITE_TOKEN_TTL", "USER_INVITE_URL_ALLOW_LIST",
    "USER_REGISTER_URL_ALLOW_LIST", "REGISTER_STALL_TIME", "IP_CUSTOM_HEADER", "CORS_ENABLED",
    "CORS_ORIGIN", "WEBSOCKETS_GRAPHQL_ENABLED", "WEBSOCKETS_GRAPHQL_PATH",
    "WEBSOCKETS_GRAPHQL_AUTH", "WEBSOCKETS_GRAPHQL_AUTH_TIMEOUT",
    "WEBSOCKETS_GRAPHQL_CONN_LIMIT", "WEBSOCKETS_LOGS_ENABLED", "WEBSOCKETS_LOGS_CONN_LIMIT",
    "WEBSOCKETS_LOGS_LEVEL", "PRESSURE_LIMITER_ENABLED", "RATE_LIMITER_REDIS",
    "RATE_LIMITER_BLOCK_DURATION", "RATE_LIMITER_KEY_PREFIX",
    "RATE_LIMITER_REGISTRATION_ENABLED", "RATE_LIMITER_HEALTHCHECK_THRESHOLD",
    "EMAIL_SMTP_POOL", "EMAIL_SMTP_NAME", "EMAIL_SMTP_IGNORE_TLS", "EMAIL_SENDMAIL_PATH",
    "ADMIN_EMAIL", "ADMIN_PASSWORD", "ADMIN_TOKEN", "HASH_MEMORY_COST", "STORAGE_LOCATIONS",
    "PATH", "HOME", "USER", "SHELL", "LANG", "TERM", "PWD", "HOSTNAME", "DATABASE_URL",
    "SECRET_KEY", "DEBUG",
)


def test_near_misses_name_the_setting_meant() -> None:
    environ = {
        "ACCES_TOKEN_TTL": "5m",
        "REFRESH_TOKEN_TLL": "1d",
        "SECERT": "x",  # two letters swapped: a short name's typo
        "session_cookie_name": "s",  # the right name in the wrong case
        "AUTH_PROVIDER": "google",
    }
    assert unknown_settings(environ) == [
        ("ACCES_TOKEN_TTL", "ACCESS_TOKEN_TTL"),
        ("AUTH_PROVIDER", "AUTH_PROVIDERS"),
        ("REFRESH_TOKEN_TLL", "REFRESH_TOKEN_TTL"),
        ("SECERT", "SECRET"),
        ("session_cookie_name", "SESSION_COOKIE_NAME"),
    ]


def test_every_unknown_tokenguard_variable_is_a_suspect() -> None:
    environ = {
        "TOKENGUARD_JWT_LEWAY": "1s",
        "TOKENGUARD_ACCESS_TOKEN_TTL": "5m",  # a Directus name given the prefix
        "TOKENGUARD_SOMETHING_ELSE": "1",
        "TOKENGUARD_DEV": "1",
    }
    assert unknown_settings(environ) == [
        ("TOKENGUARD_ACCESS_TOKEN_TTL", "ACCESS_TOKEN_TTL"),
        ("TOKENGUARD_JWT_LEWAY", "TOKENGUARD_JWT_LEEWAY"),
        ("TOKENGUARD_SOMETHING_ELSE", None),
    ]


def test_known_foreign_and_provider_variables_are_left_alone() -> None:
    environ = {name: "x" for name in DIRECTUS_ONLY}
    environ.update(
        {
            "SECRET": SECRET,
            "ACCESS_TOKEN_TTL": "5m",
            "AUTH_PROVIDERS": "google, corp_ldap",
            "AUTH_GOOGLE_DRIVER": "openid",
            "AUTH_GOOGLE_CLIENT_ID": "id",
            "AUTH_CORP_LDAP_CLIENT_URL": "ldap://x",
            "AUTH_GITHUB_CLIENT_ID": "not listed, still a provider's",
            "AUTH_LOGIN_ATTEMPTS": "5",
        }
    )
    assert unknown_settings(environ) == []


def test_one_warning_per_suspect_on_the_tokenguard_logger(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="tokenguard"):
        warn_unknown_settings({"ACCES_TOKEN_TTL": "s3cr3t-value", "TOKENGUARD_NOPE": "1"})
    records = [r for r in caplog.records if r.name == "tokenguard"]
    assert [r.levelno for r in records] == [logging.WARNING, logging.WARNING]
    first, second = (r.getMessage() for r in records)
    assert "ACCES_TOKEN_TTL" in first and "did you mean ACCESS_TOKEN_TTL?" in first
    assert "TOKENGUARD_NOPE" in second and "did you mean" not in second
    assert "s3cr3t-value" not in caplog.text  # names only, never values


def test_tokenguard_warns_when_settings_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SECRET", SECRET)
    monkeypatch.setenv("ACCES_TOKEN_TTL", "5m")
    with caplog.at_level(logging.WARNING, logger="tokenguard"):
        TokenGuard().close()
    named = [r for r in caplog.records if "ACCES_TOKEN_TTL" in r.getMessage()]
    assert len(named) == 1
    assert named[0].name == "tokenguard" and named[0].levelno == logging.WARNING
    assert "ACCESS_TOKEN_TTL" in named[0].getMessage()


def test_settings_given_in_code_are_not_second_guessed(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("ACCES_TOKEN_TTL", "5m")
    with caplog.at_level(logging.WARNING, logger="tokenguard"):
        TokenGuard(Settings(secret=SECRET)).close()
    assert "ACCES_TOKEN_TTL" not in caplog.text
