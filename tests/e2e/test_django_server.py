"""The Django example project under real servers on 127.0.0.1: gunicorn (Django's WSGI
handler) and uvicorn (its ASGI handler), logging in over HTTP."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.helpers.servers import Server, serve
from tests.helpers.tokens import OTHER_SECRET, SECRET, mint

pytestmark = pytest.mark.e2e

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "correct horse battery staple"
ADMIN_TOKEN = "admin-static-token-Dj4Wv2Lk9Pz4Qx"
ENV = {
    "SECRET": SECRET,
    "ADMIN_EMAIL": ADMIN_EMAIL,
    "ADMIN_PASSWORD": ADMIN_PASSWORD,
    "ADMIN_TOKEN": ADMIN_TOKEN,
    "TOKENGUARD_PUBLIC_ROLE": "public",
}
COMMANDS = {
    "django-gunicorn": [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        "127.0.0.1:{port}",
        "--workers",
        "1",
        "--threads",
        "4",
        "--access-logfile",
        "-",
        "--graceful-timeout",
        "5",
        "examples.django_app.wsgi:application",
    ],
    "django-uvicorn": [sys.executable, "-m", "examples.django_app.app"],
}
INVALID_CREDENTIALS = b'{"errors":[{"message":"Invalid user credentials.","extensions":{"code":"INVALID_CREDENTIALS"}}]}'
EXPIRES = r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT"


@pytest.fixture(params=sorted(COMMANDS), scope="module")
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    with serve(COMMANDS[request.param], ENV, tmp_path_factory.mktemp(request.param)) as srv:
        yield srv
    # Stopped (SIGTERM): the guard was closed at exit without a traceback.
    assert "Traceback" not in srv.output(), srv.output()


def login(server: Server, mode: str) -> httpx.Response:
    return httpx.post(
        server.url + "/auth/login",
        json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "mode": mode},
        timeout=10,
    )


def test_public_route(server: Server) -> None:
    r = httpx.get(server.url + "/")
    assert r.status_code == 200
    assert r.json() == {"data": {"hello": "world", "role": "public", "via": "public"}}


def test_login_json_then_bearer(server: Server) -> None:
    r = login(server, "json")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    assert r.headers["cache-control"] == "no-cache"
    assert "set-cookie" not in r.headers
    data = r.json()["data"]
    assert list(data) == ["expires", "refresh_token", "access_token"]
    bearer = {"Authorization": f"Bearer {data['access_token']}"}
    me = httpx.get(server.url + "/users/me", headers=bearer)
    assert me.status_code == 200
    assert (me.json()["data"]["email"], me.json()["data"]["role"]) == (ADMIN_EMAIL, "administrator")
    admin = httpx.get(server.url + "/admin", headers=bearer)
    assert admin.json()["data"] == {
        "secret": "for administrators only",
        "username": me.json()["data"]["id"],
        "is_superuser": True,
    }
    refreshed = httpx.post(
        server.url + "/auth/refresh", json={"refresh_token": data["refresh_token"]}
    )
    assert (
        refreshed.status_code == 200
        and refreshed.json()["data"]["refresh_token"] != data["refresh_token"]
    )
    out = httpx.post(
        server.url + "/auth/logout",
        json={"refresh_token": refreshed.json()["data"]["refresh_token"]},
    )
    assert (out.status_code, out.content) == (204, b"")


def test_static_token_in_the_query_is_kept_out_of_the_access_log(server: Server) -> None:
    r = httpx.get(server.url + "/users/me", params={"access_token": ADMIN_TOKEN, "page": "2"})
    assert r.status_code == 200 and r.json()["data"]["email"] == ADMIN_EMAIL
    deadline = time.monotonic() + 5
    while "/users/me?page=2 " not in server.output() and time.monotonic() < deadline:
        time.sleep(0.05)  # the access line is written as the response goes out
    assert "/users/me?page=2 " in server.output()
    assert ADMIN_TOKEN not in server.output()


def test_refusals(server: Server) -> None:
    r = httpx.get(server.url + "/", headers={"Authorization": "Bearer not-a-jwt"})
    assert (r.status_code, r.content) == (401, INVALID_CREDENTIALS)
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    r = httpx.get(
        server.url + "/", headers={"Authorization": f"Bearer {mint(secret=OTHER_SECRET)}"}
    )
    assert (r.status_code, r.json()["errors"][0]["extensions"]["code"]) == (403, "INVALID_TOKEN")
    assert httpx.get(server.url + "/users/me").content == INVALID_CREDENTIALS
    editor = {"Authorization": f"Bearer {mint(role='editor')}"}
    assert httpx.get(server.url + "/private", headers=editor).status_code == 200
    r = httpx.get(server.url + "/admin", headers=editor)
    assert (r.status_code, r.json()["errors"][0]["extensions"]["code"]) == (403, "FORBIDDEN")
    r = httpx.get(server.url + "/", headers={"Cookie": "directus_session_token=garbage"})
    assert r.status_code == 401
    assert r.headers["set-cookie"] == (
        "directus_session_token=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax"
    )


def test_session_mode_in_a_browser_like_client(server: Server) -> None:
    r = login(server, "session")
    assert (r.status_code, r.content) == (200, b'{"data":{"expires":86400000}}')
    header = r.headers["set-cookie"]
    assert re.fullmatch(
        rf"directus_session_token=[\w.-]+; Max-Age=86400; Path=/; Expires={EXPIRES}; HttpOnly; SameSite=Lax",
        header,
    ), header
    cookie = {"Cookie": header.split(";", 1)[0]}
    me = httpx.get(server.url + "/private", headers=cookie)
    assert me.status_code == 200
    own = server.url
    cross = httpx.post(
        server.url + "/private", headers={**cookie, "Origin": "https://evil.example"}
    )
    assert (
        cross.status_code == 403 and cross.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    )
    same = httpx.post(server.url + "/private", headers={**cookie, "Origin": own})
    assert same.status_code == 200 and same.json()["data"]["posted"] is True
    out = httpx.post(
        server.url + "/auth/logout", json={"mode": "session"}, headers={**cookie, "Origin": own}
    )
    assert out.status_code == 204
    assert out.headers["set-cookie"] == (
        "directus_session_token=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax"
    )
    assert httpx.get(server.url + "/private", headers=cookie).content == INVALID_CREDENTIALS


def test_cookie_mode_refresh(server: Server) -> None:
    r = login(server, "cookie")
    assert r.status_code == 200
    header = r.headers["set-cookie"]
    assert re.fullmatch(
        rf"directus_refresh_token=[\w-]{{64}}; Max-Age=604800; Path=/; Expires={EXPIRES}; HttpOnly; SameSite=Lax",
        header,
    ), header
    refreshed = httpx.post(
        server.url + "/auth/refresh",
        json={"mode": "cookie"},
        headers={"Cookie": header.split(";", 1)[0]},
    )
    assert refreshed.status_code == 200, refreshed.text
    assert list(refreshed.json()["data"]) == ["expires", "access_token"]
    assert refreshed.headers["set-cookie"].split(";", 1)[0] != header.split(";", 1)[0]
