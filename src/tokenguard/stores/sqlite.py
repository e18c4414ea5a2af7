"""Users and refresh sessions in one SQLite file (stdlib ``sqlite3``, WAL mode).

The default backend (``DB_FILENAME``). Each thread gets its own connection, so the stores
can be used from a thread pool (the ASGI driver runs them in worker threads: ``io_bound``).
Every write is a ``BEGIN IMMEDIATE`` transaction, which takes SQLite's write lock up front:
two threads or two processes rotating the same token are serialized, and exactly one of
them sees the unrotated record. Tables are prefixed ``tokenguard_`` so the file may be
shared with an application's own tables.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import astuple, fields, replace
from typing import Any

from .base import (
    DEFAULT_REVOCATION_WINDOW_MS,
    DEFAULT_SESSION_REVOCATION_WINDOW_MS,
    RotateOutcome,
    SessionInfo,
    SessionRecord,
    StoreUnavailable,
    User,
    revocation_prune_bounds,
    summarize_sessions,
)
from .rotation import plan_rotation

log = logging.getLogger("tokenguard")

__all__ = [
    "SCHEMA_VERSION",
    "SQLiteSessionStore",
    "SQLiteUserStore",
    "SchemaTooNew",
    "warn_if_unwritable",
]

#: Bumped by every schema change; ``_MIGRATIONS[n]`` brings a version ``n - 1`` file to ``n``.
SCHEMA_VERSION = 3

_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE IF NOT EXISTS tokenguard_users (
            id TEXT PRIMARY KEY,
            email TEXT NOT NULL,
            email_key TEXT NOT NULL UNIQUE,
            password_hash TEXT,
            role TEXT,
            status TEXT NOT NULL,
            admin_access INTEGER NOT NULL,
            app_access INTEGER NOT NULL,
            provider TEXT NOT NULL,
            first_name TEXT,
            last_name TEXT,
            token_hash TEXT UNIQUE,
            tfa_secret TEXT
        )""",
        """CREATE TABLE IF NOT EXISTS tokenguard_sessions (
            token_hash TEXT PRIMARY KEY,
            family TEXT NOT NULL,
            user_id TEXT NOT NULL,
            expires_at_ms INTEGER NOT NULL,
            created_at_ms INTEGER NOT NULL,
            ip TEXT,
            user_agent TEXT,
            origin TEXT,
            next_hash TEXT,
            live_until_ms INTEGER
        )""",
        "CREATE INDEX IF NOT EXISTS tokenguard_sessions_family ON tokenguard_sessions (family)",
        "CREATE INDEX IF NOT EXISTS tokenguard_sessions_user ON tokenguard_sessions (user_id)",
        "CREATE INDEX IF NOT EXISTS tokenguard_sessions_expiry"
        " ON tokenguard_sessions (expires_at_ms)",
    ),
    # Single sign-on finds users by their identity at the provider (Directus's
    # external_identifier); ``external_key`` is its casefolded form, unique like email_key.
    2: (
        "ALTER TABLE tokenguard_users ADD COLUMN external_identifier TEXT",
        "ALTER TABLE tokenguard_users ADD COLUMN external_key TEXT",
        "CREATE UNIQUE INDEX IF NOT EXISTS tokenguard_users_external"
        " ON tokenguard_users (external_key)",
    ),
    # The window of revocations (tokenguard.guard.revocation), appended to by every process
    # and polled by each (tokenguard.guard.feeds.SQLiteRevocationFeed): AUTOINCREMENT, so a
    # sequence number is never reused once pruned, and one writer at a time (BEGIN
    # IMMEDIATE) makes the order of ``seq`` the order of the commits.
    3: (
        """CREATE TABLE IF NOT EXISTS tokenguard_revocations (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            member TEXT NOT NULL,
            at_ms INTEGER NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS tokenguard_revocations_member"
        " ON tokenguard_revocations (member, at_ms)",
        "CREATE INDEX IF NOT EXISTS tokenguard_revocations_at ON tokenguard_revocations (at_ms)",
    ),
}

_USER_COLUMNS = tuple(f.name for f in fields(User))
_USER_FIELDS = frozenset(_USER_COLUMNS) - {"id"}
# A family is purged once every one of its rows has expired, never row by row: an expired
# row still names its family, and a logout with it must revoke the family's live rows, as it
# does in the other backends (Redis expires a family's HASH at its latest record's expiry).
# Purging at most this often keeps writes cheap.
_PURGE_EVERY_MS = 60_000
_PURGE = (
    "DELETE FROM tokenguard_sessions WHERE family IN ("
    "SELECT s.family FROM tokenguard_sessions AS s WHERE s.expires_at_ms < ?1"
    " AND NOT EXISTS (SELECT 1 FROM tokenguard_sessions AS t"
    " WHERE t.family = s.family AND t.expires_at_ms >= ?1))"
)


class SchemaTooNew(RuntimeError):
    """The file was written by a newer tokenguard; refusing to guess its layout."""


class _Connection(sqlite3.Connection):
    """A connection that can be weakly referenced (the base class cannot)."""


def warn_if_unwritable(filename: str | os.PathLike[str]) -> bool:
    """Log a warning at start when ``filename`` cannot be created or written (a folder that
    does not exist, one without write access): every request needing the store would answer
    503, and the warning says why before the first login does. The app still starts (the
    folder may be mounted later). Whether it warned."""
    name = os.fspath(filename)
    if name in ("", ":memory:") or name.startswith("file:"):
        return False
    folder = os.path.dirname(os.path.abspath(name))
    if not os.path.isdir(folder):
        problem = "its folder does not exist"
    elif os.path.exists(name) and not os.access(name, os.R_OK | os.W_OK):
        problem = "the file cannot be read and written"
    elif not os.path.exists(name) and not os.access(folder, os.W_OK | os.X_OK):
        problem = "its folder cannot be written"
    else:
        return False
    log.warning(
        "DB_FILENAME %s: %s; requests that need the store answer 503 until it can be opened",
        name,
        problem,
    )
    return True


class _Database:
    """Connections to one SQLite file: one per thread (one shared, locked, for ``:memory:``)."""

    def __init__(self, filename: str | os.PathLike[str], timeout: float) -> None:
        self.filename = os.fspath(filename)
        self._timeout = timeout
        self._local = threading.local()
        self._memory = self.filename in ("", ":memory:")
        #: A database of one connection (``:memory:``): no other process can share it.
        self.memory = self._memory
        # A ``:memory:`` database exists per connection, so it gets exactly one, under a lock.
        self._shared_lock = threading.RLock()
        self._shared: sqlite3.Connection | None = None
        # Weak: a thread's connection closes when the thread ends and its thread-local goes
        # (servers that start a thread per request must not leak one connection each).
        self._all: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._all_lock = threading.Lock()
        self._ready = False
        self._setup_lock = threading.Lock()

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.filename,
            timeout=self._timeout,
            isolation_level=None,  # we issue BEGIN/COMMIT ourselves
            # Each thread uses only its own connection; close() may run from any thread.
            check_same_thread=False,
            factory=_Connection,
        )
        with self._all_lock:
            self._all.add(conn)
        if not self._ready:
            # Switching to WAL takes an exclusive lock that waits for no busy handler: threads
            # opening their first connections at once must not race for it. The mode is
            # stored in the file, so later connections need not set it again.
            with self._setup_lock:
                if not self._ready:
                    if not self._memory:
                        self._use_wal(conn)
                    self._migrate(conn)
        if not self._memory:
            # WAL + NORMAL stays consistent after a crash; it may lose the last commits on a
            # power cut, which for sessions means a logout or rotation to redo, never a leak.
            conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def _use_wal(self, conn: sqlite3.Connection) -> None:
        # The switch needs the file to itself and ignores the busy timeout, so the workers of
        # a server opening a fresh file at once would see "database is locked": wait for it
        # as the busy timeout would.
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.02)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS tokenguard_meta"
                " (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
            row = conn.execute(
                "SELECT value FROM tokenguard_meta WHERE key = 'schema_version'"
            ).fetchone()
            version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                raise SchemaTooNew(
                    f"{self.filename!r} has tokenguard schema {version}; "
                    f"this version knows {SCHEMA_VERSION}"
                )
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[step]:
                    conn.execute(statement)
            conn.execute(
                "INSERT OR REPLACE INTO tokenguard_meta (key, value) VALUES ('schema_version', ?)",
                (str(max(version, SCHEMA_VERSION)),),
            )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        self._ready = True

    def _connection(self) -> sqlite3.Connection:
        if self._memory:
            if self._shared is None:
                self._shared = self._open()
            return self._shared
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._open()
        return conn

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A connection for one or more reads (each its own snapshot)."""
        with self._guard():
            yield self._connection()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A connection inside a ``BEGIN IMMEDIATE`` transaction, committed on success."""
        with self._guard():
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                self._abort(conn)
                raise

    def _abort(self, conn: sqlite3.Connection) -> None:
        if not conn.in_transaction:
            return
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            # A connection stuck in a transaction would refuse every later BEGIN: drop it,
            # the next call in this thread opens a fresh one.
            if getattr(self._local, "conn", None) is conn:
                del self._local.conn
            if self._shared is conn:
                self._shared = None
            conn.close()

    @contextmanager
    def _guard(self) -> Iterator[None]:
        if self._memory:
            self._shared_lock.acquire()
        try:
            yield
        except (sqlite3.IntegrityError, sqlite3.ProgrammingError):
            raise  # the caller's business: a duplicate, or a bug
        except sqlite3.DatabaseError as exc:
            # Locked beyond the busy timeout, disk full, I/O error, not a database: answer
            # 503, never guess.
            raise StoreUnavailable("database", type(exc).__name__) from exc
        finally:
            if self._memory:
                self._shared_lock.release()

    def close(self) -> None:
        """Close every connection this object opened (in any thread)."""
        with self._all_lock:
            conns = list(self._all)
            self._all.clear()
        for conn in conns:
            conn.close()
        self._shared = None
        self._local = threading.local()


def _user_from_row(row: tuple[Any, ...]) -> User:
    values = dict(zip(_USER_COLUMNS, row, strict=True))
    values["admin_access"] = bool(values["admin_access"])
    values["app_access"] = bool(values["app_access"])
    return User(**values)


def _user_params(user: User) -> tuple[Any, ...]:
    external = user.external_identifier
    external_key = None if external is None else external.casefold()
    return (*astuple(user), user.email.casefold(), external_key)


_USER_SELECT = (
    "SELECT id, email, password_hash, role, status, admin_access, app_access, provider,"
    " first_name, last_name, token_hash, tfa_secret, external_identifier FROM tokenguard_users"
)
_USER_INSERT = (
    "INSERT INTO tokenguard_users (id, email, password_hash, role, status, admin_access,"
    " app_access, provider, first_name, last_name, token_hash, tfa_secret, external_identifier,"
    " email_key, external_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_USER_UPDATE = (
    "UPDATE tokenguard_users SET id = ?, email = ?, password_hash = ?, role = ?, status = ?,"
    " admin_access = ?, app_access = ?, provider = ?, first_name = ?, last_name = ?,"
    " token_hash = ?, tfa_secret = ?, external_identifier = ?, email_key = ?, external_key = ?"
    " WHERE id = ?"
)
_SESSION_SELECT = (
    "SELECT token_hash, family, user_id, expires_at_ms, created_at_ms, ip, user_agent, origin,"
    " next_hash, live_until_ms FROM tokenguard_sessions WHERE token_hash = ?"
)
# Every record of the user's families (the rotated-away ones tell when the session began).
_SESSION_OF_USER = (
    "SELECT token_hash, family, user_id, expires_at_ms, created_at_ms, ip, user_agent, origin,"
    " next_hash, live_until_ms FROM tokenguard_sessions WHERE family IN"
    " (SELECT family FROM tokenguard_sessions WHERE user_id = ?)"
)
_SESSION_INSERT = (
    "INSERT OR REPLACE INTO tokenguard_sessions (token_hash, family, user_id, expires_at_ms,"
    " created_at_ms, ip, user_agent, origin, next_hash, live_until_ms)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class SQLiteUserStore:
    """Users in ``tokenguard_users``; e-mails unique case-insensitively (``str.casefold``)."""

    io_bound = True

    def __init__(self, filename: str | os.PathLike[str], *, timeout: float = 5.0) -> None:
        self._db = _Database(filename, timeout)

    def get_by_id(self, user_id: str) -> User | None:
        return self._one(f"{_USER_SELECT} WHERE id = ?", (user_id,))

    def get_by_email(self, email: str) -> User | None:
        return self._one(f"{_USER_SELECT} WHERE email_key = ?", (email.casefold(),))

    def get_by_token_hash(self, token_hash: str) -> User | None:
        return self._one(f"{_USER_SELECT} WHERE token_hash = ?", (token_hash,))

    def get_by_external_identifier(self, identifier: str) -> User | None:
        return self._one(f"{_USER_SELECT} WHERE external_key = ?", (identifier.casefold(),))

    def create(self, user: User) -> User:
        try:
            with self._db.write() as conn:
                conn.execute(_USER_INSERT, _user_params(user))
        except sqlite3.IntegrityError as exc:
            raise ValueError(
                f"a user with this id, e-mail, token or external identifier exists ({user.id!r})"
            ) from exc
        return user

    def update(self, user_id: str, **changes: Any) -> User | None:
        unknown = set(changes) - _USER_FIELDS
        if unknown:
            raise ValueError(f"unknown user field(s): {', '.join(sorted(unknown))}")
        try:
            with self._db.write() as conn:
                row = conn.execute(f"{_USER_SELECT} WHERE id = ?", (user_id,)).fetchone()
                if row is None:
                    return None
                updated = replace(_user_from_row(row), **changes)
                conn.execute(_USER_UPDATE, (*_user_params(updated), user_id))
        except sqlite3.IntegrityError as exc:
            raise ValueError(
                f"another user has this e-mail, token or external identifier ({user_id!r})"
            ) from exc
        return updated

    def delete(self, user_id: str) -> bool:
        with self._db.write() as conn:
            cursor = conn.execute("DELETE FROM tokenguard_users WHERE id = ?", (user_id,))
            return cursor.rowcount > 0

    def list_users(self) -> list[User]:
        with self._db.read() as conn:
            rows = conn.execute(f"{_USER_SELECT} ORDER BY rowid").fetchall()
        return [_user_from_row(row) for row in rows]

    def _one(self, sql: str, params: tuple[Any, ...]) -> User | None:
        with self._db.read() as conn:
            row = conn.execute(sql, params).fetchone()
        return None if row is None else _user_from_row(row)

    def close(self) -> None:
        """Close the store's connections."""
        self._db.close()


class SQLiteSessionStore:
    """Refresh sessions in ``tokenguard_sessions``, keyed by token hash.

    Rotation follows :func:`~tokenguard.stores.rotation.plan_rotation` inside one
    ``BEGIN IMMEDIATE`` transaction, so it is atomic across threads and processes.
    """

    io_bound = True

    def __init__(self, filename: str | os.PathLike[str], *, timeout: float = 5.0) -> None:
        self._db = _Database(filename, timeout)
        self._last_purge_ms = 0
        #: How long a user's revocation is kept in ``tokenguard_revocations``: the longest
        #: token lifetime plus leeway (the app sets its own, see
        #: :func:`~tokenguard.stores.select.set_revocation_windows`).
        self.revocation_window_ms = DEFAULT_REVOCATION_WINDOW_MS
        #: The same for a session's: the access-token lifetime plus leeway.
        self.session_revocation_window_ms = DEFAULT_SESSION_REVOCATION_WINDOW_MS

    @property
    def shared(self) -> bool:
        """Whether other processes may use this store too (a file; not ``:memory:``)."""
        return not self._db.memory

    def create(self, record: SessionRecord) -> None:
        with self._db.write() as conn:
            self._insert(conn, record)

    def get(self, token_hash: str, now_ms: int) -> SessionRecord | None:
        with self._db.read() as conn:
            record = self._select(conn, token_hash)
        if record is None or not record.is_live(now_ms):
            return None
        return record

    def rotate(
        self, token_hash: str, new: SessionRecord, *, now_ms: int, grace_ms: int
    ) -> RotateOutcome:
        with self._db.write() as conn:
            old = self._select(conn, token_hash)
            current_next = (
                self._select(conn, old.next_hash) if old is not None and old.next_hash else None
            )
            outcome, old_after, new_to_store = plan_rotation(
                old, current_next, new, now_ms=now_ms, grace_ms=grace_ms
            )
            if outcome.status == "reused" and old is not None:
                conn.execute("DELETE FROM tokenguard_sessions WHERE family = ?", (old.family,))
                self._families_revoked(conn, [old.family])
            for record in (old_after, new_to_store):
                if record is not None:
                    self._insert(conn, record)
            self._purge(conn, now_ms)
        return outcome

    def revoke(self, token_hash: str) -> SessionRecord | None:
        with self._db.write() as conn:
            record = self._select(conn, token_hash)
            if record is not None:
                conn.execute("DELETE FROM tokenguard_sessions WHERE family = ?", (record.family,))
                self._families_revoked(conn, [record.family])
        return record

    def revoke_user(self, user_id: str, *, except_family: str | None = None) -> int:
        with self._db.write() as conn:
            families = [
                str(row[0])
                for row in conn.execute(
                    "SELECT DISTINCT family FROM tokenguard_sessions"
                    " WHERE user_id = ? AND family IS NOT ?",
                    (user_id, except_family),
                )
            ]
            conn.execute(
                "DELETE FROM tokenguard_sessions WHERE family IN (SELECT family"
                " FROM tokenguard_sessions WHERE user_id = ? AND family IS NOT ?)",
                (user_id, except_family),
            )
            self._families_revoked(conn, families)
        return len(families)

    # -- the window of revocations (see tokenguard.guard.revocation) --------------------------

    def record_revocations(self, members: list[tuple[str, int]], message: str = "") -> None:
        """Write ``members`` (name, ms) to ``tokenguard_revocations``, where every process's
        poller finds them; ``message`` (the Redis channel's form) is not needed here."""
        if members:
            with self._db.write() as conn:
                self._record(conn, members)

    def revocation_scores(self, sid: str | None, user: str | None) -> tuple[int | None, int | None]:
        """When session ``sid`` was revoked and ``user``'s not-before time, in ms (``None``
        for either when the window holds none)."""
        session_member, user_member = f"s:{sid or ''}", f"u:{user or ''}"
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT member, max(at_ms) FROM tokenguard_revocations"
                " WHERE member IN (?, ?) GROUP BY member",
                (session_member, user_member),
            ).fetchall()
        found = {str(member): int(at) for member, at in rows}
        return found.get(session_member), found.get(user_member)

    def revocations_after(
        self, seq: int | None, since_ms: int = 0
    ) -> tuple[list[tuple[str, int]], int]:
        """The revocations written after sequence number ``seq`` (name, ms), and the last
        sequence number; with ``seq=None``, those made since ``since_ms`` (a catch-up). One
        statement: one snapshot, so nothing falls between a catch-up and the next poll."""
        with self._db.read() as conn:
            if seq is None:
                rows = conn.execute(
                    "SELECT seq, member, at_ms FROM tokenguard_revocations WHERE at_ms >= ?"
                    " OR seq = (SELECT max(seq) FROM tokenguard_revocations) ORDER BY seq",
                    (since_ms,),
                ).fetchall()
            else:
                rows = conn.execute(
                    "SELECT seq, member, at_ms FROM tokenguard_revocations WHERE seq > ?"
                    " ORDER BY seq",
                    (seq,),
                ).fetchall()
        last = int(rows[-1][0]) if rows else (seq or 0)
        return [(str(member), int(at)) for _, member, at in rows], last

    def _families_revoked(self, conn: sqlite3.Connection, families: list[str]) -> None:
        # In the transaction that deleted them.
        now_ms = int(time.time() * 1000)
        self._record(conn, [(f"s:{f}", now_ms) for f in families])

    def _record(self, conn: sqlite3.Connection, members: list[tuple[str, int]]) -> None:
        if not members:
            return
        conn.executemany(
            "INSERT INTO tokenguard_revocations (member, at_ms) VALUES (?, ?)", members
        )
        users_cut, band, sessions_cut = revocation_prune_bounds(
            max(at for _, at in members),
            self.revocation_window_ms,
            self.session_revocation_window_ms,
        )
        # Two statements, each one range of the at_ms index (see revocation_prune_bounds).
        conn.execute("DELETE FROM tokenguard_revocations WHERE at_ms < ?", (users_cut,))
        conn.execute(
            "DELETE FROM tokenguard_revocations WHERE at_ms >= ? AND at_ms < ?"
            " AND member LIKE 's:%'",
            (band, sessions_cut),
        )

    def sessions(self, user_id: str, now_ms: int) -> list[SessionInfo]:
        with self._db.read() as conn:
            rows = conn.execute(_SESSION_OF_USER, (user_id,)).fetchall()
        return summarize_sessions((SessionRecord(*row) for row in rows), user_id, now_ms)

    def revoke_session(self, user_id: str, family: str) -> bool:
        with self._db.write() as conn:
            cursor = conn.execute(
                "DELETE FROM tokenguard_sessions WHERE family = ? AND EXISTS (SELECT 1"
                " FROM tokenguard_sessions WHERE family = ? AND user_id = ?)",
                (family, family, user_id),
            )
            if cursor.rowcount <= 0:
                return False
            self._families_revoked(conn, [family])  # as every other end of a session
            return True

    def close(self) -> None:
        """Close the store's connections."""
        self._db.close()

    @staticmethod
    def _select(conn: sqlite3.Connection, token_hash: str) -> SessionRecord | None:
        row = conn.execute(_SESSION_SELECT, (token_hash,)).fetchone()
        return None if row is None else SessionRecord(*row)

    @staticmethod
    def _insert(conn: sqlite3.Connection, record: SessionRecord) -> None:
        conn.execute(_SESSION_INSERT, astuple(record))

    def _purge(self, conn: sqlite3.Connection, now_ms: int) -> None:
        if now_ms - self._last_purge_ms < _PURGE_EVERY_MS:
            return
        self._last_purge_ms = now_ms
        conn.execute(_PURGE, (now_ms,))
