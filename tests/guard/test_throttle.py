"""The app-wide rate limiters (Directus's ``RATE_LIMITER_*`` and ``RATE_LIMITER_GLOBAL_*``):
every request the middleware sees is counted, through both shells, in memory or in Redis;
WebSocket frames are counted per connection."""

from __future__ import annotations

import json
import logging
import math
from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers.auth import NOW, Clock
from tests.security.harness import SECRET, Reply, Shell, make_core, make_shell
from tokenguard.config import Settings
from tokenguard.errors import ConfigError, _ms_format
from tokenguard.flow import run_sync
from tokenguard.guard.limits import GLOBAL_KEY, Limits, MemoryCounter, TooManyRequests

KINDS = ["asgi", "wsgi"]
MINUTE = {"rate_limiter_duration_ms": 60_000}
UNREACHABLE = (
    b'{"errors":[{"message":"Service \\"authentication\\" is unavailable. Rate limiter unreachable.",'
    b'"extensions":{"service":"authentication","reason":"Rate limiter unreachable","code":"SERVICE_UNAVAILABLE"}}]}'
)
OK = b"app None public"


def get(shell: Shell, path: str = "/items", **kw: Any) -> Reply:
    return shell.request("GET", path, **kw)


def assert_429(reply: Reply, limit: int, now: float, window_ms: int) -> None:
    """The exact Directus answer: its body, its key order and a ``Retry-After`` that agrees."""
    assert reply.status == 429, (reply.status, reply.body)
    body = reply.json()
    (error,) = body["errors"]
    assert list(body) == ["errors"] and list(error) == ["message", "extensions"]
    assert list(error["extensions"]) == ["limit", "reset", "code"]
    assert error["extensions"]["limit"] == limit
    assert error["extensions"]["code"] == "REQUESTS_EXCEEDED"
    reset = datetime.strptime(error["extensions"]["reset"], "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
    left_ms = round((reset - now) * 1000)
    assert 0 <= left_ms <= window_ms
    assert error["message"] == f"Too many requests, retry after {_ms_format(left_ms)}."
    assert reply.header("retry-after") == str(max(1, math.ceil(left_ms / 1000)))
    assert reply.header("content-type") == "application/json; charset=utf-8"


def clocked(kind: str, **options: Any) -> tuple[Shell, Clock]:
    clock = Clock()
    return Shell(kind, make_core(kind, clock=clock, **options)), clock


# -- the per-address limiter -------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_every_route_counts_and_the_limit_is_exact(kind: str) -> None:
    shell, _ = clocked(kind, rate_limiter_enabled=True, rate_limiter_points=3, **MINUTE)
    assert [get(shell).body for _ in range(2)] == [OK, OK]
    assert shell.request("GET", "/auth").status == 200  # the /auth routes count too
    for path in ("/items", "/auth", "/anything/else?x=1"):
        assert_429(get(shell, path), 3, NOW, 60_000)
    assert_429(shell.request("POST", "/auth/login", json_body={"email": "a@b.c", "password": "x"}), 3, NOW, 60_000)


@pytest.mark.parametrize("kind", KINDS)
def test_off_by_default(kind: str) -> None:
    shell = make_shell(kind, rate_limiter_points=1)
    assert not shell.core.throttles
    assert [get(shell).status for _ in range(5)] == [200] * 5


@pytest.mark.parametrize("kind", KINDS)
def test_a_bad_token_is_counted_and_the_limit_answers_before_the_token_is_read(kind: str) -> None:
    shell, _ = clocked(kind, rate_limiter_enabled=True, rate_limiter_points=2, **MINUTE)
    bad = {"Authorization": "Bearer not-a-token"}
    assert [get(shell, headers=bad).status for _ in range(2)] == [401, 401]
    # Past the limit, guessing tokens costs nothing and tells nothing.
    assert_429(get(shell, headers=bad), 2, NOW, 60_000)
    assert_429(get(shell), 2, NOW, 60_000)


@pytest.mark.parametrize("kind", KINDS)
def test_the_window_ends(kind: str) -> None:
    shell = make_shell(kind, rate_limiter_enabled=True, rate_limiter_points=1, rate_limiter_duration_ms=50)
    assert get(shell).status == 200
    assert get(shell).status == 429
    import time

    time.sleep(0.08)  # a real window: the memory counter reads the monotonic clock
    assert get(shell).status == 200


@pytest.mark.parametrize("kind", KINDS)
def test_addresses_are_counted_apart(kind: str) -> None:
    shell = make_shell(kind, rate_limiter_enabled=True, rate_limiter_points=1, **MINUTE)
    assert get(shell, client="192.0.2.1").status == 200
    assert get(shell, client="192.0.2.1").status == 429
    assert get(shell, client="192.0.2.2").status == 200
    # An IPv4 client on a dual-stack socket is the same client.
    assert get(shell, client="::ffff:192.0.2.2").status == 429


@pytest.mark.parametrize("kind", KINDS)
def test_forwarded_for_counts_only_behind_a_trusted_proxy(kind: str) -> None:
    plain = make_shell(kind, rate_limiter_enabled=True, rate_limiter_points=1, **MINUTE)
    assert get(plain, headers={"X-Forwarded-For": "10.0.0.1"}).status == 200
    assert get(plain, headers={"X-Forwarded-For": "10.0.0.2"}).status == 429  # forged: same peer
    proxied = make_shell(kind, rate_limiter_enabled=True, rate_limiter_points=1, ip_trust_proxy=True, **MINUTE)
    assert get(proxied, headers={"X-Forwarded-For": "6.6.6.6, 10.0.0.1"}).status == 200
    assert get(proxied, headers={"X-Forwarded-For": "7.7.7.7, 10.0.0.1"}).status == 429
    assert get(proxied, headers={"X-Forwarded-For": "10.0.0.2"}).status == 200


def test_a_second_forwarded_for_line_is_read_as_a_continuation() -> None:
    # A proxy that appends its own line: the client's forged first line must not win.
    shell = make_shell("asgi", rate_limiter_enabled=True, rate_limiter_points=1, ip_trust_proxy=True, **MINUTE)
    assert get(shell, headers=[("X-Forwarded-For", "1.1.1.1"), ("X-Forwarded-For", "10.0.0.9")]).status == 200
    assert get(shell, headers=[("X-Forwarded-For", "2.2.2.2"), ("X-Forwarded-For", "10.0.0.9")]).status == 429


@given(forwarded=st.lists(st.text(min_size=0, max_size=40), max_size=4), hops=st.integers(0, 3))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_forwarded_for_is_a_200_or_a_429(forwarded: list[str], hops: int) -> None:
    for kind in KINDS:
        shell = make_shell(kind, rate_limiter_enabled=True, rate_limiter_points=1, ip_trust_proxy=hops, **MINUTE)
        headers = [("X-Forwarded-For", v.encode("latin-1", "replace").decode("latin-1")) for v in forwarded]
        headers = [(k, v.replace("\r", "").replace("\n", "")) for k, v in headers]
        first, second = get(shell, headers=headers), get(shell, headers=headers)
        assert (first.status, first.body) == (200, OK)
        assert second.status == 429 and second.code == "REQUESTS_EXCEEDED"


# -- the global limiter ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_global_limit_counts_every_client_together(kind: str) -> None:
    shell, _ = clocked(
        kind,
        rate_limiter_enabled=True,
        rate_limiter_points=2,
        rate_limiter_global_enabled=True,
        rate_limiter_global_points=3,
        rate_limiter_duration_ms=60_000,
        rate_limiter_global_duration_ms=30_000,
    )
    assert [get(shell, client=f"192.0.2.{i}").status for i in range(3)] == [200, 200, 200]
    # A fresh client, under its own limit, is refused by the global one (its limit is shown).
    assert_429(get(shell, client="192.0.2.50"), 3, NOW, 30_000)


def test_global_limit_counts_requests_without_an_address() -> None:
    limits = Limits(
        Settings(
            secret=SECRET, rate_limiter_enabled=True, rate_limiter_global_enabled=True, rate_limiter_global_points=100
        ),
        MemoryCounter(),
    )
    for _ in range(100):
        run_sync(limits.check_request(None))
    with pytest.raises(TooManyRequests) as caught:
        run_sync(limits.check_request(None))
    assert caught.value.extensions["limit"] == 100 and caught.value.first
    assert GLOBAL_KEY == "global-rate-limit"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rate_limiter_global_enabled": True}, "RATE_LIMITER_GLOBAL_ENABLED needs RATE_LIMITER_ENABLED=true"),
        (
            {"rate_limiter_enabled": True, "rate_limiter_global_enabled": True, "rate_limiter_global_points": 50},
            "RATE_LIMITER_GLOBAL_POINTS/_DURATION must allow more requests per second than "
            "RATE_LIMITER_POINTS/_DURATION",
        ),
        (
            {
                "rate_limiter_enabled": True,
                "rate_limiter_global_enabled": True,
                "rate_limiter_global_points": 100,
                "rate_limiter_global_duration_ms": 3_000,
            },
            "RATE_LIMITER_GLOBAL_POINTS/_DURATION must allow more requests per second than "
            "RATE_LIMITER_POINTS/_DURATION",
        ),
        ({"rate_limiter_global_points": 0}, "RATE_LIMITER_GLOBAL_POINTS and RATE_LIMITER_GLOBAL_DURATION must be positive"),
    ],
)
def test_global_settings_are_checked_at_startup(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings(secret=SECRET, **options)
    assert str(caught.value) == message


def test_settings_from_directus_env_names() -> None:
    s = Settings.from_env(
        {
            "SECRET": SECRET,
            "RATE_LIMITER_ENABLED": "true",
            "RATE_LIMITER_POINTS": "20",
            "RATE_LIMITER_DURATION": "2",
            "RATE_LIMITER_GLOBAL_ENABLED": "true",
            "RATE_LIMITER_GLOBAL_POINTS": "500",
            "RATE_LIMITER_GLOBAL_DURATION": "0.5",
        }
    )
    assert (s.rate_limiter_enabled, s.rate_limiter_points, s.rate_limiter_duration_ms) == (True, 20, 2_000)
    assert (s.rate_limiter_global_enabled, s.rate_limiter_global_points) == (True, 500)
    assert s.rate_limiter_global_duration_ms == 500
    defaults = Settings(secret=SECRET)
    assert (defaults.rate_limiter_global_enabled, defaults.rate_limiter_global_points) == (False, 1_000)
    assert defaults.rate_limiter_global_duration_ms == 1_000


# -- audit, logs, query tokens -----------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_one_audit_record_per_window_not_per_refusal(kind: str, caplog: pytest.LogCaptureFixture) -> None:
    shell = make_shell(kind, rate_limiter_enabled=True, rate_limiter_points=1, **MINUTE)
    with caplog.at_level(logging.INFO, logger="tokenguard.audit"):
        statuses = [get(shell, headers={"User-Agent": "flood/1.0"}).status for _ in range(20)]
    assert statuses == [200] + [429] * 19
    records = [json.loads(r.getMessage()) for r in caplog.records if r.name == "tokenguard.audit"]
    assert [(r["event"], r["outcome"], r["reason"], r["ip"], r["user_agent"]) for r in records] == [
        ("throttle", "blocked", "REQUESTS_EXCEEDED", "203.0.113.7", "flood/1.0")
    ]


@pytest.mark.parametrize("kind", KINDS)
def test_a_refused_request_has_its_query_token_stripped_too(kind: str) -> None:
    seen: list[str] = []
    shell = make_shell(kind, rate_limiter_enabled=True, rate_limiter_points=1, strip_query_token=True, **MINUTE)
    inner = shell.app

    if kind == "asgi":

        async def spy(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await inner(scope, receive, send)
            seen.append(scope["query_string"].decode())

        shell.app = spy
    else:

        def wspy(environ: dict[str, Any], start_response: Any) -> Any:
            try:
                return inner(environ, start_response)
            finally:
                seen.append(environ["QUERY_STRING"])

        shell.app = wspy
    assert get(shell).status == 200
    assert get(shell, path="/items?access_token=tg-secret-token-value&page=2").status == 429
    assert seen[-1] == "page=2"


# -- Redis: one count for every process, and fail closed --------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_redis_counts_are_shared_between_shells(kind: str, redis_url: str, redis_prefix: str) -> None:
    options: dict[str, Any] = {
        "redis_url": redis_url,
        "redis_prefix": redis_prefix,
        "rate_limiter_store": "redis",
        "rate_limiter_enabled": True,
        "rate_limiter_points": 4,
        **MINUTE,
    }
    other = "wsgi" if kind == "asgi" else "asgi"
    one, two = make_shell(kind, **options), make_shell(other, **options)
    assert [get(s).status for s in (one, two, one, two)] == [200] * 4
    assert get(one).status == 429 and get(two).status == 429
    assert get(two, client="192.0.2.77").status == 200


@pytest.mark.parametrize("kind", KINDS)
def test_redis_down_fails_closed_on_every_route_and_recovers(kind: str, private_redis: Any) -> None:
    shell = Shell(
        kind,
        make_core(
            kind,
            redis_url=private_redis.url,
            rate_limiter_store="redis",
            rate_limiter_enabled=True,
            rate_limiter_points=1_000,
        ),
    )
    assert get(shell).status == 200
    private_redis.stop()
    for path in ("/items", "/auth", "/items?access_token=x"):
        reply = get(shell, path)
        assert (reply.status, reply.body) == (503, UNREACHABLE)
        assert b"app " not in reply.body
    private_redis.start()
    statuses = []
    for _ in range(4):
        statuses.append(get(shell).status)
        if statuses[-1] == 200:
            break
    assert statuses[-1] == 200 and set(statuses) <= {200, 503}, statuses


# -- WebSocket frames, per connection ---------------------------------------------------------


def test_websocket_frames_are_limited_per_connection() -> None:
    from tests.http.test_realtime import World, drive, sent

    world = World(mode="public", rate_limiter_enabled=True, rate_limiter_points=3, rate_limiter_duration_ms=1_000)
    conn, other = world.conn(), world.conn()
    drive(conn.connect(None, "", None))
    drive(other.connect(None, "", None))
    replies = [drive(conn.message(json.dumps({"type": "ping", "uid": i}))) for i in range(5)]
    assert [sent(r) for r in replies[:3]] == [[{"type": "pong", "uid": i}] for i in range(3)]
    refused = {
        "type": "server",
        "status": "error",
        "error": {"code": "REQUESTS_EXCEEDED", "message": "Too many messages, retry after 1000ms."},
    }
    assert sent(replies[3]) == sent(replies[4]) == [refused]
    # Dropped: an app frame over the limit is not delivered either.
    assert sent(drive(conn.message('{"type":"subscribe"}'))) == [refused]
    # Another socket has a count of its own; the window ends on the clock.
    assert sent(drive(other.message('{"type":"ping"}'))) == [{"type": "pong"}]
    world.clock.advance(0.4)
    assert sent(drive(conn.message('{"type":"ping"}')))[0]["error"]["message"] == (
        "Too many messages, retry after 600ms."
    )
    world.clock.advance(0.6)
    assert sent(drive(conn.message('{"type":"ping"}'))) == [{"type": "pong"}]


def test_websocket_frames_are_not_limited_when_off() -> None:
    from tests.http.test_realtime import World, drive, sent

    world = World(mode="public", rate_limiter_points=1)
    conn = world.conn()
    drive(conn.connect(None, "", None))
    assert [sent(drive(conn.message('{"type":"ping"}'))) for _ in range(5)] == [[{"type": "pong"}]] * 5


@pytest.mark.parametrize("on", [True, False])
def test_the_openapi_document_lists_the_429_where_it_can_happen(on: bool) -> None:
    from tokenguard.http.openapi import build_document

    core = make_core("wsgi", rate_limiter_enabled=on)
    paths = build_document(core.router)["paths"]
    assert "429" in paths["/auth/login"]["post"]["responses"]  # the per-account limit, always
    assert ("429" in paths["/auth"]["get"]["responses"]) is on
    if on:
        assert paths["/auth"]["get"]["responses"]["429"]["headers"]["Retry-After"]
