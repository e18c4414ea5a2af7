"""The example apps, served as ``examples/run.sh`` serves them (``python -m examples.serve``):
the ASGI ones by a real uvicorn, the WSGI ones by a real gunicorn, on 127.0.0.1."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.helpers.servers import Server, serve
from tests.helpers.tokens import OTHER_SECRET, SECRET, mint

pytestmark = pytest.mark.e2e

ADMIN_TOKEN = "admin-static-token-Xq8Wv2Lk9Pz4"
ENV = {
    "SECRET": SECRET,
    "ADMIN_EMAIL": "admin@example.com",
    "ADMIN_PASSWORD": "correct horse battery staple",
    "ADMIN_TOKEN": ADMIN_TOKEN,
    "TOKENGUARD_PUBLIC_ROLE": "public",
}

COMMANDS = {
    "starlette-uvicorn": [sys.executable, "-m", "examples.serve", "starlette"],
    "flask-gunicorn": [sys.executable, "-m", "examples.serve", "flask"],
    "fastapi-uvicorn": [sys.executable, "-m", "examples.serve", "fastapi"],
    "flask-sqlalchemy-gunicorn": [sys.executable, "-m", "examples.serve", "flask_sqlalchemy"],
    "django-uvicorn": [sys.executable, "-m", "examples.serve", "django"],
}


@pytest.fixture(params=sorted(COMMANDS), scope="module")
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(COMMANDS[request.param], ENV, tmp_path_factory.mktemp(request.param)) as srv:
        yield srv


def test_public_route(server: Server) -> None:
    r = httpx.get(server.url + "/")
    assert r.status_code == 200
    assert r.json() == {"data": {"hello": "world", "role": "public", "via": "public"}}


def test_users_me_with_static_token(server: Server) -> None:
    r = httpx.get(server.url + "/users/me", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert r.status_code == 200
    data = r.json()["data"]
    assert data["email"] == "admin@example.com" and data["role"] == "administrator"
    r2 = httpx.get(server.url + "/users/me", params={"access_token": ADMIN_TOKEN})
    assert r2.json()["data"]["id"] == data["id"]


def test_users_me_anonymous_is_401(server: Server) -> None:
    r = httpx.get(server.url + "/users/me")
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    assert r.content == b'{"errors":[{"message":"Invalid user credentials.","extensions":{"code":"INVALID_CREDENTIALS"}}]}'


def test_role_route(server: Server) -> None:
    assert httpx.get(server.url + "/admin", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).status_code == 200
    editor = mint(role="editor")
    assert httpx.get(server.url + "/private", headers={"Authorization": f"Bearer {editor}"}).status_code == 200
    r = httpx.get(server.url + "/admin", headers={"Authorization": f"Bearer {editor}"})
    assert r.status_code == 403 and r.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert httpx.get(server.url + "/admin").status_code == 401


def test_bad_tokens_over_http(server: Server) -> None:
    cases = {
        "Bearer not-a-jwt": (401, "INVALID_CREDENTIALS"),
        f"Bearer {mint(secret=OTHER_SECRET)}": (403, "INVALID_TOKEN"),
        f"Bearer {mint(exp=1000, iat=900)}": (401, "TOKEN_EXPIRED"),
    }
    for header, (status, code) in cases.items():
        r = httpx.get(server.url + "/", headers={"Authorization": header})
        assert (r.status_code, r.json()["errors"][0]["extensions"]["code"]) == (status, code)
    r = httpx.get(server.url + "/", params={"access_token": "x"}, headers={"Authorization": "Bearer y"})
    assert r.status_code == 400
    r = httpx.get(server.url + "/", headers={"Cookie": "directus_session_token=garbage"})
    assert r.status_code == 401 and "directus_session_token=; Max-Age=0" in r.headers["set-cookie"]


def test_production_servers(server: Server) -> None:
    # Not Werkzeug's development server, which announces itself (and its version) here.
    assert "werkzeug" not in httpx.get(server.url + "/").headers.get("server", "").lower()
