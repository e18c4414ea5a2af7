"""Each setting declared once, on its field: the declaration is complete and consistent."""

from __future__ import annotations

import dataclasses

import pytest

from tests.helpers.tokens import SECRET
from tokenguard.config import Settings
from tokenguard.config.declare import SettingSpec, declared_settings, setting
from tokenguard.config.parsers import as_int, as_list
from tokenguard.config.settings import ENV_NAMES, SETTINGS


def test_every_field_but_the_derived_one_is_a_declared_setting() -> None:
    names = [f.name for f in dataclasses.fields(Settings)]
    assert [d.name for d in SETTINGS] == [n for n in names if n != "secret_bytes"]


def test_environment_names_are_unique_and_documented() -> None:
    assert len(set(ENV_NAMES.values())) == len(ENV_NAMES)
    for declared in SETTINGS:
        assert declared.spec.doc and "\n" not in declared.spec.doc, declared.name
        assert declared.spec.group, declared.name
        env = declared.spec.env
        if env is not None:
            assert env == env.upper() and " " not in env, env


def test_the_declared_default_is_the_default() -> None:
    defaults = {f.name: f.default for f in dataclasses.fields(Settings)}
    for declared in SETTINGS:
        assert declared.default == defaults[declared.name]


def test_secrets_stay_out_of_repr() -> None:
    hidden = {f.name for f in dataclasses.fields(Settings) if not f.repr}
    assert {d.name for d in SETTINGS if d.spec.secret} == hidden - {"secret_bytes"}
    assert {"secret", "db_password", "email_smtp_password", "jwt_keys"} <= hidden


@pytest.mark.parametrize(
    "env, text, name, value",
    [
        ("TOKENGUARD_JWT_ISSUER", "me", "issuer", "me"),
        ("TOKENGUARD_JWT_LEEWAY", "2s", "leeway_ms", 2_000),
        ("REFRESH_TOKEN_COOKIE_SAME_SITE", "Strict", "refresh_cookie_same_site", "strict"),
        ("TOKENGUARD_AUDIT_STORE", " Memory ", "audit_store", "memory"),
        ("DB_POOL__MAX", "4", "db_pool_max", 4),
        ("MAX_PAYLOAD_SIZE", "2mb", "max_payload_bytes", 2 * 1024**2),
        ("RATE_LIMITER_DURATION", "1.5", "rate_limiter_duration_ms", 1_500),
        ("AUTH_LOGIN_ATTEMPTS", "null", "auth_login_attempts", 0),
        ("IP_TRUST_PROXY", "true", "ip_trust_proxy", 1),
        ("WEBSOCKETS_REST_AUTH_TIMEOUT", "2.5", "websockets_rest_auth_timeout_s", 2.5),
        ("WEBSOCKETS_REST_CONN_LIMIT", "10", "websockets_rest_conn_limit", 10),
        ("PASSWORD_RESET_URL_ALLOW_LIST", "https://a.example,https://b.example",
         "password_reset_url_allow_list", ("https://a.example", "https://b.example")),
        ("EMAIL_SMTP_PORT", "587", "email_smtp_port", 587),
    ],
)
def test_a_variable_reaches_its_field_through_its_parser(
    env: str, text: str, name: str, value: object
) -> None:
    assert ENV_NAMES[name] == env
    assert getattr(Settings.from_env({"SECRET": SECRET, env: text}), name) == value


def test_list_settings_take_lists_as_keyword_arguments() -> None:
    lists = [d.name for d in SETTINGS if d.spec.parse is as_list]
    assert "query_params" in lists and "csrf_trusted_origins" in lists
    settings = Settings.from_env(
        {"SECRET": SECRET}, query_params=["a", "b"]
    )
    assert settings.query_params == ("a", "b")


def test_a_declaration_in_another_dataclass() -> None:
    @dataclasses.dataclass(frozen=True)
    class Small:
        size: int = setting(3, env="SMALL_SIZE", parse=as_int, doc="how small", group="G")
        plain: str = "not a setting"

    (only,) = declared_settings(Small)
    assert only.name == "size" and only.default == 3
    assert only.spec == SettingSpec("SMALL_SIZE", as_int, "how small", "G", None, False)
    assert Small().size == 3
