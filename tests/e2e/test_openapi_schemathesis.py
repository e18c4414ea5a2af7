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

from tests.helpers.oidc_provider import CLIENT_ID, CLIENT_SECRET, running_provider
from tests.helpers.servers import Server, free_port, serve
from tests.helpers.tokens import SECRET

pytestmark = pytest.mark.e2e

COMMANDS = {
    "starlette-uvicorn": [sys.executable, "-m", "examples.starlette_app.app"],
    "flask-werkzeug": [sys.executable, "-m", "examples.flask_app.app"],
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
    with running_provider() as idp:
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
            "AUTH_PROVIDERS": "idp",
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
    assert paths == {
        "/auth",
        "/auth/login",
        "/auth/refresh",
        "/auth/logout",
        "/auth/password/request",
        "/auth/password/reset",
        "/users/me/tfa/generate",
        "/users/me/tfa/enable",
        "/users/me/tfa/disable",
        "/auth/login/idp",
        "/auth/login/idp/callback",
        "/auth/jwks.json",
        "/graphql/system",
        "/service/auth",
        "/server/specs/oas",
    }


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


def _log_tail(server: Server) -> str:
    return "\n".join(server.output().splitlines()[-30:])
