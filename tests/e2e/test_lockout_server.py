"""The lockout (AUTH_LOGIN_ATTEMPTS) over a real uvicorn: the suspension it makes revokes the
user's sessions, as ``tokenguard users suspend`` does — a session cookie and a refresh token
that worked before stop working at once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.auth import EMAIL, PASSWORD, SECRET, USER_ID, make_user
from tests.helpers.servers import AUTH_APP_UVICORN, Server, serve
from tokenguard.stores.sqlite import SQLiteUserStore

pytestmark = pytest.mark.e2e

UVICORN = AUTH_APP_UVICORN
ATTEMPTS = 3


@pytest.fixture(params=["sqlite", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    db = tmp_path / "tokenguard.db"
    store = SQLiteUserStore(db)
    try:
        store.create(make_user())
    finally:
        store.close()
    env = {
        "SECRET": SECRET,
        "DB_FILENAME": str(db),
        "LOGIN_STALL_TIME": "0",
        "AUTH_LOGIN_ATTEMPTS": str(ATTEMPTS),
    }
    if request.param == "redis":
        request.applymarker(pytest.mark.redis)
        env["REDIS"] = request.getfixturevalue("redis_url")
        env["TOKENGUARD_REDIS_PREFIX"] = request.getfixturevalue("redis_prefix")
    return env


@pytest.fixture
def server(backend: dict[str, str], tmp_path: Path) -> Iterator[Server]:
    with serve(UVICORN, backend, tmp_path, ready_path="/") as srv:
        yield srv


def _status(backend: dict[str, str]) -> str:
    store = SQLiteUserStore(Path(backend["DB_FILENAME"]))
    try:
        user = store.get_by_id(USER_ID)
    finally:
        store.close()
    assert user is not None
    return user.status


def test_lockout_revokes_session_cookie_and_refresh_token(
    server: Server, backend: dict[str, str]
) -> None:
    url = server.url
    session = httpx.post(
        f"{url}/auth/login", json={"email": EMAIL, "password": PASSWORD, "mode": "session"}
    )
    assert session.status_code == 200
    cookie = {"directus_session_token": session.cookies["directus_session_token"]}
    login = httpx.post(f"{url}/auth/login", json={"email": EMAIL, "password": PASSWORD})
    assert login.status_code == 200
    refresh_token = login.json()["data"]["refresh_token"]
    # Both work before the lockout (and the refresh hands on a successor).
    me = httpx.get(f"{url}/whoami", cookies=cookie)
    assert (me.status_code, me.text) == (200, f"user={USER_ID}")
    refreshed = httpx.post(f"{url}/auth/refresh", json={"refresh_token": refresh_token})
    assert refreshed.status_code == 200
    refresh_token = refreshed.json()["data"]["refresh_token"]

    for _ in range(ATTEMPTS + 1):
        wrong = httpx.post(f"{url}/auth/login", json={"email": EMAIL, "password": "not it"})
        assert wrong.status_code == 401
    assert _status(backend) == "suspended"

    assert httpx.get(f"{url}/whoami", cookies=cookie).status_code == 401
    dead = httpx.post(f"{url}/auth/refresh", json={"refresh_token": refresh_token})
    assert dead.status_code == 401
    again = httpx.post(f"{url}/auth/refresh", json={"mode": "session"}, cookies=cookie)
    assert again.status_code == 401
