"""The /auth endpoints served by a real uvicorn on 127.0.0.1, over SQLite and Redis stores."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.auth import EMAIL, INVALID_CREDENTIALS, PASSWORD, SECRET, USER_ID, make_user
from tests.helpers.redis_server import RedisServer
from tests.helpers.servers import AUTH_APP_UVICORN, Server, serve
from tokenguard.stores.sqlite import SQLiteUserStore

pytestmark = pytest.mark.e2e

UVICORN = AUTH_APP_UVICORN


def _env(db: Path, **extra: str) -> dict[str, str]:
    return {"SECRET": SECRET, "DB_FILENAME": str(db), "LOGIN_STALL_TIME": "0", **extra}


def _create_user(db: Path) -> None:
    store = SQLiteUserStore(db)
    try:
        store.create(make_user())
    finally:
        store.close()


@pytest.fixture(params=["sqlite", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    db = tmp_path / "tokenguard.db"
    _create_user(db)
    if request.param == "sqlite":
        return _env(db)
    request.applymarker(pytest.mark.redis)
    url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_prefix")
    return _env(db, REDIS=url, TOKENGUARD_REDIS_PREFIX=prefix)


@pytest.fixture
def server(backend: dict[str, str], tmp_path: Path) -> Iterator[Server]:
    with serve(UVICORN, backend, tmp_path, ready_path="/") as srv:
        yield srv


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))  # type: ignore[no-any-return]


def _login(url: str, mode: str) -> httpx.Response:
    return httpx.post(
        f"{url}/auth/login", json={"email": EMAIL, "password": PASSWORD, "mode": mode}
    )


def test_json_mode_round_trip(server: Server) -> None:
    login = _login(server.url, "json")
    assert login.status_code == 200
    data = login.json()["data"]
    assert list(data) == ["expires", "refresh_token", "access_token"] and data["expires"] == 900_000
    assert login.headers["content-type"] == "application/json; charset=utf-8"
    assert login.headers["cache-control"] == "no-cache"
    me = httpx.get(
        f"{server.url}/whoami", headers={"authorization": f"Bearer {data['access_token']}"}
    )
    assert (me.status_code, me.text) == (200, f"user={USER_ID}")
    refreshed = httpx.post(
        f"{server.url}/auth/refresh", json={"mode": "json", "refresh_token": data["refresh_token"]}
    )
    assert refreshed.status_code == 200
    new = refreshed.json()["data"]["refresh_token"]
    out = httpx.post(f"{server.url}/auth/logout", json={"mode": "json", "refresh_token": new})
    assert (out.status_code, out.content) == (204, b"")
    dead = httpx.post(f"{server.url}/auth/refresh", json={"refresh_token": new})
    assert (dead.status_code, dead.content) == (401, INVALID_CREDENTIALS)
    # Unlike Directus, the session's access tokens die with it (issue 28), json mode included.
    gone = httpx.get(
        f"{server.url}/whoami", headers={"authorization": f"Bearer {data['access_token']}"}
    )
    assert (gone.status_code, gone.content) == (401, INVALID_CREDENTIALS)


def test_cookie_mode_round_trip(server: Server) -> None:
    with httpx.Client(base_url=server.url) as client:
        login = client.post(
            "/auth/login", json={"email": EMAIL, "password": PASSWORD, "mode": "cookie"}
        )
        assert login.status_code == 200 and list(login.json()["data"]) == [
            "expires",
            "access_token",
        ]
        first = client.cookies["directus_refresh_token"]
        refreshed = client.post("/auth/refresh", json={"mode": "cookie"})
        assert refreshed.status_code == 200
        assert client.cookies["directus_refresh_token"] != first
        out = client.post("/auth/logout", json={"mode": "cookie"})
        assert out.status_code == 204
        assert "directus_refresh_token" not in client.cookies
        assert out.headers["set-cookie"].startswith("directus_refresh_token=; Max-Age=0; Path=/;")


def test_session_mode_round_trip_and_logout_everywhere(
    server: Server, backend: dict[str, str], tmp_path: Path
) -> None:
    second = tmp_path / "second"
    second.mkdir()
    with serve(UVICORN, backend, second) as other:
        with httpx.Client(base_url=server.url) as client:
            login = client.post(
                "/auth/login", json={"email": EMAIL, "password": PASSWORD, "mode": "session"}
            )
            assert (login.status_code, login.content) == (200, b'{"data":{"expires":86400000}}')
            cookie = client.cookies["directus_session_token"]
            for _ in range(3):
                assert client.get("/whoami").text == f"user={USER_ID}"
            refreshed = client.post("/auth/refresh", json={"mode": "session"})
            assert refreshed.status_code == 200
            cookie = client.cookies["directus_session_token"]
            # The other process, sharing the store, accepts the cookie...
            assert (
                httpx.get(
                    f"{other.url}/whoami", cookies={"directus_session_token": cookie}
                ).status_code
                == 200
            )
            out = client.post("/auth/logout", json={"mode": "session"})
            assert out.status_code == 204
        # ...and refuses it once it is logged out, at once.
        for url in (server.url, other.url):
            after = httpx.get(f"{url}/whoami", cookies={"directus_session_token": cookie})
            assert (after.status_code, after.content) == (401, INVALID_CREDENTIALS)
            assert after.headers["set-cookie"].startswith("directus_session_token=; Max-Age=0;")


async def _storm(url: str, count: int, **kwargs: Any) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=20) as client:
        return list(
            await asyncio.gather(*(client.post("/auth/refresh", **kwargs) for _ in range(count)))
        )


@pytest.mark.parametrize("mode", ["json", "cookie"])
def test_concurrent_refreshes_give_exactly_one_new_token(server: Server, mode: str) -> None:
    login = _login(server.url, mode)
    if mode == "json":
        kwargs: dict[str, Any] = {
            "json": {"mode": "json", "refresh_token": login.json()["data"]["refresh_token"]}
        }
    else:
        token = login.cookies["directus_refresh_token"]
        kwargs = {
            "json": {"mode": "cookie"},
            "headers": {"cookie": f"directus_refresh_token={token}"},
        }
    replies = asyncio.run(_storm(server.url, 16, **kwargs))
    statuses = sorted(r.status_code for r in replies)
    assert statuses == [200] + [401] * 15
    assert all(r.content == INVALID_CREDENTIALS for r in replies if r.status_code == 401)


def test_concurrent_session_refreshes_converge(server: Server) -> None:
    cookie = _login(server.url, "session").cookies["directus_session_token"]
    replies = asyncio.run(
        _storm(
            server.url,
            16,
            json={"mode": "session"},
            headers={"cookie": f"directus_session_token={cookie}"},
        )
    )
    assert [r.status_code for r in replies] == [200] * 16
    sessions = {_claims(r.cookies["directus_session_token"])["session"] for r in replies}
    assert len(sessions) == 1
    assert sessions != {_claims(cookie)["session"]}
    new = replies[0].cookies["directus_session_token"]
    assert (
        httpx.get(f"{server.url}/whoami", cookies={"directus_session_token": new}).status_code
        == 200
    )


@pytest.mark.parametrize("failure", ["stopped", "paused"])
def test_redis_down_is_503_and_no_token_is_accepted_blind(
    tmp_path: Path, private_redis: RedisServer, failure: str
) -> None:
    db = tmp_path / "tokenguard.db"
    _create_user(db)
    env = _env(db, REDIS=private_redis.url)
    with serve(UVICORN, env, tmp_path) as srv:
        login = _login(srv.url, "json").json()["data"]
        session_cookie = _login(srv.url, "session").cookies["directus_session_token"]
        if failure == "stopped":
            private_redis.stop()
        else:  # alive but not answering: every call times out
            assert private_redis.process is not None
            os.kill(private_redis.process.pid, signal.SIGSTOP)
        for path, body in [
            ("/auth/login", {"email": EMAIL, "password": PASSWORD}),
            ("/auth/refresh", {"refresh_token": login["refresh_token"]}),
            ("/auth/logout", {"refresh_token": login["refresh_token"]}),
        ]:
            reply = httpx.post(srv.url + path, json=body, timeout=10)
            assert reply.status_code == 503, (path, reply.text)
            error = reply.json()["errors"][0]
            assert error["extensions"]["code"] == "SERVICE_UNAVAILABLE"
            assert error["message"].startswith('Service "redis" is unavailable.')
        # A session cookie cannot be checked: refused, never accepted.
        refused = httpx.get(
            f"{srv.url}/whoami", cookies={"directus_session_token": session_cookie}, timeout=10
        )
        assert refused.status_code == 503
        # An access token is checked against the revocation list: good while the process can
        # trust it (nobody can revoke while Redis is away), 503 once the channel is known lost
        # and Redis cannot answer the per-request check (issue 28).
        ok = httpx.get(
            f"{srv.url}/whoami",
            headers={"authorization": f"Bearer {login['access_token']}"},
            timeout=10,
        )
        assert (ok.status_code, ok.text) == (200, f"user={USER_ID}") or (
            ok.status_code == 503 and ok.json()["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
        )
        if failure == "paused":
            assert private_redis.process is not None
            os.kill(private_redis.process.pid, signal.SIGCONT)


def test_login_stall_is_applied(tmp_path: Path) -> None:
    db = tmp_path / "tokenguard.db"
    _create_user(db)
    with serve(UVICORN, _env(db, LOGIN_STALL_TIME="300"), tmp_path) as srv:
        bad = httpx.post(
            f"{srv.url}/auth/login", json={"email": "nobody@example.com", "password": "x"}
        )
        assert (bad.status_code, bad.content) == (401, INVALID_CREDENTIALS)
        assert bad.elapsed.total_seconds() >= 0.3  # the stall is a floor, not a timing measurement
