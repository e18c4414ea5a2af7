"""Single sign-on against a real (tiny) OpenID provider on 127.0.0.1, through the WSGI shell.

Covers the redirect, the callback in every mode, user linking and registration, and the
abuse cases: a forged or missing state cookie, a state that does not match, a nonce, issuer
or audience that is not ours, a replayed code, and open redirects.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from itsdangerous import URLSafeTimedSerializer
from werkzeug.test import Client

from tests.helpers.auth import FAST, SECRET, make_user, plain_wsgi_app
from tests.helpers.oidc_provider import CLIENT_ID, CLIENT_SECRET, OIDCProvider, running_provider
from tokenguard import TokenGuard, TokenGuardWSGI
from tokenguard.auth.drivers.sso import is_login_redirect_allowed
from tokenguard.errors import ConfigError
from tokenguard.stores.memory import MemorySessionStore, MemoryUserStore

PUBLIC = "http://app.example.com"
INVALID_CREDENTIALS = {
    "errors": [
        {"message": "Invalid user credentials.", "extensions": {"code": "INVALID_CREDENTIALS"}}
    ]
}


@pytest.fixture(scope="module")
def idp() -> Iterator[OIDCProvider]:
    with running_provider() as provider:
        yield provider


@pytest.fixture(autouse=True)
def _reset_idp(idp: OIDCProvider) -> None:
    idp.id_token_overrides = {}
    idp.state_override = None
    idp.alg_override = None
    idp.claims.clear()
    idp.claims.update(
        sub="idp-user-1",
        email="sso.user@example.com",
        email_verified=True,
        given_name="Sso",
        family_name="User",
    )


def make_core(idp: OIDCProvider, users: MemoryUserStore | None = None, **env: str) -> TokenGuard:
    variables = {
        "AUTH_IDP_DRIVER": "openid",
        "AUTH_IDP_CLIENT_ID": CLIENT_ID,
        "AUTH_IDP_CLIENT_SECRET": CLIENT_SECRET,
        "AUTH_IDP_ISSUER_URL": idp.url,
        "AUTH_IDP_ALLOW_PUBLIC_REGISTRATION": "true",
        "AUTH_IDP_LABEL": "Test IdP",
        "AUTH_IDP_REDIRECT_ALLOW_LIST": "https://front.example.org/done",
        **env,
    }
    return TokenGuard(
        secret=SECRET,
        users=users if users is not None else MemoryUserStore(),
        sessions=MemorySessionStore(),
        passwords=FAST,
        login_stall_ms=0,
        public_url=PUBLIC,
        auth_providers="idp",
        auth_provider_env=variables,
    )


def client_for(core: TokenGuard) -> Client:
    return Client(TokenGuardWSGI(plain_wsgi_app, guard=core))


def start(client: Client, query: str = "") -> tuple[str, str]:
    """GET /auth/login/idp: the provider URL it redirects to, and the state cookie."""
    reply = client.get("/auth/login/idp" + query)
    assert reply.status_code == 302, reply.data
    cookie = client.get_cookie("openid.idp")
    assert cookie is not None
    return reply.headers["location"], cookie.value


def via_provider(location: str) -> str:
    """Follow the provider's authorization URL (it approves at once): the callback URL."""
    reply = httpx.get(location, follow_redirects=False, timeout=5)
    assert reply.status_code == 302
    callback = reply.headers["location"]
    assert callback.startswith(PUBLIC + "/auth/login/idp/callback?")
    return callback[len(PUBLIC) :]


def test_providers_list_has_directus_shape(idp: OIDCProvider) -> None:
    client = client_for(make_core(idp, AUTH_IDP_ICON="key"))
    reply = client.get("/auth")
    assert reply.status_code == 200
    assert (
        reply.data
        == b'{"data":[{"name":"idp","label":"Test IdP","driver":"openid","icon":"key"}],"disableDefault":false}'
    )
    cookie_mode = client_for(make_core(idp, AUTH_IDP_MODE="cookie"))
    assert cookie_mode.get("/auth?sessionOnly").data == b'{"data":[],"disableDefault":false}'
    assert cookie_mode.get("/auth").json["data"][0]["name"] == "idp"


def test_redirect_to_provider_carries_pkce_state_and_nonce(idp: OIDCProvider) -> None:
    client = client_for(make_core(idp))
    location, cookie = start(client)
    parts = urlsplit(location)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == idp.url + "/authorize"
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query["client_id"] == CLIENT_ID
    assert query["response_type"] == "code"
    assert query["redirect_uri"] == PUBLIC + "/auth/login/idp/callback"
    assert query["code_challenge_method"] == "S256"
    assert len(query["state"]) >= 40 and len(query["nonce"]) >= 40
    assert query["scope"] == "openid profile email"
    # The cookie is signed, not a plain copy of the state.
    assert query["state"] not in cookie.split(".")[0]


def test_session_mode_login_creates_the_user_and_issues_a_session(idp: OIDCProvider) -> None:
    users = MemoryUserStore()
    core = make_core(idp, users)
    client = client_for(core)
    location, _ = start(client)
    reply = client.get(via_provider(location))
    assert reply.status_code == 200, reply.data
    data = reply.json["data"]
    assert list(data) == ["access_token", "refresh_token", "expires"]
    assert data["expires"] == core.settings.session_cookie_ttl_ms
    user = users.get_by_email("sso.user@example.com")
    assert user is not None and user.provider == "idp"
    assert (user.first_name, user.last_name) == ("Sso", "User")
    claims = jwt.decode(data["access_token"], SECRET, algorithms=["HS256"], issuer="directus")
    assert claims["id"] == user.id and claims["session"] == data["refresh_token"]
    # The state cookie is gone; a second visit of the same callback is refused.
    assert any(
        "openid.idp=;" in v and "Max-Age=0" in v for v in reply.headers.getlist("set-cookie")
    )
    again = client.get(via_provider(location))
    assert again.status_code == 401


def test_redirect_sets_the_session_cookie_and_goes_back(idp: OIDCProvider) -> None:
    client = client_for(make_core(idp))
    location, _ = start(client, "?redirect=/after/login")
    reply = client.get(via_provider(location))
    assert reply.status_code == 302
    assert reply.headers["location"] == "/after/login"
    cookies = reply.headers.getlist("set-cookie")
    assert any(c.startswith("directus_session_token=ey") for c in cookies)
    # The browser is now signed in.
    me = client.get("/app")
    assert me.data.startswith(b"app /app user=")
    assert not me.data.endswith(b"user=None")


def test_cookie_mode_redirect_sets_the_refresh_cookie(idp: OIDCProvider) -> None:
    client = client_for(make_core(idp, AUTH_IDP_MODE="cookie"))
    location, _ = start(client, "?redirect=https://front.example.org/done?x=1")
    reply = client.get(via_provider(location))
    assert reply.status_code == 302
    assert reply.headers["location"] == "https://front.example.org/done?x=1"
    assert any(c.startswith("directus_refresh_token=") for c in reply.headers.getlist("set-cookie"))


@pytest.mark.parametrize(
    "redirect",
    [
        "https://evil.example.net/",
        "//evil.example.net/x",
        "/\\evil.example.net",
        "javascript:alert(1)",
        "https://front.example.org.evil.net/done",
    ],
)
def test_open_redirects_are_refused_before_the_provider(idp: OIDCProvider, redirect: str) -> None:
    client = client_for(make_core(idp))
    reply = client.get("/auth/login/idp", query_string={"redirect": redirect})
    assert reply.status_code == 400
    assert reply.json["errors"][0]["extensions"]["code"] == "INVALID_PAYLOAD"
    assert reply.json["errors"][0]["message"] == (
        f'Invalid payload. URL "{redirect}" can\'t be used to redirect after login.'
    )
    assert client.get_cookie("openid.idp") is None


def test_tampered_state_cookie_is_refused(idp: OIDCProvider) -> None:
    client = client_for(make_core(idp))
    location, cookie = start(client)
    # itsdangerous's form: <payload>.<time>.<signature>, the payload maybe zlib'd (a leading ".").
    payload, timestamp, signature = cookie.rsplit(".", 2)
    claims = URLSafeTimedSerializer(b"unused").load_payload(payload.encode())
    claims["r"] = "https://evil.example.net/"
    forged = f"{base64url_encode(json.dumps(claims).encode())}.{timestamp}.{signature}"
    client.set_cookie("openid.idp", forged, domain="localhost")
    reply = client.get(via_provider(location))
    assert reply.status_code == 401
    assert reply.json == INVALID_CREDENTIALS


def test_missing_state_cookie_is_refused(idp: OIDCProvider) -> None:
    client = client_for(make_core(idp))
    location, _ = start(client)
    client.delete_cookie("openid.idp", domain="localhost")
    reply = client.get(via_provider(location))
    assert reply.status_code == 401
    assert reply.json == INVALID_CREDENTIALS


def test_state_cookie_of_another_provider_is_refused(idp: OIDCProvider) -> None:
    core = make_core(idp)
    other = make_core(idp, AUTH_IDP_CLIENT_ID=CLIENT_ID)  # same SECRET, same provider name
    assert other is not core
    client = client_for(core)
    location, cookie = start(client)
    claims = URLSafeTimedSerializer(b"unused").load_payload(cookie.rsplit(".", 2)[0].encode())
    forged = URLSafeTimedSerializer(b"x" * 32, salt="tokenguard/sso-state/v1").dumps(
        {**claims, "p": "other"}
    )
    client.set_cookie("openid.idp", forged, domain="localhost")
    assert client.get(via_provider(location)).status_code == 401


def test_state_cookie_older_than_the_login_timeout_is_refused(idp: OIDCProvider) -> None:
    import time

    from tests.helpers.auth import Clock

    clock = Clock(time.time())
    core = TokenGuard(
        secret=SECRET,
        users=MemoryUserStore(),
        sessions=MemorySessionStore(),
        passwords=FAST,
        login_stall_ms=0,
        public_url=PUBLIC,
        auth_providers="idp",
        auth_provider_env={
            "AUTH_IDP_DRIVER": "openid",
            "AUTH_IDP_CLIENT_ID": CLIENT_ID,
            "AUTH_IDP_CLIENT_SECRET": CLIENT_SECRET,
            "AUTH_IDP_ISSUER_URL": idp.url,
            "AUTH_IDP_ALLOW_PUBLIC_REGISTRATION": "true",
            "AUTH_IDP_LOGIN_TIMEOUT": "2m",
        },
        clock=clock,
    )
    client = client_for(core)
    location, _ = start(client)
    clock.advance(121)
    reply = client.get(via_provider(location))
    assert reply.status_code == 401
    assert reply.json == INVALID_CREDENTIALS


def test_state_mismatch_is_refused_and_reported_to_the_redirect(idp: OIDCProvider) -> None:
    client = client_for(make_core(idp))
    location, _ = start(client, "?redirect=/back?keep=no")
    idp.state_override = "attacker-state"
    reply = client.get(via_provider(location))
    assert reply.status_code == 302
    assert reply.headers["location"] == "/back?reason=INVALID_CREDENTIALS"


@pytest.mark.parametrize(
    "override",
    [
        {"nonce": "not-the-nonce"},
        {"nonce": None},
        {"iss": "https://impostor.example"},
        {"aud": "someone-else"},
        {"exp": 1},
    ],
)
def test_id_token_nonce_issuer_audience_expiry_are_checked(
    idp: OIDCProvider, override: dict[str, Any]
) -> None:
    users = MemoryUserStore()
    client = client_for(make_core(idp, users))
    location, _ = start(client)
    idp.id_token_overrides = override
    reply = client.get(via_provider(location))
    assert reply.status_code == 401
    assert reply.json == INVALID_CREDENTIALS
    assert users.list_users() == []


def test_unverified_email_is_refused(idp: OIDCProvider) -> None:
    client = client_for(make_core(idp))
    location, _ = start(client)
    idp.claims["email_verified"] = False
    assert client.get(via_provider(location)).status_code == 401


def test_no_registration_without_allow_public_registration(idp: OIDCProvider) -> None:
    users = MemoryUserStore()
    client = client_for(make_core(idp, users, AUTH_IDP_ALLOW_PUBLIC_REGISTRATION="false"))
    location, _ = start(client)
    assert client.get(via_provider(location)).status_code == 401
    assert users.list_users() == []


def test_local_user_is_linked_only_when_configured(idp: OIDCProvider) -> None:
    users = MemoryUserStore()
    users.create(make_user(email="sso.user@example.com"))
    client = client_for(make_core(idp, users))
    location, _ = start(client)
    assert client.get(via_provider(location)).status_code == 401  # not linked by default
    linked = client_for(make_core(idp, users, AUTH_IDP_LINK_EXISTING="true"))
    location, _ = start(linked)
    reply = linked.get(via_provider(location))
    assert reply.status_code == 200
    assert users.get_by_email("sso.user@example.com").provider == "default"


def sign_in(client: Client) -> Any:
    location, _ = start(client)
    return client.get(via_provider(location))


def test_users_are_matched_by_the_providers_subject_not_their_email(idp: OIDCProvider) -> None:
    users = MemoryUserStore()
    client = client_for(make_core(idp, users))
    assert sign_in(client).status_code == 200
    (user,) = users.list_users()
    assert (user.external_identifier, user.provider) == ("idp-user-1", "idp")
    idp.claims["email"] = "renamed@example.com"  # the same person, a new address
    assert sign_in(client).status_code == 200
    assert users.list_users() == [user]
    # Someone else at the provider now has the old address: refused, nobody created.
    idp.claims.update(sub="idp-user-2", email="sso.user@example.com")
    reply = sign_in(client)
    assert (reply.status_code, reply.json) == (401, INVALID_CREDENTIALS)
    assert users.list_users() == [user]


def test_identifier_key_sync_user_info_and_role_mapping(idp: OIDCProvider) -> None:
    users = MemoryUserStore()
    core = make_core(
        idp,
        users,
        AUTH_IDP_IDENTIFIER_KEY="employee.number",
        AUTH_IDP_SYNC_USER_INFO="true",
        AUTH_IDP_DEFAULT_ROLE_ID="r-reader",
        AUTH_IDP_ROLE_MAPPING='{"editors": "r-editor", "staff": "r-staff"}',
        AUTH_IDP_GROUP_CLAIM_NAME="memberOf",
    )
    client = client_for(core)
    idp.claims.update(employee={"number": 4711}, memberOf=["staff", "editors"])
    assert sign_in(client).status_code == 200
    (user,) = users.list_users()
    assert (user.external_identifier, user.role, user.first_name) == ("4711", "r-editor", "Sso")
    idp.claims.update(memberOf=[], given_name="Renamed", email="new@example.com")
    assert sign_in(client).status_code == 200
    again = users.get_by_id(user.id)
    assert (again.role, again.first_name, again.email) == ("r-reader", "Renamed", "new@example.com")


def test_sso_user_cannot_use_password_login(idp: OIDCProvider) -> None:
    client = client_for(make_core(idp))
    location, _ = start(client)
    assert client.get(via_provider(location)).status_code == 200
    reply = client.post("/auth/login", json={"email": "sso.user@example.com", "password": "x"})
    assert reply.status_code == 401


def test_form_post_callback_becomes_a_get() -> None:
    core = TokenGuard(
        secret=SECRET,
        public_url=PUBLIC,
        auth_providers="idp",
        auth_provider_env={
            "AUTH_IDP_DRIVER": "openid",
            "AUTH_IDP_CLIENT_ID": "c",
            "AUTH_IDP_ISSUER_URL": "https://idp.example",
        },
        users=MemoryUserStore(),
        sessions=MemorySessionStore(),
    )
    reply = client_for(core).post(
        "/auth/login/idp/callback",
        data={"code": "abc", "state": "s t"},
        content_type="application/x-www-form-urlencoded",
    )
    assert reply.status_code == 303
    assert reply.headers["location"] == "./callback?code=abc&state=s+t"


def test_unknown_provider_is_not_ours(idp: OIDCProvider) -> None:
    client = client_for(make_core(idp))
    assert client.get("/auth/login/nope").data == b"app /auth/login/nope user=None"


def test_configuration_errors() -> None:
    with pytest.raises(ConfigError, match="PUBLIC_URL"):
        TokenGuard(
            secret=SECRET,
            auth_providers="idp",
            auth_provider_env={
                "AUTH_IDP_DRIVER": "openid",
                "AUTH_IDP_CLIENT_ID": "c",
                "AUTH_IDP_ISSUER_URL": "https://i",
            },
        )
    with pytest.raises(ConfigError, match="ISSUER_URL"):
        TokenGuard(
            secret=SECRET,
            public_url=PUBLIC,
            auth_providers="idp",
            auth_provider_env={"AUTH_IDP_DRIVER": "openid", "AUTH_IDP_CLIENT_ID": "c"},
        )
    with pytest.raises(ConfigError, match="MODE"):
        TokenGuard(
            secret=SECRET,
            public_url=PUBLIC,
            auth_providers="idp",
            auth_provider_env={
                "AUTH_IDP_DRIVER": "openid",
                "AUTH_IDP_CLIENT_ID": "c",
                "AUTH_IDP_ISSUER_URL": "https://i",
                "AUTH_IDP_MODE": "bogus",
            },
        )


def test_provider_endpoints_must_be_https() -> None:
    core = TokenGuard(
        secret=SECRET,
        public_url=PUBLIC,
        auth_providers="idp",
        auth_provider_env={
            "AUTH_IDP_DRIVER": "openid",
            "AUTH_IDP_CLIENT_ID": "c",
            "AUTH_IDP_ISSUER_URL": "http://idp.example.com",
        },
        users=MemoryUserStore(),
        sessions=MemorySessionStore(),
    )
    reply = client_for(core).get("/auth/login/idp")
    assert reply.status_code == 503
    assert reply.json["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"


# -- the redirect rule -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("redirect", "allowed"),
    [
        (None, True),
        ("", True),
        ("/admin", True),
        ("/a?b=c#d", True),
        ("//evil.com", False),
        ("/\\evil.com", False),
        ("/ok\nLocation: x", False),
        ("http://app.example.com/x", True),
        ("https://app.example.com/x", False),
        ("http://app.example.com:8080/x", False),
        ("https://front.example.org/done", True),
        ("https://front.example.org/done?q=1", True),
        ("https://front.example.org/other", False),
        ("data:text/html,hi", False),
        ("evil.com", False),
        (123, False),
    ],
)
def test_login_redirect_rule(redirect: Any, allowed: bool) -> None:
    assert (
        is_login_redirect_allowed(redirect, ("https://front.example.org/done",), PUBLIC) is allowed
    )


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_redirect_rule_never_allows_another_host(text: str) -> None:
    if is_login_redirect_allowed(text, (), PUBLIC) and text:
        resolved = httpx.URL(PUBLIC + "/").join(text)
        assert resolved.host == "app.example.com"


def base64url_encode(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_disable_default_hides_password_login(idp: OIDCProvider) -> None:
    core = make_core(idp)
    core = TokenGuard(
        core.settings.with_changes(auth_disable_default=True),
        users=MemoryUserStore(),
        sessions=MemorySessionStore(),
        passwords=FAST,
    )
    client = client_for(core)
    assert client.get("/auth").json["disableDefault"] is True
    reply = client.post("/auth/login", json={"email": "a@example.com", "password": "x"})
    assert reply.status_code == 404
    assert reply.json["errors"][0]["extensions"]["code"] == "ROUTE_NOT_FOUND"


@pytest.mark.filterwarnings("ignore:The HMAC key")
@pytest.mark.parametrize("alg", ["HS256", "none", "other-key"])
def test_id_token_signature_is_checked_against_the_providers_keys(
    idp: OIDCProvider, alg: str
) -> None:
    users = MemoryUserStore()
    client = client_for(make_core(idp, users))
    location, _ = start(client)
    idp.alg_override = alg
    reply = client.get(via_provider(location))
    assert reply.status_code == 401
    assert reply.json == INVALID_CREDENTIALS
    assert users.list_users() == []


def test_oauth2_driver_reads_the_profile_url(idp: OIDCProvider) -> None:
    users = MemoryUserStore()
    core = TokenGuard(
        secret=SECRET,
        users=users,
        sessions=MemorySessionStore(),
        passwords=FAST,
        public_url=PUBLIC,
        auth_providers="gh",
        auth_provider_env={
            "AUTH_GH_DRIVER": "oauth2",
            "AUTH_GH_CLIENT_ID": CLIENT_ID,
            "AUTH_GH_CLIENT_SECRET": CLIENT_SECRET,
            "AUTH_GH_AUTHORIZE_URL": idp.url + "/authorize",
            "AUTH_GH_ACCESS_URL": idp.url + "/token",
            "AUTH_GH_PROFILE_URL": idp.url + "/userinfo",
            "AUTH_GH_ALLOW_PUBLIC_REGISTRATION": "true",
            "AUTH_GH_DEFAULT_ROLE_ID": "role-1",
            "AUTH_GH_MODE": "json",
        },
    )
    client = client_for(core)
    reply = client.get("/auth/login/gh")
    assert reply.status_code == 302
    query = parse_qs(urlsplit(reply.headers["location"]).query)
    assert "nonce" not in query and query["scope"] == ["email"]
    assert client.get_cookie("oauth2.gh") is not None
    at_idp = httpx.get(reply.headers["location"], follow_redirects=False, timeout=5)
    callback = at_idp.headers["location"][len(PUBLIC) :]
    done = client.get(callback)
    assert done.status_code == 200, done.data
    assert done.json["data"]["expires"] == core.settings.access_token_ttl_ms
    user = users.get_by_email("sso.user@example.com")
    assert user is not None and (user.provider, user.role) == ("gh", "role-1")
    # No AUTH_GH_IDENTIFIER_KEY: the e-mail is the identifier, as Directus's oauth2 driver does.
    assert user.external_identifier == "sso.user@example.com"


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["code", "state", "error", "x"]), st.text(max_size=30), max_size=4
    ),
    st.text(max_size=80),
)
def test_any_callback_query_or_cookie_is_a_clean_refusal(
    query: dict[str, str], cookie: str
) -> None:
    client = client_for(_FUZZ_CORE)
    if cookie.isprintable() and ";" not in cookie and cookie.isascii():
        client.set_cookie("openid.idp", cookie, domain="localhost")
    reply = client.get("/auth/login/idp/callback", query_string=query)
    assert reply.status_code == 401
    assert reply.json == INVALID_CREDENTIALS


_FUZZ_CORE = TokenGuard(
    secret=SECRET,
    users=MemoryUserStore(),
    sessions=MemorySessionStore(),
    public_url=PUBLIC,
    auth_providers="idp",
    auth_provider_env={
        "AUTH_IDP_DRIVER": "openid",
        "AUTH_IDP_CLIENT_ID": "c",
        "AUTH_IDP_ISSUER_URL": "https://idp.example",
    },
)
