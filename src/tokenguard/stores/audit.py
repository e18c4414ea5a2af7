"""Where audit events are kept (``TOKENGUARD_AUDIT_STORE``): memory, SQLite or Redis.

Each store keeps the newest ``max_events`` events (``TOKENGUARD_AUDIT_MAX_EVENTS``) and lists
them newest first, optionally for one user or one event. The Redis store is one capped list,
``<prefix>audit`` (``LPUSH`` then ``LTRIM`` in one transaction), so that every process of a
deployment writes to the same trail; the SQLite store is the table ``tokenguard_audit`` of
``DB_FILENAME``. A store that cannot answer raises
:class:`~tokenguard.stores.base.StoreUnavailable`. Which store a deployment uses is decided
in :mod:`tokenguard.stores.select`.
"""

from __future__ import annotations

import collections
import json
import sqlite3
import threading
from typing import Any, TypeVar

from ..flow import Call, Flow, run_async, run_sync
from ..logs.audit import AuditEvent
from .base import StoreUnavailable

__all__ = [
    "AsyncRedisAuditStore",
    "MemoryAuditStore",
    "RedisAuditStore",
    "SQLiteAuditStore",
]

_R = TypeVar("_R", bound="_RedisAudit")

DEFAULT_MAX_EVENTS = 10_000
_FIELDS = tuple(AuditEvent.__dataclass_fields__)


def _matches(event: AuditEvent, user_id: str | None, name: str | None) -> bool:
    return (user_id is None or event.user_id == user_id) and (name is None or event.event == name)


def _check_limit(limit: int) -> int:
    if limit < 1:
        raise ValueError("limit must be positive")
    return limit


class MemoryAuditStore:
    """The newest events of this process, in a bounded deque."""

    io_bound = False

    def close(self) -> None:
        """Nothing to release."""

    def __init__(self, max_events: int = DEFAULT_MAX_EVENTS) -> None:
        self._events: collections.deque[AuditEvent] = collections.deque(maxlen=max_events)
        self._lock = threading.Lock()

    def append(self, event: AuditEvent) -> None:
        with self._lock:
            self._events.append(event)

    def recent(
        self, limit: int = 50, *, user_id: str | None = None, event: str | None = None
    ) -> list[AuditEvent]:
        _check_limit(limit)
        with self._lock:
            newest_first = list(reversed(self._events))
        return [e for e in newest_first if _matches(e, user_id, event)][:limit]


class SQLiteAuditStore:
    """Events in the table ``tokenguard_audit`` of a SQLite file (shared by processes)."""

    io_bound = True

    def __init__(
        self, filename: str, *, max_events: int = DEFAULT_MAX_EVENTS, timeout: float = 5.0
    ) -> None:
        self.filename = filename
        self.max_events = max_events
        self.timeout = timeout
        self._local = threading.local()
        self._ready = False
        self._ready_lock = threading.Lock()
        # Every thread's connection, so that close() can release them all.
        self._all: list[sqlite3.Connection] = []

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.filename, timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
            self._local.conn = conn
            with self._ready_lock:
                self._all.append(conn)
        if not self._ready:
            with self._ready_lock:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS tokenguard_audit (id INTEGER PRIMARY KEY "
                    "AUTOINCREMENT, event TEXT NOT NULL, outcome TEXT NOT NULL, timestamp TEXT "
                    "NOT NULL, user_id TEXT, ip TEXT, user_agent TEXT, origin TEXT, provider "
                    "TEXT, reason TEXT)"
                )
                conn.execute(
                    "CREATE INDEX IF NOT EXISTS tokenguard_audit_user ON tokenguard_audit (user_id)"
                )
                self._ready = True
        return conn

    def append(self, event: AuditEvent) -> None:
        row = event.to_dict()
        try:
            conn = self._connection()
            cursor = conn.execute(
                f"INSERT INTO tokenguard_audit ({', '.join(_FIELDS)}) "  # noqa: S608 (fixed names)
                f"VALUES ({', '.join('?' for _ in _FIELDS)})",
                tuple(row[f] for f in _FIELDS),
            )
            last = cursor.lastrowid or 0
            if last > self.max_events:
                # Ids only grow (AUTOINCREMENT): everything this far behind is past the cap.
                conn.execute(
                    "DELETE FROM tokenguard_audit WHERE id <= ?", (last - self.max_events,)
                )
        except sqlite3.Error as exc:
            raise StoreUnavailable("database", f"SQLite failed: {type(exc).__name__}") from None

    def recent(
        self, limit: int = 50, *, user_id: str | None = None, event: str | None = None
    ) -> list[AuditEvent]:
        _check_limit(limit)
        where: list[str] = []
        args: list[Any] = []
        if user_id is not None:
            where.append("user_id = ?")
            args.append(user_id)
        if event is not None:
            where.append("event = ?")
            args.append(event)
        sql = f"SELECT {', '.join(_FIELDS)} FROM tokenguard_audit"  # noqa: S608 (fixed names)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        try:
            rows = self._connection().execute(sql, (*args, limit)).fetchall()
        except sqlite3.Error as exc:
            raise StoreUnavailable("database", f"SQLite failed: {type(exc).__name__}") from None
        return [AuditEvent.from_dict(dict(zip(_FIELDS, row, strict=True))) for row in rows]

    def close(self) -> None:
        """Close every connection this store opened (in any thread)."""
        with self._ready_lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()
        self._local = threading.local()


def _decode(raw: Any) -> AuditEvent | None:
    try:
        data = json.loads(raw)
    except (ValueError, TypeError):
        return None  # not ours: skipped rather than failing the listing
    return AuditEvent.from_dict(data) if isinstance(data, dict) else None


def _pick(raws: list[Any], limit: int, user_id: str | None, event: str | None) -> list[AuditEvent]:
    out: list[AuditEvent] = []
    for raw in raws:
        decoded = _decode(raw)
        if decoded is not None and _matches(decoded, user_id, event):
            out.append(decoded)
            if len(out) >= limit:
                break
    return out


def _unavailable(exc: Exception) -> StoreUnavailable:
    return StoreUnavailable("redis", f"Redis failed: {type(exc).__name__}")


class _RedisAudit:
    """Key layout and operations of the Redis audit list, for either client: each operation
    is a flow (:mod:`tokenguard.flow`) that the sync store drives with
    :func:`~tokenguard.flow.run_sync` and the async one with :func:`~tokenguard.flow.run_async`.
    """

    def __init__(
        self, client: Any, *, prefix: str = "tokenguard:", max_events: int = DEFAULT_MAX_EVENTS
    ) -> None:
        self.client = client
        self.key = prefix + "audit"
        self.max_events = max_events
        #: Whether closing the store closes the client (one from_url made, not a shared one).
        self.owns_client = False

    @classmethod
    def from_url(
        cls: type[_R],
        url: str,
        *,
        prefix: str = "tokenguard:",
        max_events: int = DEFAULT_MAX_EVENTS,
    ) -> _R:
        """A store on ``url`` with the session store's short timeouts."""
        store = cls(cls._connect(url), prefix=prefix, max_events=max_events)
        store.owns_client = True
        return store

    @staticmethod
    def _connect(url: str) -> Any:
        raise NotImplementedError

    def _append(self, event: AuditEvent) -> Flow[None]:
        pipe = self.client.pipeline(transaction=True)
        pipe.lpush(self.key, event.to_json())
        pipe.ltrim(self.key, 0, self.max_events - 1)
        try:
            yield Call(pipe.execute)
        except Exception as exc:
            raise _unavailable(exc) from None

    def _recent(self, limit: int, user_id: str | None, event: str | None) -> Flow[list[AuditEvent]]:
        _check_limit(limit)
        # Unfiltered, only `limit` entries are read; filtered, the whole (capped) list.
        stop = limit - 1 if user_id is None and event is None else -1
        try:
            raws = yield Call(self.client.lrange, (self.key, 0, stop))
        except Exception as exc:
            raise _unavailable(exc) from None
        return _pick(raws, limit, user_id, event)


class RedisAuditStore(_RedisAudit):
    """Events as JSON in the capped Redis list ``<prefix>audit``, newest first."""

    io_bound = True

    @staticmethod
    def _connect(url: str) -> Any:
        from redis.retry import Retry

        from .redis import client_options, sync_client

        client, _ = sync_client(url, **client_options(0.5, 1.0, {}, Retry))
        return client

    def close(self) -> None:
        """Close the client if this store made it (a shared one is its owner's)."""
        if self.owns_client:
            self.client.close()

    def append(self, event: AuditEvent) -> None:
        run_sync(self._append(event))

    def recent(
        self, limit: int = 50, *, user_id: str | None = None, event: str | None = None
    ) -> list[AuditEvent]:
        return run_sync(self._recent(limit, user_id, event))


class AsyncRedisAuditStore(_RedisAudit):
    """:class:`RedisAuditStore` over ``redis.asyncio``."""

    @staticmethod
    def _connect(url: str) -> Any:
        from redis.asyncio.retry import Retry

        from .redis import async_client, client_options

        client, _ = async_client(url, **client_options(0.5, 1.0, {}, Retry))
        return client

    async def aclose(self) -> None:
        """Close the client if this store made it (a shared one is its owner's)."""
        if self.owns_client:
            await self.client.aclose()

    async def append(self, event: AuditEvent) -> None:
        await run_async(self._append(event))

    async def recent(
        self, limit: int = 50, *, user_id: str | None = None, event: str | None = None
    ) -> list[AuditEvent]:
        return await run_async(self._recent(limit, user_id, event))
