"""Login brute-force protection: the lockout, the per-account and per-address limits, and
the Redis-shared counts, through both shells."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers.auth import EMAIL, PASSWORD, USER_ID
from tests.security.harness import INVALID_CREDENTIALS, Reply, Shell, make_core, make_shell
from tokenguard.config import Settings
from tokenguard.errors import ConfigError
from tokenguard.flow import run_async, run_sync
from tokenguard.guard.limits import (
    AsyncRedisCounter,
    Hit,
    Limits,
    MemoryCounter,
    RedisCounter,
    TooManyRequests,
    client_address,
)

KINDS = ["asgi", "wsgi"]
UNREACHABLE = (
    b'{"errors":[{"message":"Service \\"authentication\\" is unavailable. Rate limiter unreachable.",'
    b'"extensions":{"service":"authentication","reason":"Rate limiter unreachable","code":"SERVICE_UNAVAILABLE"}}]}'
)


def login(shell: Shell, password: str = PASSWORD, email: str = EMAIL, **kw: Any) -> Reply:
    return shell.request("POST", "/auth/login", json_body={"email": email, "password": password}, **kw)


def status_of(shell: Shell) -> str:
    users: Any = shell.core.users
    return str(users.get_by_id(USER_ID).status)


def assert_429(reply: Reply, limit: int) -> None:
    assert reply.status == 429
    body = reply.json()
    assert list(body) == ["errors"]
    error = body["errors"][0]
    assert list(error["extensions"]) == ["limit", "reset", "code"]
    assert error["extensions"]["code"] == "REQUESTS_EXCEEDED"
    assert error["extensions"]["limit"] == limit
    assert error["message"].startswith("Too many requests, retry after ")
    assert error["extensions"]["reset"].endswith("Z") and len(error["extensions"]["reset"]) == 24
    retry = reply.header("retry-after")
    assert retry is not None and retry.isdigit() and int(retry) >= 1


# -- lockout ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_user_suspended_on_the_attempt_after_n_failures(kind: str) -> None:
    shell = make_shell(kind, auth_login_attempts=3, login_account_points=0)
    for _ in range(3):
        assert (login(shell, "wrong").status, login.__name__) == (401, "login")
    assert status_of(shell) == "active"
    # The 4th attempt, with the RIGHT password: suspended now, and refused like any failure.
    reply = login(shell)
    assert (reply.status, reply.body) == (401, INVALID_CREDENTIALS)
    assert status_of(shell) == "suspended"
    reply = login(shell)
    assert (reply.status, reply.body) == (401, INVALID_CREDENTIALS)


@pytest.mark.parametrize("kind", KINDS)
def test_a_success_resets_the_consecutive_count(kind: str) -> None:
    shell = make_shell(kind, auth_login_attempts=3, login_account_points=0)
    # Nine attempts, six of them wrong, never three failures plus one in a row.
    for _ in range(3):
        assert login(shell, "wrong").status == 401
        assert login(shell, "wrong").status == 401
        assert login(shell).status == 200
    assert status_of(shell) == "active"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("value", [0, "null", "0", "false"])
def test_lockout_disabled(kind: str, value: Any) -> None:
    shell = make_shell(kind, auth_login_attempts=value, login_account_points=0)
    for _ in range(30):
        assert login(shell, "wrong").status == 401
    assert status_of(shell) == "active"
    assert login(shell).status == 200


@pytest.mark.parametrize("kind", KINDS)
def test_unknown_users_are_not_counted_for_the_lockout(kind: str) -> None:
    shell = make_shell(kind, auth_login_attempts=2, login_account_points=0)
    for _ in range(5):
        assert login(shell, "wrong", email="nobody@example.com").status == 401
    assert login(shell).status == 200


def test_lockout_default_is_directus_s_25() -> None:
    assert Settings(secret="tg-def-Vb7Nm3Qw9Lk2Jh5Gf8Ds1Az4Xc6Er0TyUiOpP").auth_login_attempts == 25


# -- per account ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_per_account_limit(kind: str) -> None:
    shell = make_shell(kind, auth_login_attempts=0, login_account_points=3)
    for _ in range(3):
        assert login(shell, "wrong").status == 401
    reply = login(shell)  # even the right password: the account is being guessed at
    assert_429(reply, 3)
    # Case and spaces do not make another account.
    assert_429(login(shell, email=EMAIL.upper()), 3)


@pytest.mark.parametrize("kind", KINDS)
def test_per_account_limit_treats_unknown_accounts_the_same(kind: str) -> None:
    # The answer after N attempts must not tell whether the account exists.
    shell = make_shell(kind, auth_login_attempts=0, login_account_points=2)
    for email in (EMAIL, "nobody@example.com"):
        for _ in range(2):
            assert login(shell, "wrong", email=email).status == 401
        assert_429(login(shell, "wrong", email=email), 2)


@pytest.mark.parametrize("kind", KINDS)
def test_per_account_limit_is_reset_by_a_success(kind: str) -> None:
    shell = make_shell(kind, auth_login_attempts=0, login_account_points=3)
    for _ in range(20):
        assert login(shell).status == 200


# -- per address ------------------------------------------------------------------------------


def _refresh(shell: Shell, **kw: Any) -> Reply:
    return shell.request("POST", "/auth/refresh", json_body={"refresh_token": "x" * 64}, **kw)


@pytest.mark.parametrize("kind", KINDS)
def test_per_address_limit_on_every_request(kind: str) -> None:
    shell = make_shell(kind, rate_limiter_enabled=True, rate_limiter_points=4, rate_limiter_duration_ms=60_000)
    assert login(shell, "wrong").status == 401
    assert _refresh(shell).status == 401
    assert shell.request("POST", "/auth/logout", json_body={"refresh_token": "x" * 64}).status == 204
    # App routes count as much as the /auth ones (Directus's limiter is app-wide).
    assert shell.request("GET", "/items").status == 200
    assert_429(_refresh(shell), 4)
    assert_429(login(shell), 4)
    assert_429(shell.request("GET", "/items"), 4)
    assert_429(shell.request("GET", "/auth"), 4)
    # Another address is counted apart.
    assert _refresh(shell, client="198.51.100.9").status == 401
    assert shell.request("GET", "/items", client="198.51.100.9").status == 200


@pytest.mark.parametrize("kind", KINDS)
def test_forwarded_for_is_ignored_unless_trusted(kind: str) -> None:
    shell = make_shell(kind, rate_limiter_enabled=True, rate_limiter_points=2, rate_limiter_duration_ms=60_000)
    for i in range(2):
        assert _refresh(shell, headers={"X-Forwarded-For": f"10.0.0.{i}"}).status == 401
    # A forged header does not make a new client.
    assert_429(_refresh(shell, headers={"X-Forwarded-For": "10.0.0.99"}), 2)


@pytest.mark.parametrize("kind", KINDS)
def test_forwarded_for_behind_one_trusted_proxy(kind: str) -> None:
    shell = make_shell(
        kind, rate_limiter_enabled=True, rate_limiter_points=2, rate_limiter_duration_ms=60_000, ip_trust_proxy=True
    )
    # The proxy (the peer) appends the address it saw; what the client sent on the left is
    # not believed.
    for forged in ("1.1.1.1", "2.2.2.2"):
        assert _refresh(shell, headers={"X-Forwarded-For": f"{forged}, 192.0.2.10"}).status == 401
    assert_429(_refresh(shell, headers={"X-Forwarded-For": "3.3.3.3, 192.0.2.10"}), 2)
    assert _refresh(shell, headers={"X-Forwarded-For": "192.0.2.11"}).status == 401


@given(
    peer=st.one_of(st.none(), st.text(max_size=40)),
    forwarded=st.one_of(st.none(), st.text(max_size=200)),
    hops=st.integers(0, 5),
)
@settings(max_examples=300)
def test_client_address_is_the_peer_or_a_forwarded_entry(peer: str | None, forwarded: str | None, hops: int) -> None:
    address = client_address(peer, forwarded, hops)
    if hops == 0 or not forwarded or not forwarded.replace(",", "").strip():
        expected = peer[7:] if peer is not None and peer.startswith("::ffff:") else peer
        assert address == expected
    else:
        entries = [e.strip() for e in forwarded.split(",") if e.strip()]
        assert address in entries or (address is not None and "::ffff:" + address in entries)


def test_client_address_strips_the_ipv4_mapped_prefix() -> None:
    assert client_address("::ffff:192.0.2.1", None, 0) == "192.0.2.1"


# -- the counters -----------------------------------------------------------------------------


def test_memory_counter_window_and_bound() -> None:
    now = [100.0]
    counter = MemoryCounter(max_keys=3, monotonic=lambda: now[0])
    assert [counter.hit("a", 1000).count for _ in range(3)] == [1, 2, 3]
    assert counter.hit("a", 1000).ms_before_next == 1000
    now[0] += 1.0
    assert counter.hit("a", 1000).count == 1  # a new window
    counter.hit("lock:ada", 0)
    for key in ("b", "c", "d", "e", "f", "g"):
        counter.hit(key, 1000)
    assert len(counter._windows) <= 3  # bounded whatever the flood
    # Counts that never expire live apart: the flood did not push the lockout count out.
    assert counter.hit("lock:ada", 0) == Hit(2, -1)


@settings(max_examples=100)
@given(keys=st.lists(st.text(max_size=10), max_size=200))
def test_memory_counter_never_exceeds_its_bound(keys: list[str]) -> None:
    counter = MemoryCounter(max_keys=16)
    for key in keys:
        assert counter.hit(key, 50).count >= 1
        assert len(counter) <= 16


def _limits(counter: Any, **changes: Any) -> Limits:
    base = Settings(secret="tg-lim-Vb7Nm3Qw9Lk2Jh5Gf8Ds1Az4Xc6Er0TyUiOpP")
    return Limits(base.with_changes(**changes), counter)


def test_shared_redis_count_across_processes(redis_url: str, redis_prefix: str) -> None:
    # Two cores (two processes' worth: separate clients, separate memory) share one count.
    shells = [
        Shell(
            "wsgi",
            make_core(
                "wsgi",
                redis_url=redis_url,
                redis_prefix=redis_prefix,
                rate_limiter_store="redis",
                login_account_points=4,
                auth_login_attempts=0,
            ),
        )
        for _ in range(2)
    ]
    for i in range(4):
        assert login(shells[i % 2], "wrong").status == 401
    assert_429(login(shells[0], "wrong"), 4)
    assert_429(login(shells[1], "wrong"), 4)


def test_shared_redis_lockout_across_flavours(redis_url: str, redis_prefix: str) -> None:
    # One user store, two processes (sync and async): the lockout count is one.
    from tests.helpers.auth import make_user
    from tokenguard.stores.memory import MemoryUserStore

    users = MemoryUserStore()
    users.create(make_user())
    options: dict[str, Any] = {
        "redis_url": redis_url,
        "redis_prefix": redis_prefix,
        "rate_limiter_store": "redis",
        "login_account_points": 0,
        "auth_login_attempts": 3,
    }
    asgi = Shell("asgi", make_core("asgi", users=users, **options))
    wsgi = Shell("wsgi", make_core("wsgi", users=users, **options))
    assert login(asgi, "wrong").status == 401
    assert login(wsgi, "wrong").status == 401
    assert login(asgi, "wrong").status == 401
    assert login(wsgi).status == 401
    assert users.get_by_id(USER_ID).status == "suspended"  # type: ignore[union-attr]


def test_redis_counter_script_sets_the_window(redis_url: str, redis_prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    counter = RedisCounter(client, prefix=redis_prefix)
    try:
        first = counter.hit("k", 60_000)
        second = counter.hit("k", 60_000)
        assert (first.count, second.count) == (1, 2)
        assert 0 < second.ms_before_next <= 60_000
        assert client.pttl(f"{redis_prefix}rl:k") > 0
        assert counter.hit("forever", 0).ms_before_next == -1
        counter.reset("k")
        assert counter.hit("k", 60_000).count == 1
    finally:
        client.close()


def test_async_redis_counter(redis_url: str, redis_prefix: str) -> None:
    async def go() -> tuple[int, int]:
        counter = AsyncRedisCounter.from_url(redis_url, prefix=redis_prefix)
        try:
            a = await counter.hit("k", 60_000)
            b = await counter.hit("k", 60_000)
            return a.count, b.count
        finally:
            await counter.aclose()

    assert asyncio.run(go()) == (1, 2)


@pytest.mark.parametrize("kind", KINDS)
def test_limiter_down_fails_closed_and_recovers(kind: str, private_redis: Any) -> None:
    shell = Shell(
        kind,
        make_core(kind, redis_url=private_redis.url, rate_limiter_store="redis", rate_limiter_enabled=True),
    )
    assert login(shell).status == 200
    private_redis.stop()
    for reply in (login(shell), _refresh(shell), login(shell, "wrong")):
        assert (reply.status, reply.body) == (503, UNREACHABLE)
    private_redis.start()
    # Recovers by itself: at most the pooled connections that died with Redis fail (503).
    statuses = []
    for _ in range(4):
        statuses.append(login(shell).status)
        if statuses[-1] == 200:
            break
    assert statuses[-1] == 200 and set(statuses) <= {200, 503}, statuses


def test_limits_flow_fails_closed_on_a_bad_reply() -> None:
    class Impostor:
        def hit(self, key: str, window_ms: int) -> Any:
            return "OK"

        def reset(self, key: str) -> None:
            return None

    limits = _limits(Impostor(), rate_limiter_enabled=True)
    with pytest.raises(Exception) as caught:
        run_sync(limits.check_address("192.0.2.1"))
    assert getattr(caught.value, "status", None) == 503


def test_too_many_requests_body() -> None:
    error = TooManyRequests(50, 987, 1_752_141_600.0)
    assert json.loads(error.body) == {
        "errors": [
            {
                "message": "Too many requests, retry after 987ms.",
                "extensions": {"limit": 50, "reset": "2025-07-10T10:00:00.987Z", "code": "REQUESTS_EXCEEDED"},
            }
        ]
    }
    assert error.retry_after == 1


def test_async_flow_over_a_memory_counter() -> None:
    limits = _limits(MemoryCounter(), rate_limiter_enabled=True, rate_limiter_points=1)

    async def go() -> None:
        await run_async(limits.check_address("a"))
        with pytest.raises(TooManyRequests):
            await run_async(limits.check_address("a"))

    asyncio.run(go())


@pytest.mark.parametrize(
    "env",
    [
        {"RATE_LIMITER_STORE": "redis"},  # no REDIS
        {"RATE_LIMITER_STORE": "postgres"},
        {"RATE_LIMITER_POINTS": "0"},
        {"RATE_LIMITER_DURATION": "-1"},
        {"AUTH_LOGIN_ATTEMPTS": "-3"},
        {"TOKENGUARD_CSRF_TRUSTED_ORIGINS": "https://app.example.com/path"},
    ],
)
def test_bad_settings_refused_at_start(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        Settings.from_env({"SECRET": "tg-cfg-Vb7Nm3Qw9Lk2Jh5Gf8Ds1Az4Xc6Er0TyUiOpP", **env})


def test_directus_env_names() -> None:
    s = Settings.from_env(
        {
            "SECRET": "tg-cfg-Vb7Nm3Qw9Lk2Jh5Gf8Ds1Az4Xc6Er0TyUiOpP",
            "RATE_LIMITER_ENABLED": "true",
            "RATE_LIMITER_POINTS": "20",
            "RATE_LIMITER_DURATION": "2",
            "AUTH_LOGIN_ATTEMPTS": "5",
            "IP_TRUST_PROXY": "2",
        }
    )
    assert (s.rate_limiter_enabled, s.rate_limiter_points, s.rate_limiter_duration_ms) == (True, 20, 2000)
    assert (s.auth_login_attempts, s.ip_trust_proxy) == (5, 2)
