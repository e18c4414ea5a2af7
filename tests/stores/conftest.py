"""Every session backend behind one synchronous face, for the shared contract suite.

The async Redis store runs on an event loop in a helper thread (an anyio blocking portal), so
the same test bodies — including the multi-threaded ones — drive it through real awaits.
"""

from __future__ import annotations

import functools
import secrets
import string
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from tokenguard.stores.base import SessionRecord, refresh_token_key
from tokenguard.stores.memory import MemorySessionStore, MemoryUserStore
from tokenguard.stores.postgres import (
    AsyncPgSessionStore,
    AsyncPgUserStore,
    PgSessionStore,
    PgUserStore,
)
from tokenguard.stores.redis import AsyncRedisSessionStore, RedisSessionStore
from tokenguard.stores.sqlite import SQLiteSessionStore, SQLiteUserStore

# Marks on the parameters (not applied at run time) so that `-m "not pg and not sqlalchemy"`
# deselects the optional drivers where their extras are not installed (scripts/core-tests.txt).
_PG = [pytest.param(name, marks=pytest.mark.pg) for name in ("pg", "pg-async")]
_REDIS = [pytest.param(name, marks=pytest.mark.redis) for name in ("redis", "redis-async")]
_SQLALCHEMY = [
    pytest.param(name, marks=pytest.mark.sqlalchemy) for name in ("sqlalchemy", "sqlalchemy-async")
]
SESSION_BACKENDS = ["memory", "sqlite", *_REDIS, *_PG]
USER_BACKENDS = ["memory", "sqlite", *_SQLALCHEMY, *_PG]

_ALPHABET = string.ascii_letters + string.digits + "_-"


def new_token(family: str | None = None) -> str:
    """A 64-character refresh token, optionally in an existing family."""
    token = "".join(secrets.choice(_ALPHABET) for _ in range(64))
    return token if family is None else family + token[len(family) :]


def record(
    token: str,
    *,
    user_id: str = "user-1",
    expires_at_ms: int,
    created_at_ms: int = 0,
    **extra: Any,
) -> SessionRecord:
    """A record for ``token`` (its hash and family derived the way the core does)."""
    key = refresh_token_key(token)
    return SessionRecord(
        token_hash=key,
        family=key.partition(".")[0],
        user_id=user_id,
        expires_at_ms=expires_at_ms,
        created_at_ms=created_at_ms,
        **extra,
    )


def real_now_ms() -> int:
    # Redis expires keys on its own (real) clock, so test clocks start at the real time and
    # only move forward; records always expire in the future of the real clock.
    return int(time.time() * 1000)


class PortalStore:
    """Calls an async store's coroutine methods synchronously on a portal's event loop."""

    def __init__(self, store: Any, portal: BlockingPortal) -> None:
        self.store = store
        self.portal = portal

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.store, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return self.portal.call(functools.partial(method, *args, **kwargs))

        return call


def open_session_store(
    backend: str,
    stack: ExitStack,
    directory: Path,
    redis_url: str | None,
    prefix: str | None,
    pg_conninfo: str | None = None,
) -> Any:
    """A fresh store of ``backend``, closed when ``stack`` closes."""
    if backend == "memory":
        return MemorySessionStore()
    if backend == "sqlite":
        sqlite_store = SQLiteSessionStore(directory / "sessions.db")
        stack.callback(sqlite_store.close)
        return sqlite_store
    if backend.startswith("pg"):
        assert pg_conninfo is not None
        return open_pg_store(backend, stack, PgSessionStore, AsyncPgSessionStore, pg_conninfo)
    assert redis_url is not None and prefix is not None
    if backend == "redis":
        redis_store = RedisSessionStore.from_url(redis_url, prefix=prefix)
        stack.callback(redis_store.close)
        return redis_store
    if backend == "redis-async":
        portal = stack.enter_context(start_blocking_portal())
        async_store = AsyncRedisSessionStore.from_url(redis_url, prefix=prefix)
        stack.callback(portal.call, async_store.aclose)
        return PortalStore(async_store, portal)
    raise AssertionError(backend)


def open_pg_store(
    backend: str, stack: ExitStack, sync_cls: Any, async_cls: Any, conninfo: str
) -> Any:
    """A PostgreSQL store (``pg``: sync; ``pg-async``: async, driven through a portal)."""
    if backend == "pg":
        store = sync_cls(conninfo)
        stack.callback(store.close)
        return store
    portal = stack.enter_context(start_blocking_portal())
    async_store = async_cls(conninfo)
    stack.callback(portal.call, async_store.aclose)
    return PortalStore(async_store, portal)


@pytest.fixture(params=SESSION_BACKENDS)
def session_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def sessions(session_backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A session store of every backend in turn."""
    url = prefix = conninfo = None
    if session_backend.startswith("redis"):
        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")
    if session_backend.startswith("pg"):
        conninfo = request.getfixturevalue("pg_conninfo")
    with ExitStack() as stack:
        yield open_session_store(session_backend, stack, tmp_path, url, prefix, conninfo)


@pytest.fixture(params=USER_BACKENDS)
def users(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A user store of every backend in turn."""
    if request.param == "memory":
        yield MemoryUserStore()
        return
    if request.param.startswith("sqlalchemy"):
        with ExitStack() as stack:
            yield open_sqlalchemy_users(request.param == "sqlalchemy-async", stack, tmp_path)
        return
    if request.param.startswith("pg"):
        conninfo = request.getfixturevalue("pg_conninfo")
        with ExitStack() as stack:
            yield open_pg_store(request.param, stack, PgUserStore, AsyncPgUserStore, conninfo)
        return
    store = SQLiteUserStore(tmp_path / "users.db")
    yield store
    store.close()


def open_sqlalchemy_users(use_async: bool, stack: ExitStack, directory: Path) -> Any:
    """A user store over tests.helpers.sqla_models.Account in a fresh SQLite file, through
    the bridge's sync store or (over aiosqlite, on a portal's event loop) its async one."""
    from sqlalchemy import create_engine

    from tests.helpers.sqla_models import ACCOUNT_COLUMNS, Account, Base
    from tokenguard.stores.sqlalchemy import sqlalchemy_users

    url = f"sqlite:///{directory / 'accounts.db'}"
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    if not use_async:
        stack.callback(engine.dispose)
        return sqlalchemy_users(Account, engine, **ACCOUNT_COLUMNS)
    engine.dispose()
    from sqlalchemy.ext.asyncio import create_async_engine

    portal = stack.enter_context(start_blocking_portal())
    async_engine = portal.call(create_async_engine, url.replace("sqlite:", "sqlite+aiosqlite:"))
    stack.callback(portal.call, async_engine.dispose)
    return PortalStore(sqlalchemy_users(Account, async_engine, **ACCOUNT_COLUMNS), portal)


@pytest.fixture
def now() -> int:
    return real_now_ms()
