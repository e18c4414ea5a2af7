"""LDAP login (``POST /auth/login/<provider>``) against a real OpenLDAP ``slapd`` on 127.0.0.1.

Covers every mode's answer, wrong passwords and unknown users (one answer for both), filter
injection through the identifier, empty passwords, a directory that is down or silent (503,
then recovery), registration on and off, roles from groups, disabled accounts, two-factor
users, the lockout, the audit trail, the configuration errors, and the ASGI shell (the
directory call must not block the event loop).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pyotp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import Client

from tests.helpers.auth import FAST, SECRET, plain_asgi_app, plain_wsgi_app
from tests.helpers.ldap_server import (
    BIND_DN,
    BIND_PASSWORD,
    GROUP_DN,
    ROOT_DN,
    ROOT_PASSWORD,
    USER_DN,
    USERS,
    LdapServer,
)
from tokenguard import TokenGuard, TokenGuardWSGI
from tokenguard.auth.drivers.ldap import Directory
from tokenguard.auth.providers import LdapConfig
from tokenguard.auth.totp import SecretBox
from tokenguard.errors import ConfigError
from tokenguard.shells.asgi import TokenGuardMiddleware
from tokenguard.stores.base import User
from tokenguard.stores.memory import MemorySessionStore, MemoryUserStore

ADA, BOB = USERS["ada"], USERS["bob"]
ROLE_ADMIN = "0f6f2e1c-0000-4000-8000-00000000a0a0"
ROLE_EDITOR = "0f6f2e1c-0000-4000-8000-00000000e0e0"
ROLE_DEFAULT = "0f6f2e1c-0000-4000-8000-00000000d0d0"
INVALID_CREDENTIALS = {
    "errors": [
        {"message": "Invalid user credentials.", "extensions": {"code": "INVALID_CREDENTIALS"}}
    ]
}
INVALID_OTP = {"errors": [{"message": "Invalid user OTP.", "extensions": {"code": "INVALID_OTP"}}]}
UNREACHABLE = {
    "errors": [
        {
            "message": 'Service "ldap" is unavailable. Service is unreachable.',
            "extensions": {
                "code": "SERVICE_UNAVAILABLE",
                "service": "ldap",
                "reason": "Service is unreachable",
            },
        }
    ]
}


def invalid_payload(reason: str) -> dict[str, Any]:
    return {
        "errors": [
            {
                "message": f"Invalid payload. {reason}.",
                "extensions": {"code": "INVALID_PAYLOAD", "reason": reason},
            }
        ]
    }


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LdapServer]:
    with LdapServer(tmp_path_factory.mktemp("slapd")) as server:
        yield server


def ldap_env(url: str, **env: str) -> dict[str, str]:
    return {
        "AUTH_DIR_DRIVER": "ldap",
        "AUTH_DIR_CLIENT_URL": url,
        "AUTH_DIR_BIND_DN": BIND_DN,
        "AUTH_DIR_BIND_PASSWORD": BIND_PASSWORD,
        "AUTH_DIR_USER_DN": USER_DN,
        "AUTH_DIR_USER_ATTRIBUTE": "uid",
        "AUTH_DIR_CLIENT_CONNECT_TIMEOUT": "2000",
        "AUTH_DIR_CLIENT_TIMEOUT": "2000",
        **env,
    }


def make_core(
    url: str, users: MemoryUserStore | None = None, flavour: str = "sync", **env: Any
) -> TokenGuard:
    overrides = {k: v for k, v in env.items() if not k.startswith("AUTH_")}
    variables = {k: v for k, v in env.items() if k.startswith("AUTH_")}
    return TokenGuard(
        secret=SECRET,
        users=users if users is not None else MemoryUserStore(),
        sessions=MemorySessionStore(),
        passwords=FAST,
        flavour=flavour,  # type: ignore[arg-type]
        login_stall_ms=0,
        auth_providers="dir",
        auth_provider_env=ldap_env(url, **variables),
        **overrides,
    )


def client(core: TokenGuard) -> Client:
    return Client(TokenGuardWSGI(plain_wsgi_app, guard=core))


def login(core: TokenGuard, body: Any, path: str = "/auth/login/dir", **headers: str) -> Any:
    return client(core).post(
        path, data=json.dumps(body), headers={"content-type": "application/json", **headers}
    )


def claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, SECRET, algorithms=["HS256"], issuer="directus")


# -- success in every mode ------------------------------------------------------------------


def test_json_mode_registers_the_directory_user_and_answers_like_local_login(
    slapd: LdapServer,
) -> None:
    users = MemoryUserStore()
    core = make_core(slapd.url, users, AUTH_DIR_DEFAULT_ROLE_ID=ROLE_DEFAULT)
    reply = login(core, {"identifier": "ada", "password": ADA.password})
    assert reply.status_code == 200, reply.data
    assert reply.headers["cache-control"] == "no-cache"
    assert "set-cookie" not in reply.headers
    data = reply.get_json()["data"]
    assert list(data) == ["expires", "refresh_token", "access_token"]
    assert data["expires"] == 900_000 and len(data["refresh_token"]) == 64
    user = users.get_by_external_identifier(ADA.dn)
    assert user is not None
    assert (user.provider, user.email, user.first_name, user.last_name, user.role) == (
        "dir", "ada@example.org", "Ada", "Lovelace", ROLE_DEFAULT,
    )
    token = claims(data["access_token"])
    assert token["id"] == user.id and token["role"] == ROLE_DEFAULT
    # The refresh token works like any other.
    again = client(core).post(
        "/auth/refresh", json={"refresh_token": data["refresh_token"], "mode": "json"}
    )
    assert again.status_code == 200
    # A second login finds the same user (by DN), registers nobody new.
    assert login(core, {"identifier": "ada", "password": ADA.password}).status_code == 200
    assert len([u for u in users._by_id.values() if u.provider == "dir"]) == 1


def test_cookie_mode_sets_the_refresh_cookie(slapd: LdapServer) -> None:
    core = make_core(slapd.url)
    reply = login(core, {"identifier": "bob", "password": BOB.password, "mode": "cookie"})
    assert reply.status_code == 200, reply.data
    data = reply.get_json()["data"]
    assert list(data) == ["expires", "access_token"]
    cookie = reply.headers["set-cookie"]
    assert cookie.startswith("directus_refresh_token=") and "HttpOnly" in cookie
    assert "Max-Age=604800" in cookie


def test_session_mode_sets_the_session_cookie(slapd: LdapServer) -> None:
    core = make_core(slapd.url)
    reply = login(core, {"identifier": "bob", "password": BOB.password, "mode": "session"})
    assert reply.status_code == 200, reply.data
    assert reply.get_json() == {"data": {"expires": 86_400_000}}
    cookie = reply.headers["set-cookie"]
    assert cookie.startswith("directus_session_token=") and "Max-Age=86400" in cookie
    token = cookie.split(";")[0].split("=", 1)[1]
    assert "session" in claims(token)


def test_the_route_answers_with_one_trailing_slash_and_only_post(slapd: LdapServer) -> None:
    core = make_core(slapd.url)
    ok = login(core, {"identifier": "bob", "password": BOB.password}, "/auth/login/dir/")
    assert ok.status_code == 200
    assert client(core).get("/auth/login/dir").status_code == 404
    # Another provider name is not ours: the app answers.
    assert login(core, {"identifier": "bob", "password": BOB.password}, "/auth/login/x").data \
        .startswith(b"app ")


def test_get_auth_still_lists_the_provider(slapd: LdapServer) -> None:
    core = make_core(slapd.url, AUTH_DIR_LABEL="Company directory")
    for query in ("", "?sessionOnly"):
        reply = client(core).get("/auth" + query)
        assert reply.get_json() == {
            "data": [{"name": "dir", "label": "Company directory", "driver": "ldap"}],
            "disableDefault": False,
        }


def test_disable_default_keeps_the_ldap_login(slapd: LdapServer) -> None:
    core = make_core(slapd.url, auth_disable_default=True)
    assert login(core, {"email": "a@example.com", "password": "x"}, "/auth/login").status_code \
        == 404
    assert login(core, {"identifier": "bob", "password": BOB.password}).status_code == 200


# -- refusals -------------------------------------------------------------------------------


def test_wrong_password_and_unknown_user_are_one_answer(slapd: LdapServer) -> None:
    core = make_core(slapd.url)
    wrong = login(core, {"identifier": "ada", "password": "not-her-password"})
    unknown = login(core, {"identifier": "nobody", "password": "whatever"})
    other = login(core, {"identifier": "ada", "password": BOB.password})
    for reply in (wrong, unknown, other):
        assert reply.status_code == 401
        assert reply.get_json() == INVALID_CREDENTIALS
    assert wrong.data == unknown.data == other.data
    assert core.users.get_by_external_identifier(ADA.dn) is None  # nobody registered


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({}, '"identifier" is required'),
        ({"password": "x"}, '"identifier" is required'),
        ({"identifier": "", "password": "x"}, '"identifier" is not allowed to be empty'),
        ({"identifier": 5, "password": "x"}, '"identifier" must be a string'),
        ({"identifier": "ada"}, '"password" is required'),
        ({"identifier": "ada", "password": ""}, '"password" is not allowed to be empty'),
        ({"identifier": "ada", "password": None}, '"password" must be a string'),
        ({"identifier": "ada", "password": "x", "mode": "jwt"},
         '"mode" must be one of [cookie, json, session]'),
        ({"identifier": "ada", "password": "x", "otp": 123456}, '"otp" must be a string'),
        ([], '"value" must be of type object'),
    ],
)
def test_invalid_payloads_are_directus_400s(
    slapd: LdapServer, body: Any, reason: str
) -> None:
    reply = login(make_core(slapd.url), body)
    assert reply.status_code == 400
    assert reply.get_json() == invalid_payload(reason)


def test_an_email_field_is_not_an_identifier(slapd: LdapServer) -> None:
    reply = login(make_core(slapd.url), {"email": "ada@example.org", "password": ADA.password})
    assert reply.get_json() == invalid_payload('"identifier" is required')


def test_an_empty_password_never_reaches_the_directory() -> None:
    # Nothing listens on this port: a bind attempt would be a 503, not False.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    directory = Directory("dir", LdapConfig(f"ldap://127.0.0.1:{port}", USER_DN))
    assert directory.verify(ADA.dn, "") is False
    assert directory.verify("", "x") is False


@pytest.mark.parametrize(
    "identifier",
    [
        "*",
        "a*",
        "*a*",
        "ada)(uid=*",
        "*)(uid=*",
        "*)(|(uid=*",
        "ada)(|(objectClass=*)",
        "\\2a",
        "ad\\",
        "ada\x00",
        "(uid=ada)",
        "uid=ada," + USER_DN,
        "\ud800",
        "a" * 600,
    ],
)
def test_injection_identifiers_match_nobody(slapd: LdapServer, identifier: str) -> None:
    core = make_core(slapd.url)
    for user in (ADA, BOB):
        reply = login(core, {"identifier": identifier, "password": user.password})
        assert reply.status_code == 401, (identifier, reply.data)
        assert reply.get_json() == INVALID_CREDENTIALS


@pytest.fixture(scope="module")
def shared_core(slapd: LdapServer) -> TokenGuard:
    return make_core(slapd.url, auth_login_attempts=0, rate_limiter_enabled=False)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    identifier=st.one_of(
        st.text(max_size=24),
        st.text(alphabet="ad*()\\|&!=<>~:,+ \x00uib", max_size=16),
        st.sampled_from(["ada", "ADA", " ada", "ada ", "a*a", "ad*", "bob"]).map(
            lambda s: s + "*" if s.endswith("a") else s
        ),
    ),
)
def test_no_identifier_logs_in_as_someone_else(shared_core: TokenGuard, identifier: str) -> None:
    """With ada's password, whatever the identifier, a login is ada's or nobody's; a filter
    character is never a wildcard; nothing is ever a 500 or a 503. (LDAP itself compares uid
    without case, outer spaces or ignorable characters, RFC 4518: "ADA" is ada.)"""
    reply = login(shared_core, {"identifier": identifier, "password": ADA.password})
    if identifier == "":
        assert reply.status_code == 400
        return
    assert reply.status_code in (200, 401), (identifier, reply.data)
    if reply.status_code == 200:
        assert not set(identifier) & set("*()\\\x00"), identifier
        user_id = claims(reply.get_json()["data"]["access_token"])["id"]
        user = shared_core.users.get_by_id(user_id)
        assert user is not None and user.external_identifier == ADA.dn


# -- the directory down ------------------------------------------------------------------------


def test_a_directory_that_is_down_is_a_503_then_logins_recover(tmp_path: Path) -> None:
    server = LdapServer(tmp_path)
    server.start()
    try:
        core = make_core(server.url)
        body = {"identifier": "ada", "password": ADA.password}
        assert login(core, body).status_code == 200
        server.stop()
        for attempt in (body, {"identifier": "ada", "password": "wrong"}):
            reply = login(core, attempt)
            assert reply.status_code == 503
            assert reply.get_json() == UNREACHABLE
        server.start()
        assert login(core, body).status_code == 200
        assert login(core, {"identifier": "ada", "password": "wrong"}).status_code == 401
    finally:
        server.stop()


def test_a_silent_directory_times_out_as_a_503() -> None:
    # A socket that accepts connections (the kernel does) and never answers a byte.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"ldap://127.0.0.1:{silent.getsockname()[1]}"
        core = make_core(url, AUTH_DIR_CLIENT_TIMEOUT="300")
        started = time.monotonic()
        reply = login(core, {"identifier": "ada", "password": ADA.password})
        assert time.monotonic() - started < 5
        assert reply.status_code == 503
        assert reply.get_json() == UNREACHABLE


def test_a_wrong_service_account_is_a_503_not_a_401(slapd: LdapServer) -> None:
    core = make_core(slapd.url, AUTH_DIR_BIND_PASSWORD="not-the-reader-password")
    reply = login(core, {"identifier": "ada", "password": ADA.password})
    assert reply.status_code == 503
    assert reply.get_json()["errors"][0]["extensions"] == {
        "code": "SERVICE_UNAVAILABLE",
        "service": "ldap",
        "reason": "Service returned unexpected response",
    }


def test_a_missing_user_dn_is_a_503(slapd: LdapServer) -> None:
    core = make_core(slapd.url, AUTH_DIR_USER_DN="ou=nowhere,dc=example,dc=org")
    assert login(core, {"identifier": "ada", "password": ADA.password}).status_code == 503


# -- registration, roles, account state ----------------------------------------------------------


def test_registration_off_admits_only_known_users(slapd: LdapServer) -> None:
    users = MemoryUserStore()
    core = make_core(slapd.url, users, AUTH_DIR_ALLOW_PUBLIC_REGISTRATION="false")
    reply = login(core, {"identifier": "ada", "password": ADA.password})
    assert reply.status_code == 401 and reply.get_json() == INVALID_CREDENTIALS
    assert users.get_by_external_identifier(ADA.dn) is None
    users.create(User(id="u-ada", email="ada@old.example", provider="dir",
                      external_identifier=ADA.dn, role=ROLE_EDITOR))
    reply = login(core, {"identifier": "ada", "password": ADA.password})
    assert reply.status_code == 200
    assert claims(reply.get_json()["data"]["access_token"])["id"] == "u-ada"
    # Without SYNC_USER_INFO nothing is changed; without GROUP_DN the role stays.
    kept = users.get_by_id("u-ada")
    assert kept is not None and (kept.email, kept.role) == ("ada@old.example", ROLE_EDITOR)


def test_sync_user_info_refreshes_names_and_email(slapd: LdapServer) -> None:
    users = MemoryUserStore()
    users.create(User(id="u-bob", email="bob@old.example", provider="dir",
                      external_identifier=BOB.dn, first_name="B"))
    core = make_core(slapd.url, users, AUTH_DIR_SYNC_USER_INFO="true")
    assert login(core, {"identifier": "bob", "password": BOB.password}).status_code == 200
    user = users.get_by_id("u-bob")
    assert user is not None
    assert (user.email, user.first_name, user.last_name) == ("bob@example.org", "Bob", "Builder")


def test_a_user_without_email_cannot_be_registered(slapd: LdapServer) -> None:
    core = make_core(slapd.url)
    nomail = USERS["nomail"]
    reply = login(core, {"identifier": "nomail", "password": nomail.password})
    assert reply.status_code == 401


def test_a_user_of_another_provider_or_inactive_is_refused(slapd: LdapServer) -> None:
    users = MemoryUserStore()
    users.create(User(id="u-ada", email="ada@example.org", provider="default",
                      external_identifier=ADA.dn))
    users.create(User(id="u-bob", email="bob@example.org", provider="dir",
                      external_identifier=BOB.dn, status="suspended"))
    core = make_core(slapd.url, users)
    assert login(core, {"identifier": "ada", "password": ADA.password}).status_code == 401
    assert login(core, {"identifier": "bob", "password": BOB.password}).status_code == 401


def test_roles_come_from_groups(slapd: LdapServer) -> None:
    users = MemoryUserStore()
    core = make_core(
        slapd.url,
        users,
        AUTH_DIR_GROUP_DN=GROUP_DN,
        AUTH_DIR_ROLE_MAPPING=json.dumps({"Admins": ROLE_ADMIN, "editors": ROLE_EDITOR}),
        AUTH_DIR_DEFAULT_ROLE_ID=ROLE_DEFAULT,
    )
    for name, role in (("ada", ROLE_ADMIN), ("bob", ROLE_EDITOR), ("cyd", ROLE_DEFAULT)):
        reply = login(core, {"identifier": name, "password": USERS[name].password})
        assert reply.status_code == 200, reply.data
        assert claims(reply.get_json()["data"]["access_token"])["role"] == role, name
    # Group membership is re-read at each login: a role changed by hand is put back.
    user = users.get_by_external_identifier(USERS["cyd"].dn)
    assert user is not None
    users.update(user.id, role=ROLE_ADMIN)
    reply = login(core, {"identifier": "cyd", "password": USERS["cyd"].password})
    assert claims(reply.get_json()["data"]["access_token"])["role"] == ROLE_DEFAULT


def test_roles_follow_a_change_of_group_in_the_directory(tmp_path: Path) -> None:
    import ldap3

    with LdapServer(tmp_path) as server:
        core = make_core(
            server.url,
            AUTH_DIR_GROUP_DN=GROUP_DN,
            AUTH_DIR_ROLE_MAPPING=json.dumps({"admins": ROLE_ADMIN}),
        )
        body = {"identifier": "bob", "password": BOB.password}
        assert claims(login(core, body).get_json()["data"]["access_token"])["role"] is None
        admin = ldap3.Connection(ldap3.Server(server.url), ROOT_DN, ROOT_PASSWORD, auto_bind=True)
        admin.modify(f"cn=admins,{GROUP_DN}", {"member": [(ldap3.MODIFY_ADD, [BOB.dn])]})
        assert admin.result["description"] == "success"
        admin.unbind()
        assert claims(login(core, body).get_json()["data"]["access_token"])["role"] == ROLE_ADMIN


def test_group_dn_needs_a_role_mapping(slapd: LdapServer) -> None:
    with pytest.raises(ConfigError, match="AUTH_DIR_GROUP_DN needs AUTH_DIR_ROLE_MAPPING"):
        make_core(slapd.url, AUTH_DIR_GROUP_DN=GROUP_DN)


def test_a_disabled_account_is_refused_with_the_right_password(slapd: LdapServer) -> None:
    dora = USERS["dora"]
    reply = login(make_core(slapd.url), {"identifier": "dora", "password": dora.password})
    assert reply.status_code == 401 and reply.get_json() == INVALID_CREDENTIALS


# -- two-factor, lockout, audit, logs ----------------------------------------------------------------


def test_a_two_factor_user_needs_the_otp(slapd: LdapServer) -> None:
    users = MemoryUserStore()
    secret = pyotp.random_base32()
    users.create(User(id="u-ada", email="ada@example.org", provider="dir",
                      external_identifier=ADA.dn,
                      tfa_secret=SecretBox(SECRET.encode()).seal("u-ada", secret)))
    core = make_core(slapd.url, users)
    body = {"identifier": "ada", "password": ADA.password}
    reply = login(core, body)
    assert reply.status_code == 401 and reply.get_json() == INVALID_OTP
    assert login(core, {**body, "otp": "000000"}).get_json() == INVALID_OTP
    # A wrong password is still INVALID_CREDENTIALS (the OTP comes after it).
    assert login(core, {**body, "password": "x", "otp": "1"}).get_json() == INVALID_CREDENTIALS
    reply = login(core, {**body, "otp": pyotp.TOTP(secret).now()})
    assert reply.status_code == 200, reply.data


def test_failed_binds_count_towards_the_lockout(slapd: LdapServer) -> None:
    users = MemoryUserStore()
    users.create(User(id="u-bob", email="bob@example.org", provider="dir",
                      external_identifier=BOB.dn))
    core = make_core(slapd.url, users, auth_login_attempts=2, rate_limiter_enabled=False)
    for _ in range(2):
        assert login(core, {"identifier": "bob", "password": "wrong"}).status_code == 401
    # The third attempt suspends, even with the right password (as a local login does).
    assert login(core, {"identifier": "bob", "password": BOB.password}).status_code == 401
    user = users.get_by_id("u-bob")
    assert user is not None and user.status == "suspended"
    assert login(core, {"identifier": "bob", "password": BOB.password}).status_code == 401


def test_audit_records_success_and_failure_and_no_password_is_logged(
    slapd: LdapServer, caplog: pytest.LogCaptureFixture
) -> None:
    core = make_core(slapd.url)
    with caplog.at_level(logging.DEBUG):
        assert login(core, {"identifier": "ada", "password": ADA.password}).status_code == 200
        assert login(core, {"identifier": "ada", "password": "wrong-Pa55"}).status_code == 401
    events = [
        json.loads(r.getMessage()) for r in caplog.records if r.name == "tokenguard.audit"
    ]
    logins = [(e["event"], e["outcome"], e["provider"]) for e in events if e["event"] == "login"]
    assert logins == [("login", "success", "dir"), ("login", "failure", "dir")]
    assert events[-1]["reason"] == "INVALID_CREDENTIALS"
    text = "\n".join(r.getMessage() for r in caplog.records) + caplog.text
    for secret in (ADA.password, "wrong-Pa55", BIND_PASSWORD):
        assert secret not in text


def test_the_account_rate_limit_is_per_provider_identifier(slapd: LdapServer) -> None:
    core = make_core(slapd.url, rate_limiter_enabled=True, auth_login_attempts=0,
                     rate_limiter_points=1000, login_account_points=2)
    statuses = [
        login(core, {"identifier": "eve", "password": "wrong"}).status_code for _ in range(3)
    ]
    assert statuses[:2] == [401, 401] and statuses[2] == 429


# -- configuration ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("drop", "change", "message"),
    [
        ("AUTH_DIR_CLIENT_URL", {}, "AUTH_DIR_CLIENT_URL is required for the ldap driver"),
        ("AUTH_DIR_USER_DN", {}, "AUTH_DIR_USER_DN is required for the ldap driver"),
        ("AUTH_DIR_BIND_DN", {}, "AUTH_DIR_BIND_DN and AUTH_DIR_BIND_PASSWORD are required"),
        ("AUTH_DIR_BIND_PASSWORD", {}, "AUTH_DIR_BIND_DN and AUTH_DIR_BIND_PASSWORD are"),
        (None, {"AUTH_DIR_BIND_PASSWORD": ""}, "go together"),
        (None, {"AUTH_DIR_CLIENT_URL": "http://x"}, "must be an ldap:// or ldaps:// URL"),
        (None, {"AUTH_DIR_USER_SCOPE": "tree"}, "AUTH_DIR_USER_SCOPE must be base, one or sub"),
        (None, {"AUTH_DIR_CLIENT_TIMEOUT": "soon"}, "AUTH_DIR_CLIENT_TIMEOUT must be a duration"),
    ],
)
def test_configuration_errors_at_start_up(
    drop: str | None, change: dict[str, str], message: str
) -> None:
    env = ldap_env("ldap://127.0.0.1:9", **change)
    if drop:
        del env[drop]
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        TokenGuard(secret=SECRET, users=MemoryUserStore(), sessions=MemorySessionStore(),
                   auth_providers="dir", auth_provider_env=env)


def test_an_anonymous_search_is_configurable() -> None:
    env = ldap_env("ldap://127.0.0.1:9", AUTH_DIR_BIND_DN="", AUTH_DIR_BIND_PASSWORD="")
    core = TokenGuard(secret=SECRET, users=MemoryUserStore(), sessions=MemorySessionStore(),
                      auth_providers="dir", auth_provider_env=env)
    login_of = core.router.ldap["dir"]
    assert login_of.directory.config.bind_dn == ""  # type: ignore[attr-defined]
    assert "reader-secret" not in repr(login_of.directory.config)  # type: ignore[attr-defined]


# -- the ASGI shell -----------------------------------------------------------------------------------


def test_asgi_login_runs_the_directory_off_the_event_loop(slapd: LdapServer) -> None:
    async def go() -> tuple[int, int, int]:
        with socket.socket() as silent:
            silent.bind(("127.0.0.1", 0))
            silent.listen(16)
            slow_url = f"ldap://127.0.0.1:{silent.getsockname()[1]}"
            slow = make_core(slow_url, flavour="async", AUTH_DIR_CLIENT_TIMEOUT="600")
            good = make_core(slapd.url, flavour="async")
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1

            task = asyncio.create_task(ticker())
            body = {"identifier": "ada", "password": ADA.password}
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=TokenGuardMiddleware(plain_asgi_app, guard=slow)),
                base_url="http://testserver",
            ) as http:
                timed_out = await http.post("/auth/login/dir", json=body)
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=TokenGuardMiddleware(plain_asgi_app, guard=good)),
                base_url="http://testserver",
            ) as http:
                ok = await http.post("/auth/login/dir", json={**body, "mode": "session"})
            task.cancel()
            return timed_out.status_code, ok.status_code, ticks

    timed_out, ok, ticks = asyncio.run(go())
    assert (timed_out, ok) == (503, 200)
    # The 600 ms wait on the silent directory happened in a worker thread.
    assert ticks >= 20


# -- refresh ------------------------------------------------------------------------------------------


def refresh(core: TokenGuard, token: str) -> Any:
    return client(core).post("/auth/refresh", json={"refresh_token": token, "mode": "json"})


def test_refresh_checks_the_account_in_the_directory(tmp_path: Path) -> None:
    import ldap3

    with LdapServer(tmp_path) as server:
        core = make_core(server.url)
        tokens = {}
        for name in ("ada", "bob", "cyd"):
            reply = login(core, {"identifier": name, "password": USERS[name].password})
            tokens[name] = reply.get_json()["data"]["refresh_token"]
        admin = ldap3.Connection(ldap3.Server(server.url), ROOT_DN, ROOT_PASSWORD, auto_bind=True)
        # Bob's account is disabled in the directory, Cyd's removed.
        admin.modify(BOB.dn, {"objectClass": [(ldap3.MODIFY_ADD, ["adAccount"])],
                              "userAccountControl": [(ldap3.MODIFY_ADD, ["514"])]})
        assert admin.result["description"] == "success"
        admin.delete(USERS["cyd"].dn)
        assert admin.result["description"] == "success"
        admin.unbind()
        ok = refresh(core, tokens["ada"])
        assert ok.status_code == 200
        tokens["ada"] = ok.get_json()["data"]["refresh_token"]
        for name in ("bob", "cyd"):
            reply = refresh(core, tokens[name])
            assert reply.status_code == 401 and reply.get_json() == INVALID_CREDENTIALS, name
            # The session is gone, not merely refused this once.
            assert refresh(core, tokens[name]).status_code == 401
        # A directory that cannot answer: 503, and the session survives it.
        server.stop()
        down = refresh(core, tokens["ada"])
        assert down.status_code == 503 and down.get_json() == UNREACHABLE
        server.start()
        assert refresh(core, tokens["ada"]).status_code == 200


def test_local_users_refresh_without_the_directory(tmp_path: Path) -> None:
    from tests.helpers.auth import PASSWORD, make_user

    users = MemoryUserStore()
    local = make_user()
    users.create(local)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    core = make_core(f"ldap://127.0.0.1:{port}", users)  # nothing listens there
    reply = login(core, {"email": local.email, "password": PASSWORD}, "/auth/login")
    assert reply.status_code == 200
    assert refresh(core, reply.get_json()["data"]["refresh_token"]).status_code == 200


# -- search settings ----------------------------------------------------------------------------------


def test_memberuid_groups_name_their_members_by_uid(slapd: LdapServer) -> None:
    core = make_core(
        slapd.url,
        AUTH_DIR_GROUP_DN=GROUP_DN,
        AUTH_DIR_GROUP_ATTRIBUTE="memberUid",
        AUTH_DIR_ROLE_MAPPING=json.dumps({"ops": ROLE_ADMIN}),
        AUTH_DIR_DEFAULT_ROLE_ID=ROLE_DEFAULT,
    )
    for name, role in (("cyd", ROLE_ADMIN), ("ada", ROLE_DEFAULT)):
        reply = login(core, {"identifier": name, "password": USERS[name].password})
        assert claims(reply.get_json()["data"]["access_token"])["role"] == role, name


def test_the_default_user_attribute_is_cn(slapd: LdapServer) -> None:
    env = ldap_env(slapd.url)
    del env["AUTH_DIR_USER_ATTRIBUTE"]
    core = TokenGuard(secret=SECRET, users=MemoryUserStore(), sessions=MemorySessionStore(),
                      passwords=FAST, login_stall_ms=0, auth_providers="dir",
                      auth_provider_env=env)
    assert login(core, {"identifier": "Ada Lovelace", "password": ADA.password}).status_code \
        == 200
    assert login(core, {"identifier": "ada", "password": ADA.password}).status_code == 401


def test_user_scope_one_stays_at_one_level_and_sub_goes_down(slapd: LdapServer) -> None:
    base = USER_DN.split(",", 1)[1]
    body = {"identifier": "ada", "password": ADA.password}
    assert login(make_core(slapd.url, AUTH_DIR_USER_DN=base), body).status_code == 401
    core = make_core(slapd.url, AUTH_DIR_USER_DN=base, AUTH_DIR_USER_SCOPE="sub")
    assert login(core, body).status_code == 200


def test_a_directory_user_enrols_in_two_factor_with_the_directory_password(
    slapd: LdapServer,
) -> None:
    from tests.helpers.auth import Clock

    clock = Clock()
    core = make_core(slapd.url, clock=clock)
    http = client(core)
    body = {"identifier": "eve", "password": USERS["eve"].password}
    access = login(core, body).get_json()["data"]["access_token"]
    auth = {"authorization": f"Bearer {access}"}
    wrong = http.post("/users/me/tfa/generate", json={"password": "nope"}, headers=auth)
    assert wrong.status_code == 401 and wrong.get_json() == INVALID_CREDENTIALS
    generated = http.post("/users/me/tfa/generate", json={"password": body["password"]},
                          headers=auth)
    assert generated.status_code == 200, generated.data
    secret = generated.get_json()["data"]["secret"]
    totp = pyotp.TOTP(secret)
    enabled = http.post("/users/me/tfa/enable",
                        json={"secret": secret, "otp": totp.at(clock.now)}, headers=auth)
    assert enabled.status_code == 204, enabled.data
    assert login(core, body).get_json() == INVALID_OTP
    clock.advance(30)
    assert login(core, {**body, "otp": totp.at(clock.now)}).status_code == 200


def test_without_ldap3_an_ldap_provider_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "ldap3", None)  # as if the `ldap` extra were missing
    with pytest.raises(ConfigError, match=r"needs ldap3: pip install 'tokenguard\[ldap\]'"):
        TokenGuard(secret=SECRET, users=MemoryUserStore(), sessions=MemorySessionStore(),
                   auth_providers="dir", auth_provider_env=ldap_env("ldap://127.0.0.1:9"))


def test_a_cross_site_cookie_mode_login_is_refused_as_for_local_login(slapd: LdapServer) -> None:
    core = make_core(slapd.url)
    body = {"identifier": "bob", "password": BOB.password}
    local = login(core, {"email": "x@example.com", "password": "x", "mode": "cookie"},
                  "/auth/login", origin="https://evil.example")
    for mode in ("cookie", "session"):
        reply = login(core, {**body, "mode": mode}, origin="https://evil.example")
        assert (reply.status_code, reply.data) == (local.status_code, local.data)
        assert reply.status_code == 403 and "set-cookie" not in reply.headers
    # json mode carries no ambient credential: allowed from anywhere.
    assert login(core, body, origin="https://evil.example").status_code == 200


# -- TLS ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LdapServer]:
    with LdapServer(tmp_path_factory.mktemp("slapd-tls"), tls=True) as server:
        yield server


def test_ldaps_checks_the_certificate(tls_slapd: LdapServer) -> None:
    body = {"identifier": "ada", "password": ADA.password}
    trusted = make_core(tls_slapd.ldaps_url, AUTH_DIR_CLIENT_TLS_CA_FILE=str(tls_slapd.ca_file))
    assert login(trusted, body).status_code == 200
    # The system's CAs do not know this one: refused, never silently accepted.
    untrusted = make_core(tls_slapd.ldaps_url)
    reply = login(untrusted, body)
    assert reply.status_code == 503 and reply.get_json() == UNREACHABLE


def test_start_tls_checks_the_certificate(tls_slapd: LdapServer) -> None:
    body = {"identifier": "ada", "password": ADA.password}
    trusted = make_core(tls_slapd.url, AUTH_DIR_CLIENT_START_TLS="true",
                        AUTH_DIR_CLIENT_TLS_CA_FILE=str(tls_slapd.ca_file))
    assert login(trusted, body).status_code == 200
    untrusted = make_core(tls_slapd.url, AUTH_DIR_CLIENT_START_TLS="true")
    assert login(untrusted, body).status_code == 503
