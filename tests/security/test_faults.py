"""Redis stopped, crashed and restarted, frozen (slow), or answering errors — during login,
refresh, logout and session-token checks, through both shells.

Sessions and the rate-limit counts both live in a private Redis (with an fsync-always AOF,
so that a restart keeps what was written). Every answer during a fault is the correct one
or a clear 503; never a wrong acceptance. A session revoked before the fault is never
accepted during or after it, and the service recovers by itself once Redis is back.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.helpers.auth import EMAIL, PASSWORD, USER_ID
from tests.helpers.redis_server import RedisServer, redis_server_binary
from tests.security.harness import Reply, Shell, make_core

pytestmark = pytest.mark.parametrize("kind", ["asgi", "wsgi"])

OK_BODY = f"app {USER_ID} session".encode()


@pytest.fixture
def durable_redis(tmp_path: Path) -> Iterator[RedisServer]:
    if redis_server_binary() is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer(tmp_path, persistent=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def shell_on(kind: str, server: RedisServer) -> Shell:
    return Shell(
        kind,
        make_core(
            kind,
            redis_url=server.url,
            # Logins are counted in Redis (the per-account limit and the lockout); the
            # app-wide limiter stays off here, or every request would need Redis (that
            # fault is tested in tests/test_throttle.py).
            rate_limiter_store="redis",
        ),
    )


def login(shell: Shell, mode: str = "session") -> Reply:
    return shell.request("POST", "/auth/login", json_body={"email": EMAIL, "password": PASSWORD, "mode": mode})


def session_cookie(reply: Reply) -> str:
    assert reply.status == 200, reply.body
    value = next(v for v in reply.all("set-cookie") if v.startswith("directus_session_token="))
    return value.split(";", 1)[0]


def use(shell: Shell, cookie: str) -> Reply:
    return shell.request("GET", "/items", headers={"Cookie": cookie})


def refresh(shell: Shell, token: str) -> Reply:
    return shell.request("POST", "/auth/refresh", json_body={"refresh_token": token})


def logout(shell: Shell, cookie: str) -> Reply:
    return shell.request("POST", "/auth/logout", json_body={"mode": "session"}, headers={"Cookie": cookie})


def assert_503(reply: Reply) -> None:
    assert reply.status == 503, (reply.status, reply.body)
    assert reply.code == "SERVICE_UNAVAILABLE"
    assert reply.json()["errors"][0]["message"].startswith('Service "')


class World:
    """A live session, a revoked one, a json-mode refresh token and a bearer JWT."""

    def __init__(self, shell: Shell) -> None:
        self.shell = shell
        self.live = session_cookie(login(shell))
        self.revoked = session_cookie(login(shell))
        assert logout(shell, self.revoked).status == 204
        data = login(shell, "json").json()["data"]
        self.refresh_token: str = data["refresh_token"]
        self.bearer: str = data["access_token"]

    def check_healthy(self) -> None:
        assert (use(self.shell, self.live).status, use(self.shell, self.live).body) == (200, OK_BODY)
        assert use(self.shell, self.revoked).status == 401

    def check_during_fault(self, *, reads_work: bool = False) -> None:
        shell = self.shell
        # The revoked session: never accepted.
        reply = use(shell, self.revoked)
        assert reply.status in (401, 503) and not reply.body.startswith(b"app ")
        # The live session: accepted (from Redis, or from the few-second session-check cache,
        # which is right: nobody could revoke it while Redis was away) or a clear 503.
        reply = use(shell, self.live)
        if reads_work or reply.status != 503:
            assert (reply.status, reply.body) == (200, OK_BODY)
        # A bearer JWT is checked against the revocation list (issue 28): accepted while the
        # process still trusts its list (nobody can revoke while Redis is away), a 503 once it
        # knows the channel is lost and Redis cannot answer the per-request check.
        reply = shell.request("GET", "/items", headers={"Authorization": f"Bearer {self.bearer}"})
        if reply.status == 503:
            assert_503(reply)
        else:
            assert (reply.status, reply.body) == (200, f"app {USER_ID} jwt".encode())
        # Login hands nothing out when nothing can be recorded (or counted).
        assert_503(login(shell))


def test_redis_stopped_and_started_again(kind: str, durable_redis: RedisServer) -> None:
    shell = shell_on(kind, durable_redis)
    world = World(shell)
    world.check_healthy()
    durable_redis.stop()
    world.check_during_fault()
    assert_503(refresh(shell, world.refresh_token))
    assert_503(logout(shell, world.live))
    durable_redis.start()
    world.check_healthy()
    # Nothing was rotated or revoked by the failed calls: the refresh token still works once.
    reply = refresh(shell, world.refresh_token)
    assert reply.status == 200
    assert refresh(shell, world.refresh_token).status == 401  # and only once
    assert logout(shell, world.live).status == 204
    assert use(shell, world.live).status == 401


def test_redis_crashed_mid_traffic_and_restarted(kind: str, durable_redis: RedisServer) -> None:
    shell = shell_on(kind, durable_redis)
    world = World(shell)
    durable_redis.kill()
    world.check_during_fault()
    assert_503(refresh(shell, world.refresh_token))
    durable_redis.start()
    # The AOF kept the live session and the revocation.
    world.check_healthy()
    assert login(shell).status == 200


def test_redis_frozen_answers_503_within_the_timeout(kind: str, durable_redis: RedisServer) -> None:
    import time

    shell = shell_on(kind, durable_redis)
    world = World(shell)
    durable_redis.pause()
    try:
        started = time.monotonic()
        reply = use(shell, world.revoked)
        assert reply.status == 503
        reply = use(shell, world.live)
        assert reply.status == 503 or (reply.status, reply.body) == (200, OK_BODY)
        assert_503(login(shell))
        assert_503(logout(shell, world.live))
        # Bounded: a frozen Redis costs a timeout, not a hung worker.
        assert time.monotonic() - started < 15
    finally:
        durable_redis.resume()
    world.check_healthy()
    assert login(shell).status == 200


def test_redis_answering_errors(kind: str, durable_redis: RedisServer) -> None:
    shell = shell_on(kind, durable_redis)
    world = World(shell)
    admin = redis.Redis.from_url(durable_redis.url)
    try:
        # Out of memory: every write is refused with an error; reads still answer.
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", "1")
        world.check_during_fault(reads_work=True)
        reply = refresh(shell, world.refresh_token)
        assert_503(reply)
        reply = logout(shell, world.live)
        if reply.status == 204:
            # Redis let the deletion through: then the session is really gone.
            assert use(shell, world.live).status == 401
            world.live = session_cookie(login_after_recovery(admin, shell))
        else:
            assert_503(reply)
            assert (use(shell, world.live).status, use(shell, world.live).body) == (200, OK_BODY)
        admin.config_set("maxmemory", "0")
    finally:
        admin.config_set("maxmemory", "0")
        admin.close()
    world.check_healthy()
    assert refresh(shell, world.refresh_token).status == 200


def login_after_recovery(admin: Any, shell: Shell) -> Reply:
    admin.config_set("maxmemory", "0")
    reply = login(shell)
    admin.config_set("maxmemory", "1")
    return reply


def test_redis_answering_with_a_read_only_replica(kind: str, durable_redis: RedisServer, tmp_path: Path) -> None:
    # A failover gone wrong: the URL now points at a replica, which refuses every write.
    shell = shell_on(kind, durable_redis)
    world = World(shell)
    admin = redis.Redis.from_url(durable_redis.url)
    try:
        admin.execute_command("REPLICAOF", "127.0.0.1", "1")  # a master that is not there
        admin.config_set("replica-read-only", "yes")
        # Reads of the data it still holds keep answering correctly; writes are 503.
        reply = use(shell, world.revoked)
        assert reply.status in (401, 503) and not reply.body.startswith(b"app ")
        reply = use(shell, world.live)
        assert reply.status in (200, 503)
        assert_503(login(shell))
        assert_503(refresh(shell, world.refresh_token))
    finally:
        admin.execute_command("REPLICAOF", "NO", "ONE")
        admin.close()
    world.check_healthy()
    assert refresh(shell, world.refresh_token).status == 200


_BUSY = """
local t = redis.call('TIME')
local start = t[1] * 1000000 + t[2]
while true do
  local n = redis.call('TIME')
  if n[1] * 1000000 + n[2] - start > tonumber(ARGV[1]) * 1000 then break end
end
return 1
"""


def _stall_redis(url: str, ms: int) -> Any:
    """Keep Redis busy for ``ms`` (a script spinning on the server): every client waits."""
    import threading
    import time

    def spin() -> None:
        client = redis.Redis.from_url(url, socket_timeout=30)
        try:
            client.eval(_BUSY, 0, ms)
        finally:
            client.close()

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    # Wait until the server is really busy: a probe's PING goes unanswered.
    probe = redis.Redis.from_url(url, socket_timeout=0.1, socket_connect_timeout=0.5)
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                probe.ping()
            except redis.TimeoutError:
                break
            time.sleep(0.01)
    finally:
        probe.close()
    return thread


def test_redis_slow_but_answering(kind: str, durable_redis: RedisServer) -> None:

    shell = shell_on(kind, durable_redis)
    world = World(shell)
    # Slower than usual, within the client's 1 s timeout: the right answers, only late.
    for cookie, expected in ((world.live, 200), (world.revoked, 401)):
        thread = _stall_redis(durable_redis.url, 700)
        reply = use(shell, cookie)
        assert reply.status in (expected, 503), reply.body
        if expected == 401:
            assert not reply.body.startswith(b"app ")
        thread.join(5)
    # Slower than the timeout: a clear 503 (never a guess), then recovery.
    thread = _stall_redis(durable_redis.url, 2500)
    reply = use(shell, world.live)
    assert reply.status == 503 or (reply.status, reply.body) == (200, OK_BODY)
    reply = use(shell, world.revoked)
    assert reply.status in (401, 503) and not reply.body.startswith(b"app ")
    thread.join(10)
    # A stall of its own: after two requests that may each have waited out a timeout (or
    # two), what is left of the first stall is no bound on when the login reaches Redis.
    thread = _stall_redis(durable_redis.url, 2500)
    assert_503(login(shell))
    thread.join(10)
    world.check_healthy()
    assert login(shell).status == 200


def test_revocation_reaches_a_process_whose_subscription_was_cut(kind: str, durable_redis: RedisServer) -> None:
    # Two processes share Redis. A has checked (and may cache) session S; the connection A
    # listens on for revocations is killed; B logs S out at once. A must refuse S right away:
    # a revocation it could not hear of must not leave S alive in its cache.
    a, b = shell_on(kind, durable_redis), shell_on(kind, durable_redis)
    cookie = session_cookie(login(a))
    for _ in range(3):
        assert (use(a, cookie).status, use(a, cookie).body) == (200, OK_BODY)
    admin = redis.Redis.from_url(durable_redis.url)
    try:
        admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    finally:
        admin.close()
    # A learns of the cut when its subscriber thread reads the closed socket: microseconds on
    # a quiet machine, but on a loaded one the thread may not have run yet when the next two
    # requests are made (what a process cannot know without I/O is bounded by the feed's
    # ping, docs/security/revocation.md). The test is of what A does once it knows.
    assert a.core.invalidation is not None
    deadline = time.monotonic() + 3
    while a.core.invalidation.live and time.monotonic() < deadline:
        time.sleep(0.001)
    assert not a.core.invalidation.live
    assert logout(b, cookie).status == 204
    reply = use(a, cookie)
    assert reply.status in (401, 503) and not reply.body.startswith(b"app "), reply.body
    # And the revocation holds once everything is connected again.

    time.sleep(1.0)
    assert use(a, cookie).status == 401
    assert use(b, cookie).status == 401


def test_revocation_reaches_other_processes(kind: str, durable_redis: RedisServer) -> None:
    a, b = shell_on(kind, durable_redis), shell_on(kind, durable_redis)
    cookie = session_cookie(login(a))
    assert use(a, cookie).status == 200 and use(b, cookie).status == 200
    assert logout(b, cookie).status == 204
    assert use(b, cookie).status == 401
    assert use(a, cookie).status == 401  # at once, not after the cache's TTL
