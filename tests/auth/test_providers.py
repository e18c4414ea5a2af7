"""``AUTH_PROVIDERS`` read through the driver registry: the list ``GET /auth`` shows, each
driver's defaults and the first error a bad configuration reports."""

from __future__ import annotations

import json

import pytest

from tests.helpers.auth import SECRET
from tokenguard.auth.providers import (
    DRIVERS,
    LDAP_DRIVER,
    LISTED_ONLY,
    SAML_DEFAULT_KEYS,
    Provider,
    driver_for,
    load_providers,
    providers_body,
)
from tokenguard.config import Settings
from tokenguard.errors import ConfigError

SAML = {"AUTH_S_DRIVER": "saml", "AUTH_S_IDP_metadata": "<idp/>", "AUTH_S_SP_METADATA": "<sp/>"}
LDAP = {
    "AUTH_L_DRIVER": "ldap",
    "AUTH_L_CLIENT_URL": "ldap://directory.example",
    "AUTH_L_USER_DN": "ou=people,dc=example",
    "AUTH_L_BIND_DN": "",
    "AUTH_L_BIND_PASSWORD": "",
}
OPENID = {
    "AUTH_O_DRIVER": "openid",
    "AUTH_O_CLIENT_ID": "c",
    "AUTH_O_ISSUER_URL": "https://idp.example",
}
OAUTH2 = {
    "AUTH_G_DRIVER": "oauth2",
    "AUTH_G_CLIENT_ID": "c",
    "AUTH_G_AUTHORIZE_URL": "https://gh.example/authorize",
    "AUTH_G_ACCESS_URL": "https://gh.example/token",
    "AUTH_G_PROFILE_URL": "https://gh.example/user",
}


def load(names: str, env: dict[str, str]) -> tuple[Provider, ...]:
    settings = Settings(
        secret=SECRET,
        public_url="https://app.example",
        auth_providers=tuple(names.split(",")),
        auth_provider_env=tuple(env.items()),
    )
    return load_providers(settings)


def test_the_registry_serves_four_drivers_and_lists_the_others() -> None:
    assert set(DRIVERS) == {"openid", "oauth2", "saml", LDAP_DRIVER}
    assert driver_for("local") is LISTED_ONLY
    assert driver_for("OpenID") is LISTED_ONLY  # driver names are case-sensitive, as in Directus


def test_get_auth_lists_every_driver_in_auth_providers_order() -> None:
    env = {
        **SAML,
        **LDAP,
        **OPENID,
        **OAUTH2,
        "AUTH_F_DRIVER": "facebook",
        "AUTH_F_LABEL": "Facebook",
        "AUTH_O_ICON": "key",
        "AUTH_G_MODE": "cookie",
    }
    providers = load("g,unset,f,o,l,s", env)
    body = json.loads(providers_body(providers, False))
    assert body == {
        "data": [
            {"name": "g", "driver": "oauth2"},
            {"name": "f", "label": "Facebook", "driver": "facebook"},
            {"name": "o", "driver": "openid", "icon": "key"},
            {"name": "l", "driver": "ldap"},
            {"name": "s", "driver": "saml"},
        ],
        "disableDefault": False,
    }
    only = json.loads(providers_body(providers, True, session_only=True))
    assert [p["name"] for p in only["data"]] == ["f", "o", "l", "s"]


def test_each_driver_has_its_defaults() -> None:
    g, f, o, ldap, s = load("g,f,o,l,s", {**SAML, **LDAP, **OPENID, **OAUTH2, "AUTH_F_DRIVER": "x"})
    assert (o.scope, o.identifier_key, o.first_name_key) == (
        "openid profile email",
        "sub",
        "given_name",
    )
    assert (g.scope, g.identifier_key, g.email_key) == ("email", None, "email")
    assert (f.scope, f.signs_in) == ("email", False)
    keys = (s.identifier_key, s.email_key, s.first_name_key, s.last_name_key)
    assert keys == SAML_DEFAULT_KEYS
    assert (s.idp_metadata, s.sp_metadata) == ("<idp/>", "<sp/>")
    assert ldap.allow_public_registration and not g.allow_public_registration
    assert ldap.ldap.user_scope == "one" and o.ldap is None


def test_saml_reads_its_own_name_variables() -> None:
    (s,) = load("s", {**SAML, "AUTH_S_GIVEN_NAME_KEY": "gn", "AUTH_S_FIRST_NAME_KEY": "ignored"})
    assert s.first_name_key == "gn"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {**OPENID, "AUTH_O_MODE": "bad"},
            "AUTH_O_MODE must be json, cookie or session, not 'bad'",
        ),
        ({**OPENID, "AUTH_O_CLIENT_ID": ""}, "AUTH_O_CLIENT_ID is required for the openid driver"),
        (
            {**OPENID, "AUTH_O_ISSUER_URL": ""},
            "AUTH_O_ISSUER_URL is required for the openid driver",
        ),
        (
            {**OAUTH2, "AUTH_G_PROFILE_URL": ""},
            "AUTH_G_AUTHORIZE_URL, AUTH_G_ACCESS_URL and AUTH_G_PROFILE_URL are required for the "
            "oauth2 driver",
        ),
        (
            {**SAML, "AUTH_S_SP_METADATA": "nope"},
            "AUTH_S_SP_metadata (the SP metadata XML) is required for the saml driver",
        ),
        (
            {**SAML, "AUTH_S_SP_KEY_FILE": "key.pem"},
            "AUTH_S_SP_KEY_FILE and AUTH_S_SP_CERT_FILE go together",
        ),
        (
            {**LDAP, "AUTH_L_CLIENT_URL": "http://x"},
            "AUTH_L_CLIENT_URL must be an ldap:// or ldaps:// URL",
        ),
        (
            {**LDAP, "AUTH_L_USER_SCOPE": "all"},
            "AUTH_L_USER_SCOPE must be base, one or sub, not 'all'",
        ),
        (
            {**LDAP, "AUTH_L_GROUP_DN": "ou=groups"},
            "AUTH_L_GROUP_DN needs AUTH_L_ROLE_MAPPING (a JSON object of group cn -> role id)",
        ),
        # Which error comes first is kept: the driver's own variables, then the common ones,
        # then the driver's checks.
        (
            {**LDAP, "AUTH_L_USER_DN": "", "AUTH_L_SYNC_USER_INFO": "maybe"},
            "AUTH_L_USER_DN is required for the ldap driver",
        ),
        (
            {**SAML, "AUTH_S_SYNC_USER_INFO": "maybe", "AUTH_S_ALLOW_UNSOLICITED": "maybe"},
            "AUTH_S_SYNC_USER_INFO",
        ),
        (
            {**SAML, "AUTH_S_ALLOW_UNSOLICITED": "maybe", "AUTH_S_SP_METADATA": ""},
            "AUTH_S_ALLOW_UNSOLICITED",
        ),
    ],
)
def test_bad_configuration_is_refused_with_its_first_error(
    env: dict[str, str], message: str
) -> None:
    name = next(k for k in env if k.endswith("_DRIVER")).split("_")[1].lower()
    with pytest.raises(ConfigError) as raised:
        load(name, env)
    assert str(raised.value).startswith(message)
