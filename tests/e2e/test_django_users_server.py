"""The Django example with the project's own ``django.contrib.auth`` users
(``settings_users.py``), under real servers on 127.0.0.1: daphne (HTTP and the Channels
WebSocket) and uvicorn. Accounts are made the Django way (``manage.py migrate``, ``manage.py
shell``), listed with ``manage.py tokenguard``, and log in at ``/auth/login``; DRF views and
the Channels consumer see them; ``@directus/sdk`` logs in with one (``tests/e2e/sdk``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.e2e import test_sdk as sdk
from tests.helpers.servers import ROOT, Server, serve
from tests.helpers.tokens import SECRET

pytestmark = pytest.mark.e2e

ADMIN_EMAIL = "admin@example.com"
EDITOR_EMAIL = "Editor@Example.org"
PASSWORD = "correct horse battery staple"
INVALID_CREDENTIALS = b'{"errors":[{"message":"Invalid user credentials.","extensions":{"code":"INVALID_CREDENTIALS"}}]}'
COMMANDS = {
    "daphne": [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", "{port}",
               "examples.django_app.asgi:application"],
    "uvicorn": [sys.executable, "-m", "examples.django_app.app"],
}
SEED = f"""
from django.contrib.auth.models import Group, User
User.objects.create_superuser("admin", "{ADMIN_EMAIL}", "{PASSWORD}")
editor = User.objects.create_user("editor", "{EDITOR_EMAIL}", "{PASSWORD}", first_name="Edith")
editor.groups.add(Group.objects.create(name="Editors"))
User.objects.create_user("gone", "gone@example.com", "{PASSWORD}", is_active=False)
User.objects.create_user("sdk", "{sdk.ADMIN_EMAIL}", "{sdk.ADMIN_PASSWORD}")
"""


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **env}
    full["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), full.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "examples/django_app/manage.py", *args],
        cwd=ROOT, env=full, capture_output=True, text=True, timeout=60,
    )


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    directory = tmp_path_factory.mktemp("django-users")
    env = {
        "SECRET": SECRET,
        "DJANGO_SETTINGS_MODULE": "examples.django_app.settings_users",
        "DJANGO_DB": str(directory / "django.sqlite3"),
        "DB_FILENAME": str(directory / "tokenguard.sqlite3"),
        "TOKENGUARD_PUBLIC_ROLE": "public",
    }
    for args in (("migrate", "--noinput", "-v", "0"), ("shell", "-c", SEED)):
        done = manage(env, *args)
        assert done.returncode == 0, done.stderr
    return env


@pytest.fixture(params=sorted(COMMANDS), scope="module")
def server(request: pytest.FixtureRequest, env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(COMMANDS[request.param], env, tmp_path_factory.mktemp(request.param)) as srv:
        yield srv
    assert "Traceback" not in srv.output(), srv.output()


def login(server: Server, email: str, password: str = PASSWORD, mode: str = "json") -> httpx.Response:
    return httpx.post(
        server.url + "/auth/login", json={"email": email, "password": password, "mode": mode}, timeout=10
    )


def user_ids(env: dict[str, str]) -> dict[str, str]:
    done = manage(env, "tokenguard", "users", "list", "--json")
    assert done.returncode == 0, done.stderr
    return {row["email"]: row["id"] for row in json.loads(done.stdout)}


def test_manage_py_tokenguard_lists_the_django_accounts(env: dict[str, str]) -> None:
    done = manage(env, "tokenguard", "users", "list", "--json")
    assert done.returncode == 0, done.stderr
    rows = [(r["email"], r["role"], r["status"], r["admin_access"], r["app_access"]) for r in json.loads(done.stdout)]
    assert rows == [
        ("admin@example.com", None, "active", True, True),
        ("Editor@example.org", "editor", "active", False, False),
        ("gone@example.com", None, "suspended", False, False),
        (sdk.ADMIN_EMAIL, None, "active", False, False),
    ]
    done = manage(env, "tokenguard", "users", "suspend", "nobody@example.com")
    assert (done.returncode, done.stderr.strip().splitlines()[-1]) == (
        1, "tokenguard: error: no such user: nobody@example.com"
    )


def test_an_existing_account_logs_in_and_refreshes(server: Server, env: dict[str, str]) -> None:
    ids = user_ids(env)
    r = login(server, "editor@EXAMPLE.org")
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert list(data) == ["expires", "refresh_token", "access_token"]
    bearer = {"Authorization": f"Bearer {data['access_token']}"}
    me = httpx.get(server.url + "/users/me", headers=bearer)
    assert me.json() == {
        "data": {
            "id": ids["Editor@example.org"], "first_name": "Edith", "last_name": None,
            "email": "Editor@example.org", "status": "active", "role": "editor", "provider": "default",
        }
    }
    refreshed = httpx.post(server.url + "/auth/refresh", json={"refresh_token": data["refresh_token"]})
    assert refreshed.status_code == 200
    assert refreshed.json()["data"]["refresh_token"] != data["refresh_token"]
    for email, password in (("editor@example.org", "wrong"), ("gone@example.com", PASSWORD)):
        r = login(server, email, password)
        assert (r.status_code, r.content) == (401, INVALID_CREDENTIALS)


def test_drf_views(server: Server, env: dict[str, str]) -> None:
    ids = user_ids(env)
    editor = {"Authorization": f"Bearer {login(server, EDITOR_EMAIL).json()['data']['access_token']}"}
    admin_token = login(server, ADMIN_EMAIL).json()["data"]["access_token"]
    r = httpx.get(server.url + "/api/me", headers=editor)
    assert (r.status_code, r.json()) == (
        200, {"data": {"id": ids["Editor@example.org"], "role": "editor", "via": "jwt"}}
    )
    r = httpx.get(server.url + "/api/me", params={"access_token": admin_token})
    assert (r.status_code, r.json()) == (200, {"data": {"id": ids[ADMIN_EMAIL], "role": None, "via": "jwt"}})
    r = httpx.get(server.url + "/api/me")
    assert (r.status_code, r.json()) == (401, {"detail": "Authentication credentials were not provided."})
    assert r.headers["www-authenticate"] == 'Bearer realm="api"'
    r = httpx.get(server.url + "/api/editors", headers=editor)
    assert (r.status_code, r.json()) == (200, {"data": {"editor": ids["Editor@example.org"]}})
    r = httpx.get(server.url + "/api/me", headers={"Authorization": "Bearer not-a-jwt"})
    assert (r.status_code, r.content) == (401, INVALID_CREDENTIALS)  # the middleware's answer


def test_channels_consumer(server: Server, env: dict[str, str]) -> None:
    ids = user_ids(env)
    token = login(server, EDITOR_EMAIL).json()["data"]["access_token"]
    ws_url = server.url.replace("http://", "ws://") + "/ws/whoami"
    with connect(f"{ws_url}?access_token={token}", open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10)) == {
            "data": {"id": ids["Editor@example.org"], "role": "editor", "via": "jwt"}
        }
        ws.send(json.dumps({"hello": 1}))
        assert json.loads(ws.recv(timeout=10)) == {
            "data": {"echo": {"hello": 1}, "id": ids["Editor@example.org"]}
        }
    with connect(ws_url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        assert json.loads(ws.recv(timeout=10))["data"]["id"] == ids["Editor@example.org"]
    with connect(ws_url) as ws:
        assert json.loads(ws.recv(timeout=10)) == {"data": {"id": None, "role": "public", "via": "public"}}
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{ws_url}?access_token=not-a-jwt", open_timeout=10)
    assert refused.value.response.status_code == 403



@pytest.mark.node
@pytest.mark.parametrize("mode", ["json", "cookie", "session"])
def test_directus_sdk_with_a_django_account(node: str, server: Server, mode: str) -> None:
    """The official SDK's login, readMe, refresh, readMe, logout (tests/e2e/test_sdk.py's
    driver), with an account Django made and Django's hasher checks."""
    code, lines, err = sdk.drive(node, mode, server)
    s = sdk.steps(lines)
    assert s["login_wrong_password"] == {"pass": True, **sdk.BAD}
    assert s["read_me"] == s["read_me_after_refresh"] == {"pass": True, **sdk.ME}, server.output()
    assert s["read_me_after_logout"] == {"pass": True, **sdk.BAD}
    assert all(line["pass"] for line in lines), lines
    assert code == 0, err
