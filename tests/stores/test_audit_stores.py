"""Audit stores (memory, SQLite, real Redis and PostgreSQL, sync and async): newest first,
filters, the cap, the settings that choose one, and StoreUnavailable when the backend is down."""

from __future__ import annotations

import functools
import socket
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import anyio
import pytest
import redis
import redis.asyncio

from tests.helpers.auth import SECRET
from tokenguard.config import ConfigError, Settings
from tokenguard.logs.audit import AuditEvent
from tokenguard.stores.audit import (
    AsyncRedisAuditStore,
    MemoryAuditStore,
    RedisAuditStore,
    SQLiteAuditStore,
)
from tokenguard.stores.base import StoreUnavailable
from tokenguard.stores.postgres import AsyncPgAuditStore, PgAuditStore
from tokenguard.stores.select import audit_store as audit_store_for

from .conftest import open_pg_store


def event(i: int, user: str = "u1", name: str = "login") -> AuditEvent:
    return AuditEvent(
        event=name,
        outcome="success" if i % 2 else "failure",
        timestamp=f"2027-01-15T08:00:{i:02d}.000Z",
        user_id=user,
        ip="203.0.113.7",
        user_agent="ua é",
        origin=None,
        provider="default",
        reason=None if i % 2 else "INVALID_CREDENTIALS",
    )


class PerLoop:
    """An async store seen through a sync interface (one event loop and one client per
    call), so that one test body covers all four stores."""

    def __init__(self, fresh: Callable[[], AsyncRedisAuditStore]) -> None:
        self.fresh = fresh

    def _run(self, call: Callable[[AsyncRedisAuditStore], Any]) -> Any:
        async def go() -> Any:
            store = self.fresh()
            try:
                return await call(store)
            finally:
                await store.client.aclose()

        return anyio.run(go)

    def append(self, e: AuditEvent) -> None:
        self._run(lambda store: store.append(e))

    def recent(self, limit: int = 50, **kw: Any) -> list[AuditEvent]:
        return self._run(lambda store: store.recent(limit, **kw))  # type: ignore[no-any-return]


@pytest.fixture(params=["memory", "sqlite", "redis", "redis-async", "pg", "pg-async"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[int], Any]]:
    kind = request.param
    closers: list[Callable[[], None]] = []
    stack = ExitStack()
    closers.append(stack.close)
    if kind.startswith("pg"):
        request.applymarker(pytest.mark.pg)

    def build(cap: int) -> Any:
        if kind == "memory":
            return MemoryAuditStore(cap)
        if kind.startswith("pg"):
            conninfo = request.getfixturevalue("pg_conninfo")
            return open_pg_store(
                kind,
                stack,
                functools.partial(PgAuditStore, max_events=cap),
                functools.partial(AsyncPgAuditStore, max_events=cap),
                conninfo,
            )
        if kind == "sqlite":
            store = SQLiteAuditStore(str(tmp_path / f"audit{cap}.db"), max_events=cap)
            closers.append(store.close)
            return store
        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix") + f"{cap}:"
        if kind == "redis":
            client = redis.Redis.from_url(url)
            closers.append(client.close)
            return RedisAuditStore(client, prefix=prefix, max_events=cap)

        def fresh() -> AsyncRedisAuditStore:
            return AsyncRedisAuditStore(redis.asyncio.Redis.from_url(url), prefix=prefix, max_events=cap)

        return PerLoop(fresh)

    yield build
    for close in closers:
        close()


def test_newest_first_filters_and_cap(make: Callable[[int], Any]) -> None:
    store = make(5)
    for i in range(7):
        store.append(event(i, user="u1" if i % 3 else "u2", name="refresh" if i == 6 else "login"))
    # Only the newest five are kept (2..6), newest first.
    assert store.recent(50) == [
        event(6, "u2", "refresh"), event(5, "u1"), event(4, "u1"), event(3, "u2"), event(2, "u1"),
    ]
    assert store.recent(2) == [event(6, "u2", "refresh"), event(5, "u1")]
    assert store.recent(50, user_id="u2") == [event(6, "u2", "refresh"), event(3, "u2")]
    assert store.recent(50, event="refresh") == [event(6, "u2", "refresh")]
    assert store.recent(1, user_id="u1", event="login") == [event(5, "u1")]
    assert store.recent(50, user_id="nobody") == []
    with pytest.raises(ValueError):
        store.recent(0)


def test_settings_choose_the_store(tmp_path: Path, redis_url: str, redis_prefix: str) -> None:
    assert audit_store_for(Settings(secret=SECRET)) is None
    assert isinstance(audit_store_for(Settings(secret=SECRET, audit_store="memory")), MemoryAuditStore)
    db = str(tmp_path / "a.db")
    sqlite_store = audit_store_for(Settings(secret=SECRET, audit_store="sqlite", db_filename=db))
    assert isinstance(sqlite_store, SQLiteAuditStore) and sqlite_store.filename == db
    s = Settings.from_env(
        {"SECRET": SECRET, "TOKENGUARD_AUDIT_STORE": "redis", "REDIS": redis_url,
         "TOKENGUARD_REDIS_PREFIX": redis_prefix, "TOKENGUARD_AUDIT_MAX_EVENTS": "3"}
    )
    sync_store = audit_store_for(s)
    assert isinstance(sync_store, RedisAuditStore)
    assert (sync_store.key, sync_store.max_events) == (redis_prefix + "audit", 3)
    assert isinstance(audit_store_for(s, "async"), AsyncRedisAuditStore)
    sync_store.append(event(1))
    assert redis.Redis.from_url(redis_url).lrange(redis_prefix + "audit", 0, -1) == [event(1).to_json().encode()]
    for bad, message in (
        ({"audit_store": "file"}, "TOKENGUARD_AUDIT_STORE must be"),
        ({"audit_store": "sqlite"}, "needs DB_FILENAME"),
        ({"audit_store": "redis"}, "needs REDIS"),
        ({"audit_max_events": 0}, "TOKENGUARD_AUDIT_MAX_EVENTS"),
    ):
        with pytest.raises(ConfigError, match=message):
            Settings(secret=SECRET, **bad)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_backends_raise_store_unavailable(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    store = RedisAuditStore.from_url(url)
    with pytest.raises(StoreUnavailable):
        store.append(event(1))
    with pytest.raises(StoreUnavailable):
        store.recent()
    directory = tmp_path / "not-a-db"
    directory.mkdir()
    with pytest.raises(StoreUnavailable):
        SQLiteAuditStore(str(directory)).append(event(1))


def test_foreign_entries_in_the_redis_list_are_skipped(redis_url: str, redis_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    store = RedisAuditStore(client, prefix=redis_prefix)
    store.append(event(1))
    client.lpush(redis_prefix + "audit", b"not json", b"[1]")
    assert store.recent() == [event(1)]
    client.close()
