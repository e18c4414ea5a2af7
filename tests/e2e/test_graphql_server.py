"""GraphQL authentication end to end: plain HTTP requests against both examples (Starlette
under uvicorn, Flask under Werkzeug) with ``TOKENGUARD_GRAPHQL_ENABLED`` and the ``Auth``
service at ``/service/auth``; every mutation, every error shape, cookies as a client keeps
them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.servers import Server, serve
from tests.helpers.tokens import SECRET

pytestmark = pytest.mark.e2e

EMAIL = "gql-admin@example.com"
PASSWORD = "gql correct horse battery staple"
ENV = {
    "SECRET": SECRET,
    "ADMIN_EMAIL": EMAIL,
    "ADMIN_PASSWORD": PASSWORD,
    "LOGIN_STALL_TIME": "5",
    "TOKENGUARD_GRAPHQL_ENABLED": "true",
    "TOKENGUARD_GRAPHQL_AUTH_SERVICE_PATH": "/service/auth",
}
COMMANDS = {
    "starlette-uvicorn": [sys.executable, "-m", "examples.starlette_app.app"],
    "flask-werkzeug": [sys.executable, "-m", "examples.flask_app.app"],
}
TOKENS = "{ access_token expires refresh_token }"


@pytest.fixture(params=sorted(COMMANDS), scope="module")
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    with serve(COMMANDS[request.param], ENV, tmp_path_factory.mktemp(request.param)) as srv:
        yield srv


def gql(
    client: httpx.Client, query: str, path: str = "/graphql/system", **variables: Any
) -> httpx.Response:
    body: dict[str, Any] = {"query": query}
    if variables:
        body["variables"] = variables
    return client.post(path, json=body)


def login(client: httpx.Client, mode: str = "json", password: str = PASSWORD) -> httpx.Response:
    q = f"mutation L($e: String!, $p: String!) {{ auth_login(email: $e, password: $p, mode: {mode}) {TOKENS} }}"
    return gql(client, q, e=EMAIL, p=password)


def test_json_mode_round_trip(server: Server) -> None:
    with httpx.Client(base_url=server.url) as client:
        reply = login(client)
        assert reply.status_code == 200 and reply.headers["content-type"].startswith(
            "application/json"
        )
        data = reply.json()["data"]["auth_login"]
        assert data["expires"] == "900000" and len(data["refresh_token"]) == 64
        me = client.get("/users/me", headers={"Authorization": f"Bearer {data['access_token']}"})
        assert me.json()["data"]["email"] == EMAIL
        q = f"mutation R($t: String) {{ auth_refresh(refresh_token: $t) {TOKENS} }}"
        new = gql(client, q, t=data["refresh_token"]).json()["data"]["auth_refresh"]
        assert new["refresh_token"] != data["refresh_token"] and new["expires"] == "900000"
        again = gql(client, q, t=data["refresh_token"]).json()
        assert again["data"] == {"auth_refresh": None}
        assert again["errors"][0]["extensions"] == {"code": "INVALID_CREDENTIALS"}
        out = gql(
            client,
            "mutation O($t: String) { auth_logout(refresh_token: $t) }",
            t=new["refresh_token"],
        )
        assert out.json() == {"data": {"auth_logout": True}}
        assert gql(client, q, t=new["refresh_token"]).json()["data"] == {"auth_refresh": None}


def test_cookie_and_session_modes(server: Server) -> None:
    with httpx.Client(base_url=server.url) as client:
        reply = login(client, "cookie")
        assert reply.json()["data"]["auth_login"]["refresh_token"] is None
        assert "directus_refresh_token" in client.cookies
        reply = gql(client, f"mutation {{ auth_refresh(mode: cookie) {TOKENS} }}")
        assert reply.json()["data"]["auth_refresh"]["access_token"]
        reply = gql(client, "mutation { auth_logout(mode: cookie) }")
        assert reply.json() == {"data": {"auth_logout": True}}
        assert "directus_refresh_token" not in client.cookies
    with httpx.Client(base_url=server.url) as client:
        reply = login(client, "session")
        assert reply.json()["data"]["auth_login"] == {
            "access_token": None,
            "expires": "86400000",
            "refresh_token": None,
        }
        assert client.get("/users/me").json()["data"]["email"] == EMAIL  # the session cookie
        reply = gql(client, f"mutation {{ auth_refresh(mode: session) {TOKENS} }}")
        assert reply.json()["data"]["auth_refresh"]["expires"] == "86400000"
        assert gql(client, "mutation { auth_logout(mode: session) }").json() == {
            "data": {"auth_logout": True}
        }
        assert client.get("/users/me").status_code == 401


def test_errors(server: Server) -> None:
    with httpx.Client(base_url=server.url) as client:
        reply = login(client, password="wrong")
        assert reply.status_code == 200
        assert reply.json() == {
            "data": {"auth_login": None},
            "errors": [
                {
                    "message": "Invalid user credentials.",
                    "extensions": {"code": "INVALID_CREDENTIALS"},
                    "locations": [{"line": 1, "column": 40}],
                    "path": ["auth_login"],
                }
            ],
        }
        reply = gql(client, 'mutation { auth_login(email: "x@y.z") { expires } }')
        assert reply.status_code == 400
        assert reply.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION"
        reply = client.get("/graphql/system", params={"query": "mutation { auth_logout }"})
        assert reply.status_code == 405
        reply = gql(client, "mutation { auth_logout }")
        assert reply.json()["errors"][0]["extensions"]["code"] == "INVALID_PAYLOAD"
        reply = gql(client, 'mutation { auth_password_request(email: "nobody@example.com") }')
        assert reply.json() == {"data": {"auth_password_request": True}}
        reply = gql(client, 'mutation { auth_password_reset(token: "nope", password: "x") }')
        assert reply.json()["data"] == {"auth_password_reset": None}
        assert reply.json()["errors"][0]["extensions"]["code"] in ("INVALID_TOKEN", "FORBIDDEN")
    assert PASSWORD not in server.output()


def test_auth_service(server: Server) -> None:
    with httpx.Client(base_url=server.url) as client:
        q = "query L($u: String, $p: String) { login(username: $u, password: $p) { jwt refresh user { email } } }"
        reply = gql(client, q, "/service/auth", u=EMAIL, p=PASSWORD)
        body = reply.json()
        assert body["ok"] is True and body["data"]["login"]["user"] == {"email": EMAIL}
        refresh = body["data"]["login"]["refresh"]
        reply = gql(
            client, "query R($t: String) { refresh(token: $t) { jwt } }", "/service/auth", t=refresh
        )
        jwt = reply.json()["data"]["refresh"]["jwt"]
        assert (
            client.get("/users/me", headers={"Authorization": f"Bearer {jwt}"}).status_code == 200
        )
        reply = gql(client, q, "/service/auth", u=EMAIL, p="wrong")
        assert reply.json() == {
            "ok": True,
            "data": {"login": {"jwt": None, "refresh": None, "user": None}},
        }
        reply = gql(client, "{ refresh { jwt } }", "/service/auth")
        assert reply.status_code == 401 and reply.json()["ok"] is False
    assert refresh not in server.output()


# -- the official SDK's graphql() composable ------------------------------------------------------

SDK_DIR = Path(__file__).resolve().parent / "sdk"
SDK_STEPS = {
    "login_wrong_password": {
        "pass": True,
        "ok": False,
        "code": "INVALID_CREDENTIALS",
        "data": {"auth_login": None},
    },
    "login": {"pass": True, "ok": True, "expires": "900000", "refresh_token": True},
    "authenticated_query": {"pass": True, "ok": True},
    "refresh": {"pass": True, "ok": True, "expires": "900000", "rotated": True},
    "refresh_with_rotated_token": {"pass": True, "ok": False, "code": "INVALID_CREDENTIALS"},
    "logout": {"pass": True, "ok": True},
    "refresh_after_logout": {"pass": True, "ok": False, "code": "INVALID_CREDENTIALS"},
    "validation_error": {"pass": True, "ok": False, "code": "GRAPHQL_VALIDATION"},
}


@pytest.mark.node
def test_directus_sdk_graphql(node: str, server: Server) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TG_")}
    env |= {"TG_EMAIL": EMAIL, "TG_PASSWORD": PASSWORD}
    done = subprocess.run(
        [node, "graphql_check.mjs", server.url],
        cwd=SDK_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    steps = {}
    for line in done.stdout.splitlines():
        record = json.loads(line)
        steps[record.pop("step")] = record
    assert steps == SDK_STEPS, (steps, done.stderr)
    assert done.returncode == 0, done.stderr
