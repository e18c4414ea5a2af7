"""Which backend each store uses: decided here, once, from :class:`~tokenguard.config.Settings`.

Every store the app, the extras and the command line need is chosen by one function of this
module, from the settings and the flavour (``"sync"`` for WSGI and the command line,
``"async"`` for ASGI):

- :func:`stores` — users and sessions, the way Directus chooses: PostgreSQL when
  ``DB_CLIENT=pg``, the SQLite file ``DB_FILENAME`` when set, memory otherwise; sessions in
  Redis whenever ``REDIS`` is set;
- :func:`once_store` — the one-time store (used TOTP steps, used reset tokens), next to the
  session store: on its Redis client or PostgreSQL pool, else ``DB_FILENAME``, else memory;
- :func:`audit_store` — ``TOKENGUARD_AUDIT_STORE`` (on the session store's connection when
  it can share one);
- :func:`counter` — the rate-limit counter of ``RATE_LIMITER_STORE``;
- :func:`invalidation_source` — whether session checks may be cached and invalidated across
  processes (Redis session stores only), and over which connection;
- :func:`revocation_source` — how a PostgreSQL or SQLite session store tells every process
  of revoked access tokens (``LISTEN``/``NOTIFY``, or a poller on the shared file).

A store passed in by the caller is recognised by its type (``isinstance``), never by the
name of its class or module. Backends are imported only when chosen, so that choosing
memory imports neither redis-py nor the PostgreSQL modules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, overload

if TYPE_CHECKING:
    from ..config import Settings
    from ..logs.audit import AsyncAuditStore, AuditStore
    from .base import (
        AsyncOnceStore,
        AsyncSessionStore,
        AsyncUserStore,
        OnceStore,
        SessionStore,
        UserStore,
    )
    from .counters import Counter
    from .redis import AsyncRedisSessionStore, RedisSessionStore

__all__ = [
    "Flavour",
    "InvalidationSource",
    "RevocationSource",
    "audit_store",
    "counter",
    "invalidation_source",
    "once_store",
    "revocation_source",
    "release_unused",
    "set_revocation_windows",
    "stores",
]

#: ``"sync"`` (WSGI, the command line) or ``"async"`` (ASGI): which client a backend gets.
Flavour = Literal["sync", "async"]


@overload
def stores(
    settings: Settings, flavour: Literal["sync"] = "sync"
) -> tuple[UserStore, SessionStore]: ...
@overload
def stores(
    settings: Settings, flavour: Literal["async"]
) -> tuple[AsyncUserStore, AsyncSessionStore]: ...
@overload
def stores(
    settings: Settings, flavour: Flavour
) -> tuple[UserStore | AsyncUserStore, SessionStore | AsyncSessionStore]: ...
def stores(
    settings: Settings, flavour: Flavour = "sync"
) -> tuple[UserStore | AsyncUserStore, SessionStore | AsyncSessionStore]:
    """The user and session stores: ``REDIS`` for sessions when set, PostgreSQL when
    ``DB_CLIENT=pg``, the SQLite file ``DB_FILENAME`` when set, memory otherwise."""
    users: UserStore | AsyncUserStore
    sessions: SessionStore | AsyncSessionStore
    if settings.db_client == "pg":
        from .postgres import pg_stores

        users, sessions = pg_stores(settings, flavour)
    elif settings.db_filename:
        from .sqlite import SQLiteSessionStore, SQLiteUserStore, warn_if_unwritable

        warn_if_unwritable(settings.db_filename)
        users = SQLiteUserStore(settings.db_filename)
        sessions = SQLiteSessionStore(settings.db_filename)
    else:
        from .memory import MemorySessionStore, MemoryUserStore

        users = MemoryUserStore()
        sessions = MemorySessionStore()
    if settings.redis_url:
        from .redis import AsyncRedisSessionStore, RedisSessionStore

        session_class = AsyncRedisSessionStore if flavour == "async" else RedisSessionStore
        sessions = session_class.from_url(settings.redis_url, prefix=settings.redis_prefix)
        from .redis_persistence import warn_without_persistence

        warn_without_persistence(settings.redis_url)  # once, at start; not per request
    from ..config.policy import revocation_windows_ms

    # The app's windows, not the store's defaults: a process that writes revocations without
    # a feed (the command line) prunes the window as the servers do, never shorter.
    set_revocation_windows(sessions, *revocation_windows_ms(settings))
    return users, sessions


def set_revocation_windows(sessions: object, user_ms: int, session_ms: int) -> None:
    """Keep ``user_ms`` a user's revocation and ``session_ms`` a session's in the window of
    revocations of ``sessions`` (Redis, PostgreSQL, SQLite; other stores keep none)."""
    if hasattr(sessions, "session_revocation_window_ms"):
        sessions.revocation_window_ms = user_ms  # type: ignore[attr-defined]
        sessions.session_revocation_window_ms = session_ms


def release_unused(store: Any) -> None:
    """Let go of a store :func:`stores` made that the caller does not use.

    Nothing opened it yet (SQLite and Redis connect lazily), so a sync close is enough even
    for async clients; a store sharing a pool with its twin (PostgreSQL) only stops counting
    as its user.
    """
    discard = getattr(store, "discard", None)
    if callable(discard):
        discard()
        return
    close = getattr(store, "close", None)
    if callable(close) and not getattr(store, "aclose", None):
        close()


def _redis_sessions(sessions: object) -> RedisSessionStore | AsyncRedisSessionStore | None:
    from .redis import AsyncRedisSessionStore, RedisSessionStore

    if isinstance(sessions, RedisSessionStore | AsyncRedisSessionStore):
        return sessions
    return None


def once_store(settings: Settings, sessions: object) -> OnceStore | AsyncOnceStore:
    """The one-time store next to ``sessions``: on a Redis session store's client, on a
    PostgreSQL session store's pool (of the session store's flavour), else in the SQLite file
    ``DB_FILENAME``, else in memory."""
    from . import once

    redis_sessions = _redis_sessions(sessions)
    if redis_sessions is not None:
        from .redis import AsyncRedisSessionStore

        if isinstance(redis_sessions, AsyncRedisSessionStore):
            return once.AsyncRedisOnceStore(redis_sessions.client, prefix=settings.redis_prefix)
        return once.RedisOnceStore(redis_sessions.client, prefix=settings.redis_prefix)
    database = getattr(sessions, "db", None)
    if database is not None:
        from .pg_driver import AsyncPgDatabase, PgDatabase

        if isinstance(database, AsyncPgDatabase | PgDatabase):
            from .postgres import AsyncPgOnceStore, PgOnceStore

            if isinstance(database, AsyncPgDatabase):
                return AsyncPgOnceStore(database)
            return PgOnceStore(database)
    if settings.db_filename:
        return once.SQLiteOnceStore(settings.db_filename)
    return once.MemoryOnceStore()


@overload
def audit_store(
    settings: Settings, flavour: Literal["sync"] = "sync", sessions: object = None
) -> AuditStore | None: ...
@overload
def audit_store(
    settings: Settings, flavour: Literal["async"], sessions: object = None
) -> AsyncAuditStore | None: ...
@overload
def audit_store(
    settings: Settings, flavour: Flavour, sessions: object = None
) -> AuditStore | AsyncAuditStore | None: ...
def audit_store(
    settings: Settings, flavour: Flavour = "sync", sessions: object = None
) -> AuditStore | AsyncAuditStore | None:
    """The store ``TOKENGUARD_AUDIT_STORE`` names (``None`` for ``none``). The Redis and
    PostgreSQL stores share the connection of ``sessions`` (any store of that backend and of
    this flavour) when there is one."""
    kind = settings.audit_store
    cap = settings.audit_max_events
    if kind == "memory":
        from .audit import MemoryAuditStore

        return MemoryAuditStore(cap)
    if kind == "pg":
        from .postgres import pg_audit_store

        return pg_audit_store(settings, flavour, sessions)
    if kind == "sqlite" and settings.db_filename:
        from .audit import SQLiteAuditStore

        return SQLiteAuditStore(settings.db_filename, max_events=cap)
    if kind == "redis" and settings.redis_url:
        from .audit import AsyncRedisAuditStore, RedisAuditStore
        from .redis import AsyncRedisSessionStore, RedisSessionStore

        prefix = settings.redis_prefix
        if flavour == "async":
            if isinstance(sessions, AsyncRedisSessionStore):
                return AsyncRedisAuditStore(sessions.client, prefix=prefix, max_events=cap)
            return AsyncRedisAuditStore.from_url(
                settings.redis_url, prefix=prefix, max_events=cap
            )
        if isinstance(sessions, RedisSessionStore):
            return RedisAuditStore(sessions.client, prefix=prefix, max_events=cap)
        return RedisAuditStore.from_url(settings.redis_url, prefix=prefix, max_events=cap)
    return None


def counter(settings: Settings, flavour: Flavour = "sync") -> Counter:
    """The counter ``RATE_LIMITER_STORE`` asks for: Redis (on ``REDIS``) or memory."""
    if settings.rate_limiter_store == "redis" and settings.redis_url:
        from .counters import AsyncRedisCounter, RedisCounter

        counter_class = AsyncRedisCounter if flavour == "async" else RedisCounter
        return counter_class.from_url(settings.redis_url, prefix=settings.redis_prefix)
    from .counters import MemoryCounter

    return MemoryCounter()


@dataclass(frozen=True, slots=True)
class InvalidationSource:
    """Where revocations of a Redis session store are announced, and how to listen.

    :class:`~tokenguard.guard.invalidation.SessionInvalidation` subscribes with ``connect``
    (a synchronous client: its subscriber is a thread in either flavour) to ``channel``, and
    registers its callback with ``listen`` for revocations made in this process.
    """

    connect: Callable[[], Any]
    channel: str
    #: Whether the subscriber closes what ``connect`` returns (a client made for it).
    owns_client: bool
    #: Sentinel only: whether a server is still the master.
    still_master: Callable[[str, int], bool] | None
    listen: Callable[[Callable[[Iterable[str]], None]], None]
    #: The sorted sets holding the current window of revocations (tokenguard.guard.revocation):
    #: users (and sessions written by earlier versions), and sessions.
    revocations_key: str = ""
    session_revocations_key: str = ""
    #: Sets how long the store keeps a user's and a session's revocation in that window
    #: (milliseconds; see :func:`set_revocation_windows`).
    set_window: Callable[[int, int], None] | None = None


def invalidation_source(settings: Settings, sessions: object) -> InvalidationSource | None:
    """An :class:`InvalidationSource` when the session store is a Redis one that a thread can
    listen through (revocations reach every process through it, and session checks may be
    cached when ``TOKENGUARD_SESSION_CACHE_TTL`` and the token cache are on); ``None``
    otherwise."""
    redis_sessions = _redis_sessions(sessions)
    if redis_sessions is None:
        return None
    from .redis import RedisSessionStore, master_check, sync_client, sync_twin

    url = settings.redis_url
    connect: Callable[[], Any]
    still_master: Callable[[str, int], bool] | None = None
    if url:

        def connect() -> Any:
            client, _ = sync_client(
                url, socket_connect_timeout=1.0, socket_timeout=5.0, health_check_interval=2
            )
            return client

        still_master = master_check(url, socket_connect_timeout=1.0, socket_timeout=1.0)
    elif isinstance(redis_sessions, RedisSessionStore):
        client = redis_sessions.client

        def connect() -> Any:
            return client

    else:
        # An asyncio client passed in without a URL: its connections belong to an event
        # loop, so the subscriber thread gets a synchronous twin reaching the same server.
        # One twin, kept: redis-py reconnects by itself, as with a synchronous store.
        twin = sync_twin(redis_sessions.client)
        if twin is None:
            return None
        twin_client, still_master = twin

        def connect() -> Any:
            return twin_client

    return InvalidationSource(
        connect,
        redis_sessions.channel,
        owns_client=bool(url),
        still_master=still_master,
        listen=redis_sessions.listeners.append,
        revocations_key=redis_sessions.revocations_key,
        session_revocations_key=redis_sessions.session_revocations_key,
        set_window=lambda user_ms, session_ms: set_revocation_windows(
            redis_sessions, user_ms, session_ms
        ),
    )


@dataclass(frozen=True, slots=True)
class RevocationSource:
    """How revocations of a PostgreSQL or SQLite session store reach every process (see
    :mod:`tokenguard.guard.feeds`): ``kind`` ``"pg"`` (``LISTEN`` with ``conninfo``) or
    ``"sqlite"`` (a poller on the store's file)."""

    kind: Literal["pg", "sqlite"]
    #: See :attr:`InvalidationSource.set_window`.
    set_window: Callable[[int, int], None]
    conninfo: str = ""


def revocation_source(sessions: object) -> RevocationSource | None:
    """A :class:`RevocationSource` for a PostgreSQL session store (either flavour) or a
    SQLite one on a file; ``None`` otherwise (Redis has :func:`invalidation_source`; memory
    and ``:memory:`` are one process, where a revocation applies at once)."""

    def set_window(user_ms: int, session_ms: int) -> None:
        set_revocation_windows(sessions, user_ms, session_ms)

    database = getattr(sessions, "db", None)
    if database is not None:
        from .pg_driver import AsyncPgDatabase, PgDatabase

        if isinstance(database, AsyncPgDatabase | PgDatabase):
            from .postgres import AsyncPgSessionStore, PgSessionStore

            if isinstance(sessions, AsyncPgSessionStore | PgSessionStore):
                return RevocationSource("pg", set_window, database.conninfo)
    from .sqlite import SQLiteSessionStore

    if isinstance(sessions, SQLiteSessionStore) and sessions.shared:
        return RevocationSource("sqlite", set_window)
    return None
