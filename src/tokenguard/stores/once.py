"""One-time claims: a used TOTP step or reset token is remembered until it could not be
valid any more, so that it is accepted once.

Backends follow the session store's: Redis when ``REDIS`` is set (``SET NX PX``), else the
SQLite file ``DB_FILENAME``, else memory. Keys are hashed before they are stored, so a store
never holds a code or a token.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import weakref
from typing import Any

from ..flow import Call, Flow, run_async, run_sync
from .base import StoreUnavailable

__all__ = [
    "AsyncRedisOnceStore",
    "MemoryOnceStore",
    "RedisOnceStore",
    "SQLiteOnceStore",
    "digest",
]


class _Connection(sqlite3.Connection):
    """A connection that can be weakly referenced (the base class cannot)."""


def digest(key: str) -> str:
    """What a claim is stored under: the SHA-256 of ``key``, so that no store ever holds a
    code or a token (shared by every backend, PostgreSQL's included)."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


class MemoryOnceStore:
    """Claims in a dict, for one process."""

    io_bound = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._until: dict[str, int] = {}
        self._next_purge = 0

    def claim(self, key: str, ttl_ms: int, now_ms: int) -> bool:
        hashed = digest(key)
        with self._lock:
            if now_ms >= self._next_purge:
                # Occasional sweep keeps the dict bounded by what is still live.
                self._until = {k: t for k, t in self._until.items() if t > now_ms}
                self._next_purge = now_ms + 60_000
            until = self._until.get(hashed)
            if until is not None and until > now_ms:
                return False
            self._until[hashed] = now_ms + max(ttl_ms, 1)
            return True

    def close(self) -> None:
        """Nothing to release."""


class SQLiteOnceStore:
    """Claims in the table ``tokenguard_once`` of a SQLite file (shared by processes)."""

    io_bound = True

    def __init__(self, filename: str, *, timeout: float = 5.0) -> None:
        self.filename = filename
        self.timeout = timeout
        self._local = threading.local()
        self._ready = False
        self._ready_lock = threading.Lock()
        # Every connection opened (one per thread), so that close() can reach them all; weak,
        # so a thread's connection still goes when that thread does.
        self._all: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._all_lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.filename,
                timeout=self.timeout,
                isolation_level=None,
                check_same_thread=False,  # close() may run from any thread
                factory=_Connection,
            )
            with self._all_lock:
                self._all.add(conn)
            self._local.conn = conn
        if not self._ready:
            with self._ready_lock:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS tokenguard_once "
                    "(key TEXT PRIMARY KEY, expires_at_ms INTEGER NOT NULL)"
                )
                self._ready = True
        return conn

    def claim(self, key: str, ttl_ms: int, now_ms: int) -> bool:
        hashed = digest(key)
        try:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    "DELETE FROM tokenguard_once WHERE key = ? AND expires_at_ms <= ?",
                    (hashed, now_ms),
                )
                cursor = conn.execute(
                    "INSERT OR IGNORE INTO tokenguard_once (key, expires_at_ms) VALUES (?, ?)",
                    (hashed, now_ms + max(ttl_ms, 1)),
                )
                won = cursor.rowcount == 1
                if won and now_ms % 64 == 0:
                    # Now and then, forget what has expired (cheap, bounded by the index).
                    conn.execute("DELETE FROM tokenguard_once WHERE expires_at_ms <= ?", (now_ms,))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreUnavailable("database", f"SQLite failed: {type(exc).__name__}") from None
        return won

    def close(self) -> None:
        """Close every connection this store opened (in any thread); idempotent."""
        with self._all_lock:
            conns = list(self._all)
            self._all.clear()
        for conn in conns:
            conn.close()
        self._local = threading.local()


class _RedisClaims:
    """A claim as a Redis key ``<prefix>once:<sha256>`` set with ``NX`` and a ``PX`` expiry,
    written once as a flow (:mod:`tokenguard.flow`) for the sync and the async client."""

    def __init__(self, client: Any, *, prefix: str = "tokenguard:") -> None:
        self.client = client
        self.prefix = prefix + "once:"

    def _claim(self, key: str, ttl_ms: int) -> Flow[bool]:
        try:
            reply = yield Call(
                self.client.set,
                (self.prefix + digest(key), b"1"),
                {"nx": True, "px": max(ttl_ms, 1)},
            )
        except Exception as exc:
            raise StoreUnavailable("redis", f"Redis failed: {type(exc).__name__}") from None
        return reply is not None and reply is not False


class RedisOnceStore(_RedisClaims):
    """Claims as Redis keys ``<prefix>once:<sha256>`` set with ``NX`` and a ``PX`` expiry."""

    io_bound = True

    def claim(self, key: str, ttl_ms: int, now_ms: int) -> bool:
        return run_sync(self._claim(key, ttl_ms))

    def close(self) -> None:
        """Nothing to release: the client is the session store's, closed with it."""


class AsyncRedisOnceStore(_RedisClaims):
    """:class:`RedisOnceStore` over ``redis.asyncio``."""

    async def claim(self, key: str, ttl_ms: int, now_ms: int) -> bool:
        return await run_async(self._claim(key, ttl_ms))

    async def aclose(self) -> None:
        """Nothing to release: the client is the session store's, closed with it."""
