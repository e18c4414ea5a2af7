"""Many processes, one Redis: uvicorn (ASGI) and gunicorn (WSGI, forked workers) side by side.

A session cookie is accepted by every process with no Redis round trip once each has checked
it; a logout in one process is refused by every other as soon as the announcement arrives.
The session cache TTL is ten minutes here, so nothing but the pub/sub announcement can make
another process refuse within the test. How long the announcement takes is measured and
reported (``record_property``), never asserted: speed lives in the benchmarks.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis

from tests.helpers.auth import EMAIL, PASSWORD, SECRET, USER_ID, make_user
from tests.helpers.redis_server import RedisServer, redis_server_binary
from tests.helpers.servers import Server, serve
from tokenguard.stores.sqlite import SQLiteUserStore

pytestmark = pytest.mark.e2e

UVICORN = [sys.executable, "-m", "uvicorn", "tests.scale.app:application",
           "--host", "127.0.0.1", "--port", "{port}", "--log-level", "warning"]  # fmt: skip
GUNICORN = [sys.executable, "-m", "gunicorn", "tests.scale.app:wsgi_application",
            "--bind", "127.0.0.1:{port}", "--workers", "2", "--preload",
            "--log-level", "warning"]  # fmt: skip


def hget_calls(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return int(stats.get("cmdstat_hget", {}).get("calls", 0))


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[tuple[RedisServer, list[Server]]]:
    if redis_server_binary() is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer(tmp_path)
    server.start()
    db = tmp_path / "users.db"
    users = SQLiteUserStore(db)
    users.create(make_user())
    users.close()
    env = {
        "SECRET": SECRET,
        "DB_FILENAME": str(db),
        "REDIS": server.url,
        "LOGIN_STALL_TIME": "0",
        "TOKENGUARD_SESSION_CACHE_TTL": "10m",
    }
    try:
        with contextlib.ExitStack() as stack:
            servers = []
            for name, argv in (("a", UVICORN), ("b", UVICORN), ("g", GUNICORN)):
                directory = tmp_path / name
                directory.mkdir()
                servers.append(stack.enter_context(serve(argv, env, directory, ready_path="/")))
            yield server, servers
    finally:
        server.stop()


# One client for the whole test: a new httpx client per request costs ~100 ms (TLS context).
_HTTP = httpx.Client(timeout=5)


def whoami(url: str, cookie: str) -> httpx.Response:
    return _HTTP.get(f"{url}/whoami", headers={"cookie": f"directus_session_token={cookie}"})


def test_logout_in_one_process_reaches_every_other(
    deployment: tuple[RedisServer, list[Server]], record_property: pytest.RecordProperty
) -> None:
    redis_server, (a, b, g) = deployment
    login = httpx.post(f"{a.url}/auth/login",
                       json={"email": EMAIL, "password": PASSWORD, "mode": "session"})  # fmt: skip
    assert login.status_code == 200
    cookie = login.cookies["directus_session_token"]
    client = redis.Redis(port=redis_server.port)

    def round_of_requests(pool: ThreadPoolExecutor) -> set[str]:
        # Concurrent requests: a busy sync worker leaves the next connection to the other one.
        urls = [server.url for server in (a, b, g) for _ in range(8)]
        pids = set()
        for response in pool.map(lambda url: whoami(url, cookie), urls):
            assert response.status_code == 200
            assert response.text.startswith(f"user={USER_ID} ")
            pids.add(response.text.rsplit("pid=", 1)[1])
        return pids

    # Warm up until a round that reaches every process and both gunicorn workers makes no
    # Redis read: each checks the session once its subscriber is live (a check made before
    # that is not kept), then never again.
    with ThreadPoolExecutor(8) as pool:
        for _ in range(40):
            before = hget_calls(client)
            pids = round_of_requests(pool)
            if len(pids) == 4 and hget_calls(client) == before:
                break
        assert len(pids) == 4 and hget_calls(client) == before

        # Ordinary requests: no Redis round trip at all.
        before = hget_calls(client)
        for _ in range(6):
            round_of_requests(pool)
        for _ in range(20):
            for server in (a, b, g):
                assert whoami(server.url, cookie).status_code == 200
        assert hget_calls(client) == before

    # Logout in A; B and both G workers must refuse, A at once.
    with httpx.Client(base_url=a.url, cookies={"directus_session_token": cookie}) as session:
        out = session.post("/auth/logout", json={"mode": "session"})
    logged_out = time.perf_counter()
    assert out.status_code == 204
    assert whoami(a.url, cookie).status_code == 401
    seen: dict[str, float] = {}
    deadline = time.monotonic() + 10
    while len(seen) < 2 and time.monotonic() < deadline:
        for name, server in (("b", b), ("g", g)):
            if name not in seen and whoami(server.url, cookie).status_code == 401:
                seen[name] = time.perf_counter() - logged_out
    assert set(seen) == {"b", "g"}, seen
    # Both gunicorn workers: every request now refused.
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: whoami(g.url, cookie).status_code, range(40)))
    assert codes == [401] * 40
    assert whoami(b.url, cookie).status_code == 401
    for name, elapsed in seen.items():
        record_property(f"logout_propagation_ms_{name}", round(elapsed * 1000, 2))
    client.close()
    _HTTP.close()
