"""Session-mode reuse over a real uvicorn, on SQLite and on Redis: presenting a session cookie
that was rotated away, after its grace period, ends the whole session — its successor stops
working too, for requests and for refresh — as a reused refresh token does in json mode."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.auth import EMAIL, PASSWORD, SECRET, make_user
from tests.helpers.servers import AUTH_APP_UVICORN, Server, serve
from tokenguard.stores.sqlite import SQLiteUserStore

pytestmark = pytest.mark.e2e

UVICORN = AUTH_APP_UVICORN
INVALID_CREDENTIALS = {"errors": [{"message": "Invalid user credentials.", "extensions": {"code": "INVALID_CREDENTIALS"}}]}
GRACE_S = 0.3


@pytest.fixture(params=["sqlite", "redis"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
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
        "SESSION_REFRESH_GRACE_PERIOD": f"{int(GRACE_S * 1000)}ms",
    }
    if request.param == "redis":
        request.applymarker(pytest.mark.redis)
        env["REDIS"] = request.getfixturevalue("redis_url")
        env["TOKENGUARD_REDIS_PREFIX"] = request.getfixturevalue("redis_prefix")
    with serve(UVICORN, env, tmp_path, ready_path="/") as srv:
        yield srv


def test_a_rotated_away_session_cookie_presented_again_ends_the_session(server: Server) -> None:
    url = server.url
    login = httpx.post(f"{url}/auth/login", json={"email": EMAIL, "password": PASSWORD, "mode": "session"})
    assert login.status_code == 200
    old = {"directus_session_token": login.cookies["directus_session_token"]}
    refreshed = httpx.post(f"{url}/auth/refresh", json={"mode": "session"}, cookies=old)
    assert refreshed.status_code == 200
    new = {"directus_session_token": refreshed.cookies["directus_session_token"]}
    assert httpx.get(f"{url}/whoami", cookies=new).status_code == 200
    time.sleep(GRACE_S + 0.4)  # past the grace period: the old cookie is dead

    stale = httpx.get(f"{url}/whoami", cookies=old)
    assert (stale.status_code, stale.json()) == (401, INVALID_CREDENTIALS)
    gone = httpx.get(f"{url}/whoami", cookies=new)
    assert (gone.status_code, gone.json()) == (401, INVALID_CREDENTIALS)
    again = httpx.post(f"{url}/auth/refresh", json={"mode": "session"}, cookies=new)
    assert (again.status_code, again.json()) == (401, INVALID_CREDENTIALS)
    # A new login starts a new session.
    fresh = httpx.post(f"{url}/auth/login", json={"email": EMAIL, "password": PASSWORD, "mode": "session"})
    assert fresh.status_code == 200
