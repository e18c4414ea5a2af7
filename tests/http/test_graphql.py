"""GraphQL authentication over HTTP through both shells: Directus's system mutations (spec §15)
and the other system's ``Auth`` service (spec §17)."""

# GraphQL documents are full of braces: %-formatting reads better than doubled braces.
# ruff: noqa: UP031

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from tests.helpers.auth import EMAIL, FAST, PASSWORD, SECRET, USER_ID, make_user
from tokenguard import TokenGuard, TokenGuardMiddleware
from tokenguard.shells.wsgi import TokenGuardWSGI
from tokenguard.stores.memory import MemorySessionStore, MemoryUserStore

SYSTEM = "/graphql/system"
SERVICE = "/service/auth"
INVALID_CREDENTIALS = {"code": "INVALID_CREDENTIALS"}
LOGIN = (
    'mutation { auth_login(email: "%s", password: "%s"%s) { access_token expires refresh_token } }'
)


class Outbox:
    def __init__(self) -> None:
        self.mails: list[Any] = []

    def send(self, mail: Any) -> None:
        self.mails.append(mail)


async def app_asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"app"})


def app_wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [])
    return [b"app"]


class World:
    def __init__(self, shell: str) -> None:
        self.users = MemoryUserStore()
        self.users.create(make_user(first_name="Ada", last_name="Lovelace"))
        self.sessions = MemorySessionStore()
        self.outbox = Outbox()
        self.core = TokenGuard(
            secret=SECRET,
            users=self.users,
            sessions=self.sessions,
            flavour="async" if shell == "asgi" else "sync",
            passwords=FAST,
            mailer=self.outbox,
            login_stall_ms=0,
            graphql_enabled=True,
            graphql_auth_service_path=SERVICE,
            public_url="https://app.example",
        )
        if shell == "asgi":
            self.client: Any = TestClient(TokenGuardMiddleware(app_asgi, guard=self.core))
        else:
            transport = httpx.WSGITransport(app=TokenGuardWSGI(app_wsgi, guard=self.core))
            self.client = httpx.Client(transport=transport, base_url="http://testserver")

    def gql(self, query: str, path: str = SYSTEM, **kwargs: Any) -> httpx.Response:
        body = {
            "query": query,
            **{k: v for k, v in kwargs.items() if k in ("variables", "operationName")},
        }
        extra = {k: v for k, v in kwargs.items() if k not in ("variables", "operationName")}
        return self.client.post(path, json=body, **extra)  # type: ignore[no-any-return]

    def login(self, mode: str = "") -> httpx.Response:
        return self.gql(LOGIN % (EMAIL, PASSWORD, f", mode: {mode}" if mode else ""))


@pytest.fixture(params=["asgi", "wsgi"])
def world(request: pytest.FixtureRequest) -> Iterator[World]:
    w = World(request.param)
    yield w
    w.client.close()


def error_of(reply: httpx.Response, field: str) -> dict[str, Any]:
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert list(body) == ["data", "errors"] and body["data"] == {field: None}
    [error] = body["errors"]
    assert list(error) == ["message", "extensions", "locations", "path"]
    assert next(iter(error["extensions"])) == "code" and error["path"] == [field]
    return error  # type: ignore[no-any-return]


# -- auth_login ----------------------------------------------------------------------------------


def test_login_json_is_the_default_and_expires_is_a_string(world: World) -> None:
    reply = world.login()
    assert reply.status_code == 200 and "set-cookie" not in reply.headers
    data = reply.json()["data"]["auth_login"]
    assert data["expires"] == "900000"
    assert len(data["refresh_token"]) == 64
    claims = jwt.decode(data["access_token"], SECRET, algorithms=["HS256"], issuer="directus")
    assert claims["id"] == USER_ID


def test_login_cookie_and_session_modes(world: World) -> None:
    reply = world.login("cookie")
    data = reply.json()["data"]["auth_login"]
    assert data["refresh_token"] is None and data["access_token"] and data["expires"] == "900000"
    assert reply.headers["set-cookie"].startswith("directus_refresh_token=")
    assert "HttpOnly" in reply.headers["set-cookie"]
    reply = world.login("session")
    assert reply.json()["data"]["auth_login"] == {
        "access_token": None,
        "expires": "86400000",
        "refresh_token": None,
    }
    assert reply.headers["set-cookie"].startswith("directus_session_token=")


@pytest.mark.parametrize(
    ("email", "password"),
    [(EMAIL, "wrong"), ("nobody@example.com", PASSWORD), ("invalidEmail", "x")],
)
def test_login_failures_are_invalid_credentials_with_http_200(
    world: World, email: str, password: str
) -> None:
    error = error_of(world.gql(LOGIN % (email, password, "")), "auth_login")
    assert error == {
        "message": "Invalid user credentials.",
        "extensions": INVALID_CREDENTIALS,
        "locations": [{"line": 1, "column": 12}],
        "path": ["auth_login"],
    }


def test_missing_argument_is_a_400_validation_error(world: World) -> None:
    reply = world.gql('mutation { auth_login(email: "a@b.c") { expires } }')
    assert reply.status_code == 400
    [error] = reply.json()["errors"]
    assert error["message"] == "GraphQL validation error."
    assert list(error["extensions"]) == ["errors", "code"]
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION"
    assert "password" in error["extensions"]["errors"][0]["message"]


def test_login_with_variables_and_an_operation_name(world: World) -> None:
    query = (
        "mutation L($e: String!, $p: String!) { auth_login(email: $e, password: $p) { expires } }"
        ' mutation Other { auth_logout(refresh_token: "x") }'
    )
    reply = world.gql(query, variables={"e": EMAIL, "p": PASSWORD}, operationName="L")
    assert reply.json() == {"data": {"auth_login": {"expires": "900000"}}}


# -- auth_refresh / auth_logout --------------------------------------------------------------------


def test_refresh_json_rotates(world: World) -> None:
    first = world.login().json()["data"]["auth_login"]["refresh_token"]
    q = 'mutation { auth_refresh(refresh_token: "%s") { access_token expires refresh_token } }'
    data = world.gql(q % first).json()["data"]["auth_refresh"]
    assert data["expires"] == "900000" and data["refresh_token"] not in (None, first)
    error = error_of(world.gql(q % first), "auth_refresh")
    assert error["extensions"] == INVALID_CREDENTIALS


def test_refresh_cookie_and_session_modes(world: World) -> None:
    world.login("cookie")  # the client keeps the cookie
    reply = world.gql(
        "mutation { auth_refresh(mode: cookie) { access_token expires refresh_token } }"
    )
    data = reply.json()["data"]["auth_refresh"]
    assert data["access_token"] and data["refresh_token"] is None
    assert reply.headers["set-cookie"].startswith("directus_refresh_token=")
    world.client.cookies.clear()
    world.login("session")
    reply = world.gql(
        "mutation { auth_refresh(mode: session) { access_token expires refresh_token } }"
    )
    assert reply.json()["data"]["auth_refresh"] == {
        "access_token": None,
        "expires": "86400000",
        "refresh_token": None,
    }


@pytest.mark.parametrize("field", ["auth_refresh", "auth_logout"])
def test_missing_refresh_token_is_invalid_payload(world: World, field: str) -> None:
    selection = " { expires }" if field == "auth_refresh" else ""
    error = error_of(world.gql(f"mutation {{ {field}{selection} }}"), field)
    reason = "The refresh token is required in either the payload or cookie"
    assert error["message"] == f"Invalid payload. {reason}."
    assert error["extensions"] == {"code": "INVALID_PAYLOAD", "reason": reason}


def test_logout_revokes_and_clears_cookies(world: World) -> None:
    token = world.login().json()["data"]["auth_login"]["refresh_token"]
    reply = world.gql('mutation { auth_logout(refresh_token: "%s") }' % token)
    assert reply.json() == {"data": {"auth_logout": True}}
    q = 'mutation { auth_refresh(refresh_token: "%s") { expires } }'
    assert error_of(world.gql(q % token), "auth_refresh")["extensions"] == INVALID_CREDENTIALS
    # Logging out with a dead token is still true (Directus answers 204 over REST).
    assert world.gql('mutation { auth_logout(refresh_token: "%s") }' % token).json() == {
        "data": {"auth_logout": True}
    }
    world.login("cookie")
    reply = world.gql("mutation { auth_logout(mode: cookie) }")
    assert reply.json() == {"data": {"auth_logout": True}}
    assert reply.headers["set-cookie"].startswith("directus_refresh_token=;")
    assert "Max-Age=0" in reply.headers["set-cookie"]


# -- password reset --------------------------------------------------------------------------------


def test_password_request_and_reset(world: World) -> None:
    reply = world.gql('mutation { auth_password_request(email: "nobody@example.com") }')
    assert reply.json() == {"data": {"auth_password_request": True}} and not world.outbox.mails
    reply = world.gql('mutation { auth_password_request(email: "%s") }' % EMAIL)
    assert reply.json() == {"data": {"auth_password_request": True}}
    [mail] = world.outbox.mails
    token = re.search(r"token=([A-Za-z0-9._\-]+)", mail.text).group(1)  # type: ignore[union-attr]
    q = 'mutation { auth_password_reset(token: "%s", password: "a brand new passphrase") }'
    assert world.gql(q % token).json() == {"data": {"auth_password_reset": True}}
    assert error_of(world.gql(LOGIN % (EMAIL, PASSWORD, "")), "auth_login")
    assert world.gql(LOGIN % (EMAIL, "a brand new passphrase", "")).json()["data"]["auth_login"]
    error = error_of(world.gql(q % token), "auth_password_reset")  # a token works once
    assert error["extensions"]["code"] == "FORBIDDEN"


def test_password_request_with_a_disallowed_url_is_invalid_payload(world: World) -> None:
    q = 'mutation { auth_password_request(email: "%s", reset_url: "https://evil.example/r") }'
    error = error_of(world.gql(q % EMAIL), "auth_password_request")
    assert error["extensions"]["code"] == "INVALID_PAYLOAD"


# -- transport rules --------------------------------------------------------------------------------


def test_mutation_over_get_is_405_and_query_over_get_works(world: World) -> None:
    reply = world.client.get(SYSTEM, params={"query": "mutation { auth_logout }"})
    assert reply.status_code == 405
    assert reply.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"
    reply = world.client.get(SYSTEM, params={"query": "{ server_ping }"})
    assert reply.json() == {"data": {"server_ping": "pong"}}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "INVALID_PAYLOAD"),
        ({"query": ""}, "INVALID_PAYLOAD"),
        ({"query": 5}, "INVALID_PAYLOAD"),
        ({"query": "mutation {"}, "INVALID_PAYLOAD"),
        ({"query": "{ server_ping }", "variables": [1]}, "INVALID_PAYLOAD"),
        ({"query": "{ nope }"}, "GRAPHQL_VALIDATION"),
    ],
)
def test_bad_requests_are_400(world: World, body: dict[str, Any], code: str) -> None:
    reply = world.client.post(SYSTEM, json=body)
    assert reply.status_code == 400
    assert reply.json()["errors"][0]["extensions"]["code"] == code


def test_one_authentication_field_per_request(world: World) -> None:
    for query in (
        LOGIN.replace("mutation {", 'mutation { a: auth_logout(refresh_token: "x")')
        % (EMAIL, PASSWORD, ""),
        'mutation { ...F ...G } fragment F on Mutation { auth_logout(refresh_token: "x") }'
        ' fragment G on Mutation { b: auth_logout(refresh_token: "y") }',
        'mutation { ... on Mutation { a: auth_password_request(email: "x@y.z") }'
        ' b: auth_password_request(email: "x@y.z") }',
    ):
        reply = world.gql(query)
        assert reply.status_code == 400, reply.text
        assert reply.json()["errors"][0]["extensions"]["errors"] == [
            {"message": "Only one authentication operation is allowed per request."}
        ]


def test_a_bad_bearer_fails_graphql_too(world: World) -> None:
    reply = world.gql("{ server_ping }", headers={"Authorization": "Bearer garbage"})
    assert reply.status_code == 401
    assert reply.json()["errors"][0]["extensions"]["code"] == "INVALID_CREDENTIALS"


def test_other_paths_still_reach_the_app(world: World) -> None:
    assert world.client.get("/graphql").text == "app"
    assert world.client.options(SYSTEM).text == "app"


# -- the Auth service ----------------------------------------------------------------------------

CA_LOGIN = '{ login(username: "%s", password: "%s") { jwt refresh user { id fname lname email } } }'


def test_auth_service_login_and_refresh(world: World) -> None:
    reply = world.gql(CA_LOGIN % (EMAIL, PASSWORD), SERVICE)
    body = reply.json()
    assert reply.status_code == 200 and list(body) == ["ok", "data"] and body["ok"] is True
    login = body["data"]["login"]
    assert login["user"] == {"id": USER_ID, "fname": "Ada", "lname": "Lovelace", "email": EMAIL}
    refresh = login["refresh"]
    reply = world.gql('{ refresh(token: "%s") { jwt } }' % refresh, SERVICE)
    new = reply.json()["data"]["refresh"]["jwt"]
    assert jwt.decode(new, SECRET, algorithms=["HS256"], issuer="directus")["id"] == USER_ID
    # Not rotated: the same refresh token works again.
    reply = world.gql(
        "query R($t: String) { refresh(token: $t) { jwt } }", SERVICE, variables={"t": refresh}
    )
    assert reply.json()["ok"] is True
    # Never from the URL, where access logs keep it.
    reply = world.gql("{ refresh { jwt } }", f"{SERVICE}?jwt={refresh}")
    assert reply.status_code == 401 and reply.json()["ok"] is False
    # An access token as the Bearer: it "refreshes" to itself (nothing is extended).
    reply = world.gql("{ refresh { jwt } }", SERVICE, headers={"Authorization": f"Bearer {new}"})
    assert reply.json() == {"ok": True, "data": {"refresh": {"jwt": new}}}


def test_auth_service_failures(world: World) -> None:
    reply = world.gql(CA_LOGIN % (EMAIL, "wrong"), SERVICE)
    assert reply.status_code == 200
    assert reply.json() == {
        "ok": True,
        "data": {"login": {"jwt": None, "refresh": None, "user": None}},
    }
    reply = world.gql("{ refresh { jwt } }", SERVICE)
    assert reply.status_code == 401
    body = reply.json()
    assert body["ok"] is False and body["data"] == {"refresh": None}
    assert body["errors"][0]["extensions"] == INVALID_CREDENTIALS
    token = world.gql(CA_LOGIN % (EMAIL, PASSWORD), SERVICE).json()["data"]["login"]["refresh"]
    world.gql('mutation { auth_logout(refresh_token: "%s") }' % token)
    reply = world.gql('{ refresh(token: "%s") { jwt } }' % token, SERVICE)
    assert reply.status_code == 401


# -- properties ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def asgi_world() -> Iterator[World]:
    w = World("asgi")
    yield w
    w.client.close()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.one_of(
        st.text(max_size=200),
        st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
        st.sampled_from(
            ["mutation { auth_login", "{ __schema { types { name } } }", "query {", "{}"]
        ),
    ),
    st.sampled_from([SYSTEM, SERVICE]),
)
def test_any_query_text_gets_a_shaped_answer(asgi_world: World, text: str, path: str) -> None:
    reply = asgi_world.client.post(
        path, content=json.dumps({"query": text}), headers={"content-type": "application/json"}
    )
    assert reply.status_code in (200, 400, 401, 500) and reply.status_code != 503
    body = reply.json()
    assert "data" in body or "errors" in body
    for error in body.get("errors", []):
        assert isinstance(error["message"], str) and "Traceback" not in error["message"]
