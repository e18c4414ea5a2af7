"""Schemathesis against both example apps, served for real, over the document they publish.

Each example runs under its own server (uvicorn, Werkzeug) on 127.0.0.1 and a free port with
every route tokenguard can serve switched on: password reset and two-factor, an OpenID
provider (the test's own, on 127.0.0.1), both GraphQL endpoints and a JWKS. The document is
fetched from the server itself (``GET /server/specs/oas``), and every operation in it gets a
bounded number of generated requests. Every answer must be below 500 and conform to the
document: a documented status, content type and body schema.

The login stall is set to 0 and the per-account login limit and lockout are off, so that the
run is quick and no answer depends on how many requests came before; 429 is documented anyway.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.helpers import ldap_server
from tests.helpers.oidc_provider import CLIENT_ID, CLIENT_SECRET, running_provider
from tests.helpers.servers import Server, free_port, serve
from tests.helpers.tokens import SECRET
from tests.http.test_openapi import EVERY_KIND_OF_PATH

pytestmark = pytest.mark.e2e

COMMANDS = {
    "starlette-uvicorn": [sys.executable, "-m", "examples.starlette_app.app"],
    "flask-werkzeug": [sys.executable, "-m", "examples.flask_app.app"],
    "django-uvicorn": [sys.executable, "-m", "examples.django_app.app"],
}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
MAX_EXAMPLES = 25


def _key_ring(directory: Path) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path = directory / "signing.pem"
    path.write_bytes(pem)
    return json.dumps({"active": "k1", "keys": [{"kid": "k1", "file": str(path)}]})


@pytest.fixture(params=sorted(COMMANDS), scope="module")
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp(request.param)
    port = free_port()
    with running_provider() as idp, ldap_server.LdapServer(directory / "slapd") as directory_server:
        env = {
            "SECRET": SECRET,
            "ADMIN_EMAIL": "admin@example.com",
            "ADMIN_PASSWORD": "correct horse battery staple",
            "PUBLIC_URL": f"http://127.0.0.1:{port}",
            "LOGIN_STALL_TIME": "0",
            "TOKENGUARD_LOGIN_ACCOUNT_POINTS": "0",
            "AUTH_LOGIN_ATTEMPTS": "0",
            "EMAIL_TRANSPORT": "console",
            "TOKENGUARD_GRAPHQL_ENABLED": "true",
            "TOKENGUARD_GRAPHQL_AUTH_SERVICE_PATH": "/service/auth",
            "TOKENGUARD_JWT_KEYS": _key_ring(directory),
            "AUTH_PROVIDERS": "idp,other",
            # An LDAP provider over a real slapd: its logins are 200s and 401s.
            "AUTH_OTHER_DRIVER": "ldap",
            "AUTH_OTHER_CLIENT_URL": directory_server.url,
            "AUTH_OTHER_BIND_DN": ldap_server.BIND_DN,
            "AUTH_OTHER_BIND_PASSWORD": ldap_server.BIND_PASSWORD,
            "AUTH_OTHER_USER_DN": ldap_server.USER_DN,
            "AUTH_OTHER_USER_ATTRIBUTE": "uid",
            "AUTH_IDP_DRIVER": "openid",
            "AUTH_IDP_CLIENT_ID": CLIENT_ID,
            "AUTH_IDP_CLIENT_SECRET": CLIENT_SECRET,
            "AUTH_IDP_ISSUER_URL": idp.url + "/.well-known/openid-configuration",
        }
        with serve(COMMANDS[request.param], env, directory, port=port) as srv:
            yield srv


def _document(server: Server) -> dict[str, Any]:
    reply = httpx.get(server.url + "/server/specs/oas", timeout=10)
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/json; charset=utf-8"
    document: dict[str, Any] = reply.json()
    return document


def test_the_served_document_lists_every_kind_of_route(server: Server) -> None:
    paths = set(_document(server)["paths"])
    assert paths == EVERY_KIND_OF_PATH


def test_every_operation_conforms_to_the_document(server: Server) -> None:
    schema = schemathesis.openapi.from_dict(_document(server))
    failures: list[str] = []
    operations = 0
    calls = 0
    with httpx.Client(base_url=server.url, timeout=10) as probe:
        for result, mode in (
            (r, m) for r in schema.get_all_operations() for m in GenerationMode
        ):
            operation = result.ok()
            operations += 1

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=MAX_EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def run(case: Any) -> None:
                nonlocal calls
                calls += 1
                case.call_and_validate(base_url=server.url, checks=CHECKS, timeout=10)

            try:
                run()
            except Unsatisfiable:
                # Negative mode and an operation with nothing to get wrong (no parameter,
                # no body): there is no invalid request to make.
                assert mode is GenerationMode.NEGATIVE, operation.label
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as failure:  # every operation runs; all failures are reported
                failures.append(f"{operation.label} ({mode.value}): {failure}")
        # The server is still healthy after the run.
        assert probe.get("/auth").status_code == 200
    assert operations >= 40 and calls >= 500
    assert failures == [], "\n\n".join(failures) + "\n\nserver log:\n" + _log_tail(server)


def _cookie(reply: Any, name: str) -> str:
    for header in reply.headers.get("set-cookie", []):
        cookie_name, _, rest = header.partition("=")
        if cookie_name == name:
            return str(rest.partition(";")[0])
    raise AssertionError(f"no {name} cookie in {reply.headers}")


def _log_tail(server: Server) -> str:
    return "\n".join(server.output().splitlines()[-30:])


def test_successful_flows_conform_to_the_document(server: Server) -> None:
    """Generated requests rarely sign anyone in; these do, and their answers (tokens, cookies,
    redirects, secrets) must match the document too."""
    schema = schemathesis.openapi.from_dict(_document(server))
    credentials = {"email": "admin@example.com", "password": "correct horse battery staple"}

    def call(path: str, method: str, **kwargs: Any) -> Any:
        if "body" in kwargs:
            kwargs.setdefault("media_type", "application/json")
        case = schema[path][method].Case(**kwargs)
        return case.call_and_validate(base_url=server.url, checks=CHECKS, timeout=10)

    tokens = {}
    for mode in ("json", "cookie", "session"):
        reply = call("/auth/login", "POST", body={**credentials, "mode": mode})
        assert reply.status_code == 200, reply.text
        tokens[mode] = reply
    data = tokens["json"].json()["data"]
    assert set(data) == {"expires", "refresh_token", "access_token"}
    refreshed = call("/auth/refresh", "POST", body={"refresh_token": data["refresh_token"]})
    assert refreshed.status_code == 200
    new_refresh = refreshed.json()["data"]["refresh_token"]
    cookie_refresh = _cookie(tokens["cookie"], "directus_refresh_token")
    assert _cookie(tokens["session"], "directus_session_token")
    again = call(
        "/auth/refresh", "POST", body={"mode": "cookie"},
        cookies={"directus_refresh_token": cookie_refresh},
    )
    assert again.status_code == 200 and "access_token" in again.json()["data"]
    bearer = {"Authorization": f"Bearer {data['access_token']}"}
    secret = call(
        "/users/me/tfa/generate", "POST", body={"password": credentials["password"]},
        headers=bearer,
    )
    assert secret.status_code == 200 and set(secret.json()["data"]) == {"secret", "otpauth_url"}
    wrong = call("/users/me/tfa/enable", "POST", body={"secret": "A" * 32, "otp": "000000"},
                 headers=bearer)
    assert wrong.status_code in (400, 401, 403)
    assert call("/auth/logout", "POST", body={"refresh_token": new_refresh}).status_code == 204
    assert call("/auth/password/request", "POST", body={"email": "nobody@example.com"}
                ).status_code == 204
    assert call("/auth", "GET").json()["data"][0]["name"] == "idp"
    assert call("/auth/jwks.json", "GET").json()["keys"][0]["kid"] == "k1"
    assert call("/server/specs/oas", "GET").json()["openapi"] == "3.1.0"
    start = call("/auth/login/idp", "GET", query={"redirect": server.url + "/"})
    assert start.status_code == 302 and start.headers["location"][0].startswith("http://127.0.0.1")
    login = 'mutation { auth_login(email: "admin@example.com", ' \
        'password: "correct horse battery staple") { access_token expires } }'
    graphql = call("/graphql/system", "POST", body={"query": login})
    assert graphql.status_code == 200 and graphql.json()["data"]["auth_login"]["access_token"]
