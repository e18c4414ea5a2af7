"""stores/select: every backend chosen from Settings, and a store passed in recognised by its
type (a subclass anywhere counts; a look-alike named like one does not)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
import redis
import redis.asyncio

from tests.helpers.auth import SECRET
from tokenguard.config import Settings
from tokenguard.stores import select
from tokenguard.stores.audit import (
    AsyncRedisAuditStore,
    MemoryAuditStore,
    RedisAuditStore,
    SQLiteAuditStore,
)
from tokenguard.stores.counters import AsyncRedisCounter, MemoryCounter, RedisCounter
from tokenguard.stores.memory import MemorySessionStore, MemoryUserStore
from tokenguard.stores.once import (
    AsyncRedisOnceStore,
    MemoryOnceStore,
    RedisOnceStore,
    SQLiteOnceStore,
)
from tokenguard.stores.redis import AsyncRedisSessionStore, RedisSessionStore
from tokenguard.stores.sqlite import SQLiteSessionStore, SQLiteUserStore

# Nothing listens here: choosing a backend must not connect to it.
URL = "redis://127.0.0.1:1/0"


def settings(**changes: Any) -> Settings:
    return Settings(secret=SECRET, **changes)


class MyRedisSessions(RedisSessionStore):
    """A subclass in another module: still a Redis session store."""


class RedisSessionStoreLookalike(MemorySessionStore):
    """Named like a Redis store, with a client, but not one."""

    def __init__(self) -> None:
        super().__init__()
        self.client = redis.Redis.from_url(URL)


def test_users_and_sessions_follow_the_database_settings(tmp_path: Path) -> None:
    users, sessions = select.stores(settings())
    assert isinstance(users, MemoryUserStore) and isinstance(sessions, MemorySessionStore)
    db = str(tmp_path / "t.db")
    users, sessions = select.stores(settings(db_filename=db))
    assert isinstance(users, SQLiteUserStore) and isinstance(sessions, SQLiteSessionStore)
    users, sessions = select.stores(settings(db_filename=db, redis_url=URL, redis_prefix="p:"))
    assert isinstance(users, SQLiteUserStore) and type(sessions) is RedisSessionStore
    assert sessions.family_key("f").startswith("p:")
    sessions.close()
    _, sessions = select.stores(settings(redis_url=URL), "async")
    assert type(sessions) is AsyncRedisSessionStore
    anyio.run(sessions.aclose)


def test_the_one_time_store_sits_next_to_the_sessions(tmp_path: Path) -> None:
    s = settings(redis_prefix="p:")
    sync_sessions = MyRedisSessions(redis.Redis.from_url(URL))
    once = select.once_store(s, sync_sessions)
    assert isinstance(once, RedisOnceStore) and once.client is sync_sessions.client
    assert once.prefix == "p:once:"
    async_sessions = AsyncRedisSessionStore(redis.asyncio.Redis.from_url(URL))
    once_async = select.once_store(s, async_sessions)
    assert isinstance(once_async, AsyncRedisOnceStore)
    assert once_async.client is async_sessions.client
    # by type, not by name: the look-alike gets the store of the settings
    assert isinstance(select.once_store(s, RedisSessionStoreLookalike()), MemoryOnceStore)
    db = str(tmp_path / "t.db")
    assert isinstance(select.once_store(settings(db_filename=db), MemorySessionStore()), SQLiteOnceStore)
    assert isinstance(select.once_store(s, MemorySessionStore()), MemoryOnceStore)


def test_the_audit_store_shares_a_redis_client_of_its_own_flavour(tmp_path: Path) -> None:
    assert select.audit_store(settings()) is None
    assert isinstance(select.audit_store(settings(audit_store="memory")), MemoryAuditStore)
    db = str(tmp_path / "a.db")
    sqlite_store = select.audit_store(settings(audit_store="sqlite", db_filename=db))
    assert isinstance(sqlite_store, SQLiteAuditStore)
    s = settings(audit_store="redis", redis_url=URL, audit_max_events=7)
    sync_sessions = MyRedisSessions(redis.Redis.from_url(URL))
    shared = select.audit_store(s, "sync", sync_sessions)
    assert isinstance(shared, RedisAuditStore) and shared.client is sync_sessions.client
    assert (shared.owns_client, shared.max_events) == (False, 7)
    # a sync session store cannot lend its client to an async app, nor a look-alike at all
    own = select.audit_store(s, "async", sync_sessions)
    assert isinstance(own, AsyncRedisAuditStore) and own.owns_client
    anyio.run(own.aclose)
    other = select.audit_store(s, "sync", RedisSessionStoreLookalike())
    assert isinstance(other, RedisAuditStore) and other.owns_client
    other.close()


def test_the_counter_follows_rate_limiter_store() -> None:
    assert isinstance(select.counter(settings()), MemoryCounter)
    assert isinstance(select.counter(settings(redis_url=URL)), MemoryCounter)
    s = settings(redis_url=URL, rate_limiter_store="redis", redis_prefix="p:")
    sync_counter = select.counter(s)
    assert type(sync_counter) is RedisCounter and sync_counter.prefix == "p:rl:"
    sync_counter.close()
    async_counter = select.counter(s, "async")
    assert type(async_counter) is AsyncRedisCounter
    anyio.run(async_counter.aclose)


def test_invalidation_applies_to_redis_session_stores() -> None:
    sync_sessions = MyRedisSessions(redis.Redis.from_url(URL))
    assert select.invalidation_source(settings(), MemorySessionStore()) is None
    assert select.invalidation_source(settings(), RedisSessionStoreLookalike()) is None
    # With session caching off the channel still carries revocations (issue 28).
    assert select.invalidation_source(settings(session_cache_ttl_ms=0), sync_sessions) is not None
    assert select.invalidation_source(settings(token_cache_size=0), sync_sessions) is not None
    # no URL: the subscriber borrows the sync store's client, and leaves it to its owner
    source = select.invalidation_source(settings(), sync_sessions)
    assert source is not None and source.channel == sync_sessions.channel
    assert source.connect() is sync_sessions.client and not source.owns_client
    def listener(families: Any) -> None:
        pass

    source.listen(listener)
    assert sync_sessions.listeners == [listener]
    # an async client without a URL: the thread gets a synchronous twin of it (same server,
    # database and credentials), kept for reconnections
    async_sessions = AsyncRedisSessionStore(redis.asyncio.Redis.from_url(URL))
    source = select.invalidation_source(settings(), async_sessions)
    assert source is not None and source.channel == async_sessions.channel
    twin = source.connect()
    assert isinstance(twin, redis.Redis) and twin is source.connect()
    wanted = async_sessions.client.connection_pool.connection_kwargs
    got = twin.connection_pool.connection_kwargs
    assert (got["host"], got["port"], got.get("db")) == (wanted["host"], wanted["port"], wanted.get("db"))
    twin.close()  # (URL names no server: the twin's reach is shown by the test_invalidation suite)
    # with a URL the subscriber makes (and owns) its own client, in either flavour
    source = select.invalidation_source(settings(redis_url=URL), async_sessions)
    assert source is not None and source.owns_client and source.still_master is None
    # the window of revocations: users in rv, sessions in rvs, each kept for its own time
    assert (source.revocations_key, source.session_revocations_key) == ("tokenguard:rv", "tokenguard:rvs")
    assert source.set_window is not None
    source.set_window(86_405_000, 905_000)
    assert (async_sessions.revocation_window_ms, async_sessions.session_revocation_window_ms) == (
        86_405_000,
        905_000,
    )


def test_stores_keep_revocations_for_the_windows_of_the_settings(tmp_path: Path) -> None:
    # A process without a feed (the command line) writes and prunes the window too: with the
    # app's windows, never the store's defaults (a session kept shorter than an access token
    # lives would let a catching-up process accept it).
    hour, week = 3_600_000, 7 * 86_400_000
    for redis_url in ("", URL):
        chosen = settings(
            db_filename=str(tmp_path / "w.db"),
            redis_url=redis_url,
            access_token_ttl_ms=hour,
            session_cookie_ttl_ms=week,
            leeway_ms=2_000,
        )
        _, sessions = select.stores(chosen)
        assert isinstance(sessions, SQLiteSessionStore if not redis_url else RedisSessionStore)
        assert (sessions.revocation_window_ms, sessions.session_revocation_window_ms) == (  # type: ignore[attr-defined]
            week + 2_000,
            hour + 2_000,
        )
        select.release_unused(sessions)
    # defaults: Directus's lifetimes (1 day, 15 minutes) and a 5 s leeway
    _, sessions = select.stores(settings(db_filename=str(tmp_path / "d.db")))
    assert (sessions.revocation_window_ms, sessions.session_revocation_window_ms) == (86_405_000, 905_000)  # type: ignore[attr-defined]
    select.release_unused(sessions)
    select.set_revocation_windows(MemorySessionStore(), 1, 1)  # no window: nothing to set


@pytest.mark.parametrize("made", ["discard", "close"])
def test_an_unused_default_store_is_released(made: str) -> None:
    calls: list[str] = []

    class Store:
        def close(self) -> None:
            calls.append("close")

    class Pooled(Store):
        def discard(self) -> None:
            calls.append("discard")

    select.release_unused(Pooled() if made == "discard" else Store())
    assert calls == [made]


def test_revocation_feeds_apply_to_pg_and_sqlite_file_stores(tmp_path: Any) -> None:
    from tokenguard.stores.postgres import AsyncPgSessionStore, PgSessionStore
    from tokenguard.stores.sqlite import SQLiteSessionStore

    conninfo = "host=127.0.0.1 port=1 dbname=nothing"  # nothing is opened
    for store in (PgSessionStore(conninfo), AsyncPgSessionStore(conninfo)):
        source = select.revocation_source(store)
        assert source is not None and (source.kind, source.conninfo) == ("pg", conninfo)
        source.set_window(1234, 567)
        assert (store.revocation_window_ms, store.session_revocation_window_ms) == (1234, 567)
        store.discard()
    on_file = SQLiteSessionStore(tmp_path / "s.db")
    source = select.revocation_source(on_file)
    assert source is not None and source.kind == "sqlite"
    source.set_window(1234, 567)
    assert (on_file.revocation_window_ms, on_file.session_revocation_window_ms) == (1234, 567)
    on_file.close()
    # one process only: nothing to feed
    assert select.revocation_source(SQLiteSessionStore(":memory:")) is None
    assert select.revocation_source(MemorySessionStore()) is None
    assert select.revocation_source(MyRedisSessions(redis.Redis.from_url(URL))) is None
