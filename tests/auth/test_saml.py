"""SAML login against a real pysaml2 identity provider on 127.0.0.1, through the WSGI shell.

Directus's blackbox cases (spec §16.11, B9-B12), the full round trip through the IdP's
HTTP-POST form, the account rules (registration, external identifiers), and the abuse cases:
unsigned, wrongly signed, expired, tampered, replayed, misaddressed and unsolicited
responses, forged request IDs and swapped RelayStates, and fuzzed form fields.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.test import Client

from tests.helpers.auth import (
    FAST,
    INVALID_CREDENTIALS,
    SECRET,
    invalid_payload_body,
    make_user,
    plain_wsgi_app,
)
from tests.helpers.redis_server import RedisServer
from tests.helpers.saml_idp import CLAIMS, SAMLIdP, make_key_pair, read_form, running_idp
from tokenguard import TokenGuard, TokenGuardWSGI
from tokenguard.errors import ConfigError
from tokenguard.stores.memory import MemorySessionStore, MemoryUserStore
from tokenguard.stores.once import MemoryOnceStore, RedisOnceStore

PUBLIC = "http://app.example.com"
SP_ENTITY = PUBLIC + "/sp"
ACS = PUBLIC + "/auth/login/saml/acs"
ALLOWED = "https://front.example.org/done"
USER = {
    CLAIMS + "nameidentifier": ["Saml-User-1"],
    CLAIMS + "emailaddress": ["saml.user@example.com"],
    CLAIMS + "givenname": ["Sam"],
    CLAIMS + "surname": ["Ell"],
}


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SAMLIdP]:
    with running_idp(tmp_path_factory.mktemp("saml-keys"), SP_ENTITY, ACS) as provider:
        yield provider


@pytest.fixture(autouse=True)
def _reset_idp(idp: SAMLIdP) -> None:
    idp.user = {k: list(v) for k, v in USER.items()}
    idp.name_id = "idp-user-1"
    idp.name_id_format = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"


def env_for(idp: SAMLIdP, **env: str) -> dict[str, str]:
    return {
        "AUTH_SAML_DRIVER": "saml",
        "AUTH_SAML_IDP_metadata": idp.metadata,
        "AUTH_SAML_SP_metadata": idp.sp_metadata,
        "AUTH_SAML_ALLOW_PUBLIC_REGISTRATION": "true",
        "AUTH_SAML_REDIRECT_ALLOW_LIST": ALLOWED,
        **env,
    }


def make_core(
    idp: SAMLIdP,
    users: MemoryUserStore | None = None,
    once: object | None = None,
    **env: str,
) -> TokenGuard:
    return TokenGuard(
        secret=SECRET,
        users=users if users is not None else MemoryUserStore(),
        sessions=MemorySessionStore(),
        passwords=FAST,
        login_stall_ms=0,
        public_url=PUBLIC,
        auth_providers="saml",
        auth_provider_env=env_for(idp, **env),
        once=once if once is not None else MemoryOnceStore(),  # type: ignore[arg-type]
    )


def client_for(core: TokenGuard) -> Client:
    return Client(TokenGuardWSGI(plain_wsgi_app, guard=core))


def start(client: Client, query: str = "") -> str:
    """GET /auth/login/saml: the IdP URL it redirects to."""
    reply = client.get("/auth/login/saml" + query)
    assert reply.status_code == 302, reply.data
    return reply.headers["location"]


def through_idp(location: str) -> dict[str, str]:
    """Follow the redirect to the IdP (which signs the user in at once): its form's fields."""
    page = httpx.get(location, timeout=10)
    assert page.status_code == 200, page.text
    action, fields = read_form(page.text)
    assert action == ACS
    return fields


def acs(client: Client, fields: dict[str, str]) -> object:
    return client.post("/auth/login/saml/acs", data=fields)


def login_fields(client: Client, idp: SAMLIdP, query: str = "", **options: object) -> dict[str, str]:
    """A response the IdP made (with ``options``) for a request the SP just sent."""
    location = start(client, query)
    relay = parse_qs(urlsplit(location).query).get("RelayState", [""])[0]
    fields = {"SAMLResponse": idp.response(idp.request_id(location), **options)}
    if relay:
        fields["RelayState"] = relay
    return fields


# -- configuration --------------------------------------------------------------------------


def test_provider_is_listed_with_its_driver(idp: SAMLIdP) -> None:
    reply = client_for(make_core(idp, AUTH_SAML_LABEL="Corporate")).get("/auth")
    assert reply.status_code == 200
    assert reply.data == (
        b'{"data":[{"name":"saml","label":"Corporate","driver":"saml"}],"disableDefault":false}'
    )


def test_session_only_list_keeps_session_mode_saml_providers(idp: SAMLIdP) -> None:
    assert json.loads(client_for(make_core(idp)).get("/auth?sessionOnly").data)["data"] == [
        {"name": "saml", "driver": "saml"}
    ]
    cookie_mode = client_for(make_core(idp, AUTH_SAML_MODE="cookie"))
    assert cookie_mode.get("/auth?sessionOnly").data == b'{"data":[],"disableDefault":false}'


def test_metadata_route_serves_the_sp_metadata(idp: SAMLIdP) -> None:
    reply = client_for(make_core(idp)).get("/auth/login/saml/metadata")
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "text/xml; charset=utf-8"
    assert reply.data == idp.sp_metadata.encode()


def test_upper_case_metadata_spelling_is_accepted(idp: SAMLIdP) -> None:
    env = env_for(idp)
    env["AUTH_SAML_IDP_METADATA"] = env.pop("AUTH_SAML_IDP_metadata")
    env["AUTH_SAML_SP_METADATA"] = env.pop("AUTH_SAML_SP_metadata")
    core = TokenGuard(
        secret=SECRET,
        users=MemoryUserStore(),
        sessions=MemorySessionStore(),
        public_url=PUBLIC,
        auth_providers="saml",
        auth_provider_env=env,
    )
    assert client_for(core).get("/auth/login/saml").status_code == 302


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"AUTH_SAML_IDP_metadata": ""}, "AUTH_SAML_IDP_metadata"),
        ({"AUTH_SAML_SP_metadata": ""}, "AUTH_SAML_SP_metadata"),
        ({"AUTH_SAML_SP_metadata": "<not-metadata/>"}, "AUTH_SAML_SP_metadata"),
        ({"AUTH_SAML_IDP_metadata": "<broken"}, "AUTH_SAML_IDP_metadata"),
        ({"AUTH_SAML_IDP_metadata": "<!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>"},
         "AUTH_SAML_IDP_metadata"),
        ({"AUTH_SAML_MODE": "bogus"}, "AUTH_SAML_MODE"),
    ],
)
def test_bad_configuration_is_refused_at_start_up(
    idp: SAMLIdP, change: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        make_core(idp, **change)


def test_idp_metadata_without_a_signing_certificate_is_refused(idp: SAMLIdP) -> None:
    start_tag = idp.metadata.index("<md:KeyDescriptor")
    end_tag = idp.metadata.index("</md:KeyDescriptor>") + len("</md:KeyDescriptor>")
    unsigned = idp.metadata[:start_tag] + idp.metadata[end_tag:]
    with pytest.raises(ConfigError, match="signing certificate"):
        make_core(idp, AUTH_SAML_IDP_metadata=unsigned)


# -- B9-B12 ---------------------------------------------------------------------------------


def test_b9_login_redirects_to_the_idp(idp: SAMLIdP) -> None:
    location = start(client_for(make_core(idp)))
    parts = urlsplit(location)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == idp.url + "/sso"
    query = parse_qs(parts.query)
    assert set(query) == {"SAMLRequest"}  # no redirect: no RelayState
    request_id = idp.request_id(location)
    request = idp.requests[-1]
    assert request.issuer.text == SP_ENTITY
    assert request.assertion_consumer_service_url == ACS
    assert request_id.startswith("_")


def test_login_with_redirect_carries_it_as_relay_state(idp: SAMLIdP) -> None:
    location = start(client_for(make_core(idp)), "?redirect=" + ALLOWED)
    assert parse_qs(urlsplit(location).query)["RelayState"] == [ALLOWED]


def test_b10_acs_without_relay_state_answers_tokens(idp: SAMLIdP) -> None:
    users = MemoryUserStore()
    client = client_for(make_core(idp, users))
    fields = through_idp(start(client))
    assert set(fields) == {"SAMLResponse"}
    reply = acs(client, fields)
    assert reply.status_code == 200, reply.data
    data = json.loads(reply.data)["data"]
    assert set(data) == {"access_token", "expires", "refresh_token"}
    assert isinstance(data["expires"], int) and data["expires"] > 0
    assert reply.headers.get("set-cookie") is None
    user = users.get_by_email("saml.user@example.com")
    assert user is not None
    assert user.provider == "saml"
    assert user.external_identifier == "saml-user-1"  # lower-cased, as Directus keeps it
    assert (user.first_name, user.last_name) == ("Sam", "Ell")
    me = client.get("/whoami", headers={"authorization": f"Bearer {data['access_token']}"})
    assert me.status_code == 200


def test_b11_allowed_redirect_sets_the_session_cookie(idp: SAMLIdP) -> None:
    client = client_for(make_core(idp))
    fields = through_idp(start(client, "?redirect=" + ALLOWED))
    assert fields["RelayState"] == ALLOWED
    reply = acs(client, fields)
    assert reply.status_code == 302, reply.data
    assert reply.headers["location"] == ALLOWED
    cookies = reply.headers.getlist("set-cookie")
    assert len(cookies) == 1 and cookies[0].startswith("directus_session_token=ey")
    assert "HttpOnly" in cookies[0]


def test_cookie_mode_sets_the_refresh_cookie(idp: SAMLIdP) -> None:
    client = client_for(make_core(idp, AUTH_SAML_MODE="cookie"))
    reply = acs(client, through_idp(start(client, "?redirect=/dashboard")))
    assert reply.status_code == 302
    assert reply.headers["location"] == "/dashboard"
    cookies = reply.headers.getlist("set-cookie")
    assert len(cookies) == 1 and cookies[0].startswith("directus_refresh_token=")


@pytest.mark.parametrize(
    "redirect", ["https://example.org/admin", "//evil.example.org/x", "javascript:alert(1)"]
)
def test_b12_disallowed_redirect_is_refused(idp: SAMLIdP, redirect: str) -> None:
    reply = client_for(make_core(idp)).get("/auth/login/saml", query_string={"redirect": redirect})
    assert reply.status_code == 400
    assert reply.data == invalid_payload_body(
        f'URL "{redirect}" can\'t be used to redirect after login'
    )


def test_failure_with_relay_state_redirects_with_the_reason(idp: SAMLIdP) -> None:
    client = client_for(make_core(idp, AUTH_SAML_ALLOW_PUBLIC_REGISTRATION="false"))
    reply = acs(client, through_idp(start(client, "?redirect=" + ALLOWED + "?x=1")))
    assert reply.status_code == 302
    assert reply.headers["location"] == ALLOWED + "?reason=INVALID_CREDENTIALS"
    assert reply.headers.get("set-cookie") is None


def test_disallowed_relay_state_at_the_acs_is_refused(idp: SAMLIdP) -> None:
    client = client_for(make_core(idp))
    fields = login_fields(client, idp)
    fields["RelayState"] = "https://evil.example.org/"
    reply = acs(client, fields)
    assert reply.status_code == 400
    assert reply.data == invalid_payload_body(
        'URL "https://evil.example.org/" can\'t be used to redirect after login'
    )


def test_swapped_relay_state_is_refused(idp: SAMLIdP) -> None:
    # The request ID is bound to the RelayState it was sent with.
    client = client_for(make_core(idp))
    fields = login_fields(client, idp, "?redirect=/a")
    fields["RelayState"] = "/b"
    reply = acs(client, fields)
    assert reply.status_code == 302
    assert reply.headers["location"] == "/b?reason=INVALID_CREDENTIALS"


# -- signatures, lifetimes, addresses, replays ----------------------------------------------


def test_a_signed_response_with_an_unsigned_assertion_is_accepted(idp: SAMLIdP) -> None:
    client = client_for(make_core(idp))
    fields = login_fields(client, idp, sign_assertion=False, sign_response=True)
    assert acs(client, fields).status_code == 200


@pytest.mark.parametrize(
    "options",
    [
        {"sign_assertion": False},
        {"impostor": True},
        {"impostor": True, "sign_response": True},
        {"lifetime_minutes": -10},
        {"audience": "http://other-sp.example.org/sp"},
        {"destination": "http://evil.example.org/acs"},
    ],
    ids=["unsigned", "other-key", "other-key-response", "expired", "audience", "destination"],
)
def test_bad_responses_are_refused(idp: SAMLIdP, options: dict[str, object]) -> None:
    users = MemoryUserStore()
    client = client_for(make_core(idp, users))
    reply = acs(client, login_fields(client, idp, **options))
    assert reply.status_code == 401, reply.data
    assert reply.data == INVALID_CREDENTIALS
    assert users.get_by_email("saml.user@example.com") is None


def test_an_idp_error_status_is_refused(idp: SAMLIdP) -> None:
    from saml2.samlp import STATUS_AUTHN_FAILED

    client = client_for(make_core(idp))
    location = start(client, "?redirect=/back")
    error = idp.server.create_error_response(
        idp.request_id(location), ACS, (STATUS_AUTHN_FAILED, "wrong password"), sign=True
    )
    fields = {
        "SAMLResponse": base64.b64encode(str(error).encode()).decode(),
        "RelayState": "/back",
    }
    reply = acs(client, fields)
    assert reply.status_code == 302
    assert reply.headers["location"] == "/back?reason=INVALID_CREDENTIALS"
    del fields["RelayState"]
    reply = acs(client, fields)
    assert reply.status_code == 401
    assert reply.data == INVALID_CREDENTIALS


@pytest.mark.parametrize(
    "document",
    [
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;'
        '&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
        '<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">&c;</samlp:Response>',
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        '<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">&x;</samlp:Response>',
    ],
    ids=["entity-expansion", "external-entity"],
)
def test_xml_entities_are_refused(idp: SAMLIdP, document: str) -> None:
    client = client_for(make_core(idp))
    reply = acs(client, {"SAMLResponse": base64.b64encode(document.encode()).decode()})
    assert reply.status_code == 401
    assert reply.data == INVALID_CREDENTIALS


def test_two_assertions_are_refused(idp: SAMLIdP) -> None:
    # One signed response around two signed assertions (saml2int: exactly one).
    client = client_for(make_core(idp))
    location = start(client)
    request_id = idp.request_id(location)
    xml = idp.xml(request_id)
    start_at = xml.index("<ns1:Assertion") if "<ns1:Assertion" in xml else None
    assert start_at is not None, xml[:400]
    end_at = xml.index("</ns1:Assertion>") + len("</ns1:Assertion>")
    doubled = xml[:end_at] + xml[start_at:end_at] + xml[end_at:]
    reply = acs(client, {"SAMLResponse": base64.b64encode(doubled.encode()).decode()})
    assert reply.status_code == 401


def test_tampered_assertion_is_refused(idp: SAMLIdP) -> None:
    client = client_for(make_core(idp))
    location = start(client)
    xml = idp.xml(idp.request_id(location))
    assert xml.count("saml.user@example.com") == 1
    forged = xml.replace("saml.user@example.com", "admin@example.com")
    reply = acs(client, {"SAMLResponse": base64.b64encode(forged.encode()).decode()})
    assert reply.status_code == 401
    assert reply.data == INVALID_CREDENTIALS


def test_replayed_assertion_is_refused(idp: SAMLIdP) -> None:
    client = client_for(make_core(idp))
    fields = through_idp(start(client))
    assert acs(client, fields).status_code == 200
    again = acs(client, fields)
    assert again.status_code == 401
    assert again.data == INVALID_CREDENTIALS


@pytest.mark.redis
def test_replay_is_refused_by_another_core_sharing_redis(
    idp: SAMLIdP, private_redis: RedisServer
) -> None:
    import redis

    prefix = f"tg-saml-test:{secrets.token_hex(4)}:"
    clients = [redis.Redis.from_url(private_redis.url) for _ in range(2)]
    try:
        first, second = (
            client_for(make_core(idp, once=RedisOnceStore(c, prefix=prefix))) for c in clients
        )
        fields = through_idp(start(first))
        assert acs(first, fields).status_code == 200
        replay = acs(second, fields)
        assert replay.status_code == 401
        assert replay.data == INVALID_CREDENTIALS
    finally:
        for c in clients:
            c.close()


def test_unsolicited_response_is_refused_by_default(idp: SAMLIdP) -> None:
    client = client_for(make_core(idp))
    reply = acs(client, {"SAMLResponse": idp.response(None)})
    assert reply.status_code == 401


def test_unsolicited_response_when_allowed(idp: SAMLIdP) -> None:
    client = client_for(make_core(idp, AUTH_SAML_ALLOW_UNSOLICITED="true"))
    fields = {"SAMLResponse": idp.response(None), "RelayState": "/home"}
    reply = acs(client, fields)
    assert reply.status_code == 302
    assert reply.headers["location"] == "/home"
    replay = acs(client, fields)  # the same assertion again: refused, back with the reason
    assert replay.status_code == 302
    assert replay.headers["location"] == "/home?reason=INVALID_CREDENTIALS"


@pytest.mark.parametrize(
    "request_id",
    ["_forged", "_" + "a" * 24 + ".99999999999.AAAA", "id-123", ""],
)
def test_responses_to_requests_we_did_not_make_are_refused(
    idp: SAMLIdP, request_id: str
) -> None:
    client = client_for(make_core(idp))
    reply = acs(client, {"SAMLResponse": idp.response(request_id or None)})
    assert reply.status_code == 401
    assert reply.data == INVALID_CREDENTIALS


def test_a_response_after_the_login_timeout_is_refused(idp: SAMLIdP) -> None:
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
        auth_providers="saml",
        auth_provider_env=env_for(idp, AUTH_SAML_LOGIN_TIMEOUT="2m"),
        clock=clock,
    )
    client = client_for(core)
    late = through_idp(start(client))
    in_time = through_idp(start(client))
    clock.advance(119)
    assert acs(client, in_time).status_code == 200
    clock.advance(2)  # the first request is 121 s old now: its ID has expired
    reply = acs(client, late)
    assert reply.status_code == 401
    assert reply.data == INVALID_CREDENTIALS


def test_response_for_another_provider_request_is_refused(idp: SAMLIdP) -> None:
    # A request ID made with another SECRET (another deployment) is not ours.
    other = TokenGuard(
        secret=SECRET[::-1],
        users=MemoryUserStore(),
        sessions=MemorySessionStore(),
        public_url=PUBLIC,
        auth_providers="saml",
        auth_provider_env=env_for(idp),
    )
    location = start(client_for(other))
    client = client_for(make_core(idp))
    reply = acs(client, {"SAMLResponse": idp.response(idp.request_id(location))})
    assert reply.status_code == 401


def test_logins_are_audited_with_the_provider(idp: SAMLIdP) -> None:
    from tokenguard.stores.audit import MemoryAuditStore

    users = MemoryUserStore()
    core = make_core(idp, users)
    store = MemoryAuditStore()
    core.audit.store = store
    client = client_for(core)
    fields = through_idp(start(client))
    address = {"REMOTE_ADDR": "198.51.100.7"}
    assert client.post("/auth/login/saml/acs", data=fields, environ_base=address).status_code == 200
    assert client.post("/auth/login/saml/acs", data=fields, environ_base=address).status_code == 401
    user = users.get_by_email("saml.user@example.com")
    assert user is not None
    ok, refused = reversed(store.recent())
    assert (ok.event, ok.outcome, ok.user_id, ok.provider, ok.ip, ok.reason) == (
        "login", "success", user.id, "saml", "198.51.100.7", None,
    )
    assert (refused.event, refused.outcome, refused.provider, refused.reason) == (
        "login", "failure", "saml", "INVALID_CREDENTIALS",
    )
    assert all(fields["SAMLResponse"][:40] not in e.to_json() for e in store.recent())


# -- accounts -------------------------------------------------------------------------------


def test_registration_off_refuses_unknown_users(idp: SAMLIdP) -> None:
    users = MemoryUserStore()
    client = client_for(make_core(idp, users, AUTH_SAML_ALLOW_PUBLIC_REGISTRATION="false"))
    reply = acs(client, through_idp(start(client)))
    assert reply.status_code == 401
    assert reply.data == INVALID_CREDENTIALS
    assert users.get_by_email("saml.user@example.com") is None


def test_registration_gives_the_default_role(idp: SAMLIdP) -> None:
    users = MemoryUserStore()
    role = "5f8e2b1a-0000-4000-8000-000000000001"
    client = client_for(make_core(idp, users, AUTH_SAML_DEFAULT_ROLE_ID=role))
    assert acs(client, through_idp(start(client))).status_code == 200
    user = users.get_by_email("saml.user@example.com")
    assert user is not None and user.role == role


def test_role_mapping_from_the_groups_attribute(idp: SAMLIdP) -> None:
    users = MemoryUserStore()
    admins, staff = "aaaaaaaa-0000-4000-8000-000000000001", "bbbbbbbb-0000-4000-8000-000000000002"
    idp.user["memberOf"] = ["staff", "admins"]
    mapping = json.dumps({"admins": admins, "staff": staff})
    client = client_for(
        make_core(idp, users, AUTH_SAML_ROLE_MAPPING=mapping, AUTH_SAML_GROUP_CLAIM_NAME="memberOf")
    )
    assert acs(client, through_idp(start(client))).status_code == 200
    user = users.get_by_email("saml.user@example.com")
    assert user is not None and user.role == admins  # the first mapping entry that matches
    idp.user["memberOf"] = ["staff"]
    assert acs(client, through_idp(start(client))).status_code == 200
    user = users.get_by_email("saml.user@example.com")
    assert user is not None and user.role == staff  # re-applied at each login


def test_known_user_is_found_by_external_identifier(idp: SAMLIdP) -> None:
    users = MemoryUserStore()
    known = make_user(
        email="old.address@example.com",
        provider="saml",
        external_identifier="saml-user-1",
        password_hash=None,
    )
    users.create(known)
    client = client_for(make_core(idp, users, AUTH_SAML_ALLOW_PUBLIC_REGISTRATION="false"))
    reply = acs(client, through_idp(start(client)))
    assert reply.status_code == 200
    token = json.loads(reply.data)["data"]["access_token"]
    assert client.get("/whoami", headers={"authorization": f"Bearer {token}"}).status_code == 200
    assert users.get_by_email("saml.user@example.com") is None  # matched, not registered


def test_user_of_another_provider_is_refused(idp: SAMLIdP) -> None:
    users = MemoryUserStore()
    users.create(make_user(provider="default", external_identifier="saml-user-1"))
    client = client_for(make_core(idp, users))
    assert acs(client, through_idp(start(client))).status_code == 401


def test_custom_identifier_and_email_keys(idp: SAMLIdP) -> None:
    users = MemoryUserStore()
    # The IdP sends "uid" and "mail" under their OIDs (urn:oasis:names:tc:SAML:2.0:attrname-
    # format:uri), as real IdPs do: the keys name attributes as they are sent.
    idp.user = {"uid": ["JDoe"], "mail": ["jdoe@example.com"]}
    client = client_for(
        make_core(
            idp,
            users,
            AUTH_SAML_IDENTIFIER_KEY="urn:oid:0.9.2342.19200300.100.1.1",
            AUTH_SAML_EMAIL_KEY="urn:oid:0.9.2342.19200300.100.1.3",
        )
    )
    assert acs(client, through_idp(start(client))).status_code == 200
    user = users.get_by_email("jdoe@example.com")
    assert user is not None and user.external_identifier == "jdoe"


def test_persistent_name_id_is_the_identifier_without_the_attribute(idp: SAMLIdP) -> None:
    users = MemoryUserStore()
    del idp.user[CLAIMS + "nameidentifier"]
    client = client_for(make_core(idp, users))
    assert acs(client, through_idp(start(client))).status_code == 200
    user = users.get_by_email("saml.user@example.com")
    assert user is not None and user.external_identifier == "idp-user-1"


def test_transient_name_id_is_not_an_identifier(idp: SAMLIdP) -> None:
    del idp.user[CLAIMS + "nameidentifier"]
    idp.name_id_format = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
    client = client_for(make_core(idp))
    assert acs(client, through_idp(start(client))).status_code == 401


# -- logout ---------------------------------------------------------------------------------


def test_logout_ends_the_session_and_goes_to_the_idp(idp: SAMLIdP) -> None:
    core = make_core(idp)
    client = client_for(core)
    reply = acs(client, through_idp(start(client, "?redirect=/dashboard")))
    assert reply.status_code == 302
    session = client.get_cookie("directus_session_token")
    assert session is not None
    out = client.post(
        "/auth/login/saml/logout", data={"nameID": "idp-user-1"}, headers={"origin": PUBLIC}
    )
    assert out.status_code == 302
    location = out.headers["location"]
    assert location.startswith(idp.url + "/slo?SAMLRequest=")
    cleared = out.headers.getlist("set-cookie")
    assert len(cleared) == 1 and cleared[0].startswith("directus_session_token=;")
    assert client.get_cookie("directus_session_token") is None
    # The session is gone: the old cookie no longer refreshes.
    stale = client_for(core)
    stale.set_cookie("directus_session_token", session.value)
    refresh = stale.post("/auth/refresh", json={"mode": "session"}, headers={"origin": PUBLIC})
    assert refresh.status_code == 401
    assert refresh.data == INVALID_CREDENTIALS


def test_logout_without_a_session_or_name_id(idp: SAMLIdP) -> None:
    reply = client_for(make_core(idp)).post("/auth/login/saml/logout")
    assert reply.status_code == 204
    assert reply.headers.get("set-cookie") is None


def test_unknown_tail_and_wrong_methods_are_not_found(idp: SAMLIdP) -> None:
    client = client_for(make_core(idp))
    assert client.get("/auth/login/saml/acs").status_code == 404
    assert client.post("/auth/login/saml/metadata").status_code == 404
    assert client.get("/auth/login/saml/other").data == b"app /auth/login/saml/other user=None"


# -- fuzzing --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fuzz_client(idp: SAMLIdP) -> Client:
    return client_for(make_core(idp))


@settings(max_examples=60, deadline=None)
@given(
    response=st.one_of(
        st.text(max_size=300),
        st.binary(max_size=600).map(lambda b: base64.b64encode(b).decode()),
        st.sampled_from(["<x/>", "<samlp:Response/>", "<?xml version='1.0'?><!DOCTYPE a>"])
        .map(lambda x: base64.b64encode(x.encode()).decode()),
        st.integers(min_value=200_000, max_value=400_000).map(lambda n: "A" * n),
    ),
    relay=st.one_of(st.none(), st.text(max_size=40), st.just("/ok")),
)
def test_fuzzed_saml_response_never_errors(
    fuzz_client: Client, response: str, relay: str | None
) -> None:
    fields = {"SAMLResponse": response}
    if relay is not None:
        fields["RelayState"] = relay
    reply = fuzz_client.post("/auth/login/saml/acs", data=fields)
    assert reply.status_code in (302, 400, 401), reply.data
    if reply.status_code == 302:
        assert reply.headers["location"].endswith("?reason=INVALID_CREDENTIALS")
    elif reply.status_code == 401:
        assert reply.data == INVALID_CREDENTIALS


@pytest.fixture(scope="module")
def real_response(idp: SAMLIdP, fuzz_client: Client) -> tuple[str, list[int]]:
    """A genuine signed response to a real request (never posted as is), and a counter of
    the mutants accepted."""
    location = start(fuzz_client)
    return idp.xml(idp.request_id(location)), []


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_mutated_genuine_responses_are_refused_or_accepted_once(
    fuzz_client: Client, real_response: tuple[str, list[int]], data: st.DataObject
) -> None:
    xml, accepted = real_response
    at = data.draw(st.integers(min_value=0, max_value=len(xml) - 1))
    span = data.draw(st.integers(min_value=1, max_value=8))
    patch = data.draw(st.text(alphabet="<>/=\"' abcXYZ019&;:", min_size=0, max_size=8))
    mutant = xml[:at] + patch + xml[at + span :]
    if mutant == xml:
        return
    encoded = base64.b64encode(mutant.encode()).decode()
    reply = fuzz_client.post("/auth/login/saml/acs", data={"SAMLResponse": encoded})
    assert reply.status_code in (200, 401), reply.data
    if reply.status_code == 200:
        # Only a change outside what is signed (whitespace, the unsigned envelope) can
        # pass, and then the request and the assertion are used up.
        accepted.append(at)
    assert len(accepted) <= 1


# -- our own key: signed AuthnRequests, encrypted assertions ------------------------------


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SAMLIdP, dict[str, str], str]]:
    """An IdP that knows our certificate, and the settings naming our key files."""
    directory = tmp_path_factory.mktemp("saml-sp-keys")
    key_file, cert_file, cert = make_key_pair(directory, "sp")
    with running_idp(directory, SP_ENTITY, ACS, sp_cert=cert) as provider:
        files = {"AUTH_SAML_SP_KEY_FILE": str(key_file), "AUTH_SAML_SP_CERT_FILE": str(cert_file)}
        yield provider, files, cert


def test_authn_requests_are_signed_with_our_key(
    keyed: tuple[SAMLIdP, dict[str, str], str],
) -> None:
    from saml2.sigver import verify_redirect_signature

    provider, files, cert = keyed
    provider.user = {k: list(v) for k, v in USER.items()}
    core = make_core(provider, **files)
    location = start(client_for(core), "?redirect=/next")
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert query["SigAlg"] == "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    backend = provider.server.sec.sec_backend
    assert verify_redirect_signature(query, backend, cert=cert) is True
    assert verify_redirect_signature({**query, "RelayState": "/evil"}, backend, cert=cert) is False


def test_encrypted_assertions_are_decrypted_with_our_key(
    keyed: tuple[SAMLIdP, dict[str, str], str],
) -> None:
    provider, files, _ = keyed
    provider.user = {k: list(v) for k, v in USER.items()}
    users = MemoryUserStore()
    client = client_for(make_core(provider, users, **files))
    fields = login_fields(client, provider, encrypt=True)
    assert "EncryptedAssertion" in base64.b64decode(fields["SAMLResponse"]).decode()
    reply = acs(client, fields)
    assert reply.status_code == 200, reply.data
    assert users.get_by_email("saml.user@example.com") is not None
    # Without our key, the same kind of response cannot be read: refused.
    keyless = client_for(make_core(provider))
    reply = acs(keyless, login_fields(keyless, provider, encrypt=True))
    assert reply.status_code == 401


def test_key_settings_are_checked_at_start_up(
    keyed: tuple[SAMLIdP, dict[str, str], str], tmp_path: Path
) -> None:
    provider, files, _ = keyed
    with pytest.raises(ConfigError, match="go together"):
        make_core(provider, AUTH_SAML_SP_KEY_FILE=files["AUTH_SAML_SP_KEY_FILE"])
    with pytest.raises(ConfigError, match="AUTH_SAML_SP_KEY_FILE cannot be read"):
        make_core(provider, **{**files, "AUTH_SAML_SP_KEY_FILE": str(tmp_path / "missing")})
    (tmp_path / "junk.pem").write_text("not a key")
    with pytest.raises(ConfigError, match="AUTH_SAML_SP_CERT_FILE is not a PEM file"):
        make_core(provider, **{**files, "AUTH_SAML_SP_CERT_FILE": str(tmp_path / "junk.pem")})


# -- the OpenAPI document -------------------------------------------------------------------


def test_saml_routes_are_documented_and_served_as_documented(idp: SAMLIdP) -> None:
    from openapi_spec_validator import validate

    core = make_core(idp)
    client = client_for(core)
    document = json.loads(client.get("/server/specs/oas").data)
    validate(document)
    saml_paths = {p: item for p, item in document["paths"].items() if "/login/saml" in p}
    assert {p: set(item) for p, item in saml_paths.items()} == {
        "/auth/login/saml": {"get", "head"},
        "/auth/login/saml/metadata": {"get", "head"},
        "/auth/login/saml/acs": {"post"},
        "/auth/login/saml/logout": {"post"},
    }
    for path, item in saml_paths.items():
        for method in ("GET", "HEAD", "POST", "PUT", "DELETE"):
            reply = client.open(path, method=method)
            where = f"{method} {path} -> {reply.status_code}"
            if method.lower() in item:
                assert str(reply.status_code) in item[method.lower()]["responses"], where
            else:
                assert reply.status_code == 404, where
