"""Users, refresh sessions, one-time claims and the audit trail in PostgreSQL (psycopg 3).

Chosen as Directus chooses its database: ``DB_CLIENT=pg`` with ``DB_HOST``, ``DB_PORT``,
``DB_DATABASE``, ``DB_USER``, ``DB_PASSWORD``, or one ``DB_CONNECTION_STRING``. The tables
are made by ``tokenguard db migrate`` (:mod:`tokenguard.stores.pg_schema`); a store refuses to
work on a database that was not migrated.

Every operation is written once, in the ``_…Logic`` classes and the functions below, as a
generator that yields the SQL it needs (:class:`~tokenguard.stores.pg_driver.Query`) and
receives the rows; the whole generator runs in *one transaction* on one pooled connection.
The two drivers of :mod:`tokenguard.stores.pg_driver` run them — :class:`PgDatabase`
(``psycopg`` + ``psycopg_pool.ConnectionPool``) and :class:`AsyncPgDatabase`
(``AsyncConnectionPool``) — so the sync and async stores share their SQL and their
decisions; each store class is a list of one-line methods handing an operation to its
driver. What takes two transactions (a rotation, then a purge) is a flow
(:mod:`tokenguard.flow`) of driver calls, also written once.

Rotation is atomic in the database: it takes a transaction-scoped advisory lock on the
token's family, then reads the old row ``FOR UPDATE`` and decides with the same rule as the
other backends (:func:`~tokenguard.stores.rotation.plan_rotation`). Of any number of
concurrent refreshes of one token, in any number of processes, exactly one sees the
unrotated row. Every write touching more than one row of a family takes that family's
lock first (and several families' in sorted order), so writers never deadlock.

Fail closed: a server that is down, a pool that cannot hand out a connection in time, or any
database error becomes :class:`~tokenguard.stores.base.StoreUnavailable` ``("database", …)``,
which the core answers with 503. Nothing is retried (a rotation retried after a lost reply
would look like reuse); the pool checks each connection before handing it out and reconnects
by itself, so the store works again as soon as the server does.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import astuple, fields, replace
from typing import TYPE_CHECKING, Any

from ..flow import Call, Flow, run_async, run_sync
from ..logs.audit import AuditEvent
from .base import (
    DEFAULT_REVOCATION_WINDOW_MS,
    DEFAULT_SESSION_REVOCATION_WINDOW_MS,
    RotateOutcome,
    SessionInfo,
    SessionRecord,
    StoreUnavailable,
    User,
    family_of,
    revocation_prune_bounds,
    summarize_sessions,
)
from .once import digest
from .pg_driver import (
    AsyncOwned,
    AsyncPgDatabase,
    Op,
    PgDatabase,
    Query,
    SyncOwned,
    async_db,
    check_schema_at_start,
    conninfo_from_env,
    conninfo_from_settings,
    make_pg_conninfo,
    require_psycopg,
    sync_db,
)
from .rotation import plan_rotation

if TYPE_CHECKING:
    from ..config import Settings

__all__ = [
    "CATCH_UP",
    "REVOCATION_CHANNEL_SQL",
    "REVOCATION_WINDOW_SQL",
    "AsyncPgAuditStore",
    "AsyncPgDatabase",
    "AsyncPgOnceStore",
    "AsyncPgSessionStore",
    "AsyncPgUserStore",
    "PgAuditStore",
    "check_schema_at_start",
    "PgDatabase",
    "PgOnceStore",
    "PgSessionStore",
    "PgUserStore",
    "conninfo_from_env",
    "conninfo_from_settings",
    "make_pg_conninfo",
    "pg_audit_store",
    "pg_stores",
    "read_revocation_payload",
    "revocation_payload",
]


# --------------------------------------------------------------------------- sessions

_SESSION_COLUMNS = (
    "token_hash, family, user_id, expires_at_ms, created_at_ms, ip, user_agent, origin,"
    " next_hash, live_until_ms"
)
_SESSION_SELECT = f"SELECT {_SESSION_COLUMNS} FROM tokenguard_sessions WHERE token_hash = %s"  # noqa: S608
# Every row of the user's families (the rotated-away ones tell when the session began).
_SESSION_OF_USER = (
    f"SELECT {_SESSION_COLUMNS} FROM tokenguard_sessions WHERE family IN"  # noqa: S608
    " (SELECT family FROM tokenguard_sessions WHERE user_id = %s)"
)
_SESSION_UPSERT = (
    f"INSERT INTO tokenguard_sessions ({_SESSION_COLUMNS})"  # noqa: S608 (fixed names)
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (token_hash) DO UPDATE SET family = EXCLUDED.family,"
    " user_id = EXCLUDED.user_id, expires_at_ms = EXCLUDED.expires_at_ms,"
    " created_at_ms = EXCLUDED.created_at_ms, ip = EXCLUDED.ip,"
    " user_agent = EXCLUDED.user_agent, origin = EXCLUDED.origin,"
    " next_hash = EXCLUDED.next_hash, live_until_ms = EXCLUDED.live_until_ms"
)
# Serializes every write to one family (hashtextextended: PostgreSQL 11+).
_LOCK_FAMILY = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 7))"
_PURGE_LOCK = 0x746B6E67_70757267  # "tkngpurg": one purger at a time, others skip
_PURGE_EVERY_MS = 60_000
# As in SQLite: a family goes only once every one of its rows has expired (an expired row
# still names its family, and a logout with it must revoke the family's live rows). The
# purge takes no family lock and waits for no row (SKIP LOCKED): it can never be one side
# of a deadlock with a refresh or a logout; what it skips goes next time.
_PURGE = (
    "DELETE FROM tokenguard_sessions WHERE token_hash IN ("
    "SELECT token_hash FROM tokenguard_sessions WHERE family IN ("
    "SELECT s.family FROM tokenguard_sessions AS s WHERE s.expires_at_ms < %s"
    " AND NOT EXISTS (SELECT 1 FROM tokenguard_sessions AS t"
    " WHERE t.family = s.family AND t.expires_at_ms >= %s))"
    " FOR UPDATE SKIP LOCKED)"
)


def _unstorable(text: str) -> bool:
    """Whether PostgreSQL's text cannot hold ``text`` (a NUL, or a lone surrogate that is
    not UTF-8): then nothing stored equals it, and a lookup answers "not found" at once."""
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


_ESCAPE = "\x01"
_UNESCAPE = re.compile("\x01(.)", re.DOTALL)


def _clean(text: str | None) -> str | None:
    """A client-chosen text (a User-Agent) made storable: PostgreSQL's text cannot hold
    NUL, so such a value is stored escaped behind a leading U+0001 (itself escaped, so that
    :func:`_unclean` gives back exactly what came in). Ordinary values are stored as is."""
    if text is None or ("\x00" not in text and not text.startswith(_ESCAPE)):
        return text
    return _ESCAPE + text.replace(_ESCAPE, "\x01\x01").replace("\x00", "\x01\x02")


def _unclean(text: str | None) -> str | None:
    if text is None or not text.startswith(_ESCAPE):
        return text
    return _UNESCAPE.sub(lambda m: "\x00" if m.group(1) == "\x02" else m.group(1), text[1:])


def _session_params(record: SessionRecord) -> tuple[Any, ...]:
    return astuple(
        replace(
            record,
            ip=_clean(record.ip),
            user_agent=_clean(record.user_agent),
            origin=_clean(record.origin),
        )
    )


def _record(rows: list[tuple[Any, ...]]) -> SessionRecord | None:
    if not rows:
        return None
    return _row_record(rows[0])


def _row_record(row: tuple[Any, ...]) -> SessionRecord:
    record = SessionRecord(*row)
    return replace(
        record,
        ip=_unclean(record.ip),
        user_agent=_unclean(record.user_agent),
        origin=_unclean(record.origin),
    )


# --------------------------------------------------------------------------- revocations
# The window of revocations (tokenguard.guard.revocation): a row per revocation, written and
# announced (NOTIFY, delivered at commit) in one transaction; listened to by
# tokenguard.guard.feeds.PgRevocationFeed, which catches up from the table first.

#: The NOTIFY channel, one per schema (two apps in two schemas of one database never hear
#: each other): an expression both the notifier and the listener evaluate on their session.
REVOCATION_CHANNEL_SQL = "'tokenguard_rv_' || left(md5(coalesce(current_schema(), '')), 16)"
#: The revocations made since a time (Unix ms): what a listener catches up from.
REVOCATION_WINDOW_SQL = "SELECT member, at_ms FROM tokenguard_revocations WHERE at_ms >= $1"
#: A NOTIFY payload must stay under 8000 bytes: a longer announcement (a user with very many
#: sessions) says only this, and the listeners read the table.
CATCH_UP = "*"
_PAYLOAD_LIMIT = 7_999
# Everything older than the users' window, and the sessions' rows of the band before their
# own window (see revocation_prune_bounds): two ranges of the at_ms index. The rows found
# become an array first, deleted through the primary key: as a join (``seq IN (…)``) the
# planner may scan the whole table for each write once it expects a thousand rows or so.
_PRUNE_REVOCATIONS = (
    "DELETE FROM tokenguard_revocations WHERE seq = ANY(ARRAY(SELECT seq"
    " FROM tokenguard_revocations"
    " WHERE at_ms < %s OR (at_ms >= %s AND at_ms < %s AND member LIKE 's:%%')"
    " FOR UPDATE SKIP LOCKED))"
)
_REVOCATION_SCORES = (
    "SELECT member, max(at_ms) FROM tokenguard_revocations WHERE member = ANY(%s) GROUP BY member"
)


def revocation_payload(members: list[tuple[str, int]]) -> str:
    """The NOTIFY payload announcing ``members`` (name, ms): compact JSON, or
    :data:`CATCH_UP` when that would not fit."""
    text = json.dumps([[m, at] for m, at in members], separators=(",", ":"))
    return text if len(text.encode("utf-8")) <= _PAYLOAD_LIMIT else CATCH_UP


def read_revocation_payload(payload: str) -> list[tuple[str, int]] | None:
    """The members a payload of :func:`revocation_payload` announces; ``None`` when the
    listener must read the table instead (:data:`CATCH_UP`, or a payload it cannot read)."""
    try:
        items = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(items, list):
        return None
    found: list[tuple[str, int]] = []
    for item in items:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
            return None  # not ours: read the table rather than miss anything
        if type(item[1]) is int:
            found.append((item[0], item[1]))
    return found


def _record_revocations(
    members: list[tuple[str, int]], window_ms: int, session_window_ms: int
) -> Op[None]:
    """Steps of a transaction: the rows, the pruning, then the announcement (delivered by
    PostgreSQL when the transaction commits, never before the rows are visible)."""
    members = [(m, at) for m, at in members if not _unstorable(m)]  # never stored, never asked
    if not members:
        return
    yield Query(
        "INSERT INTO tokenguard_revocations (member, at_ms)"
        " SELECT * FROM unnest(%s::text[], %s::bigint[])",
        ([m for m, _ in members], [at for _, at in members]),
    )
    newest = max(at for _, at in members)
    yield Query(_PRUNE_REVOCATIONS, revocation_prune_bounds(newest, window_ms, session_window_ms))
    yield Query(
        f"SELECT pg_notify({REVOCATION_CHANNEL_SQL}, %s)", (revocation_payload(members),)
    )


def _revocation_scores(sid: str | None, user: str | None) -> Op[tuple[int | None, int | None]]:
    session_member, user_member = f"s:{sid or ''}", f"u:{user or ''}"
    names = [n for n in (session_member, user_member) if not _unstorable(n)]
    reply = yield Query(_REVOCATION_SCORES, (names,), alone=True)
    found = {str(member): int(at) for member, at in reply.rows}
    return found.get(session_member), found.get(user_member)


def _now_ms() -> int:
    return int(time.time() * 1000)


class _SessionLogic:
    """The session operations, as steps for either driver (no I/O here)."""

    def __init__(self) -> None:
        self._last_purge_ms = 0
        #: How long a user's revocation is kept in ``tokenguard_revocations``: the longest
        #: token lifetime plus leeway (the app sets its own, see
        #: :func:`~tokenguard.stores.select.set_revocation_windows`).
        self.revocation_window_ms = DEFAULT_REVOCATION_WINDOW_MS
        #: The same for a session's: the access-token lifetime plus leeway.
        self.session_revocation_window_ms = DEFAULT_SESSION_REVOCATION_WINDOW_MS

    def _record_members(self, members: list[tuple[str, int]]) -> Op[None]:
        yield from _record_revocations(
            members, self.revocation_window_ms, self.session_revocation_window_ms
        )

    def _families_revoked(self, families: list[str]) -> Op[None]:
        # In the transaction that deleted them: every process hears of it at commit.
        now_ms = _now_ms()
        yield from self._record_members([(f"s:{f}", now_ms) for f in families])

    def _create(self, record: SessionRecord) -> Op[None]:
        if record.family != family_of(record.token_hash):
            raise ValueError("record.family must be the family part of record.token_hash")
        # One row, one statement: it cannot wait on another writer in a cycle, so it needs
        # neither the family's lock nor a transaction of its own.
        yield Query(_SESSION_UPSERT, _session_params(record), alone=True)

    def _get(self, token_hash: str, now_ms: int) -> Op[SessionRecord | None]:
        if _unstorable(token_hash):
            return None  # never stored (see _one)
        record = _record((yield Query(_SESSION_SELECT, (token_hash,), alone=True)).rows)
        return record if record is not None and record.is_live(now_ms) else None

    def _rotate(
        self, token_hash: str, new: SessionRecord, now_ms: int, grace_ms: int
    ) -> Op[RotateOutcome]:
        if _unstorable(token_hash):
            return RotateOutcome("missing")
        family = family_of(token_hash)
        yield Query(_LOCK_FAMILY, (family,))
        old = _record((yield Query(_SESSION_SELECT + " FOR UPDATE", (token_hash,))).rows)
        current_next = None
        # An expired token is "missing" whatever it points at: no need to lock its successor.
        if old is not None and old.next_hash and old.expires_at_ms >= now_ms:
            reply = yield Query(_SESSION_SELECT + " FOR UPDATE", (old.next_hash,))
            current_next = _record(reply.rows)
        outcome, old_after, new_to_store = plan_rotation(
            old, current_next, new, now_ms=now_ms, grace_ms=grace_ms
        )
        if outcome.status == "reused" and old is not None:
            yield Query("DELETE FROM tokenguard_sessions WHERE family = %s", (old.family,))
            yield from self._families_revoked([old.family])
        for record in (old_after, new_to_store):
            if record is not None:
                yield Query(_SESSION_UPSERT, _session_params(record))
        return outcome

    def _rotation(
        self,
        run: Callable[[Op[Any]], Any],
        token_hash: str,
        new: SessionRecord,
        now_ms: int,
        grace_ms: int,
    ) -> Flow[RotateOutcome]:
        """The rotation and, now and then, a purge after it; ``run`` is the store's driver
        (:meth:`~tokenguard.stores.pg_driver.PgDatabase.run` or its async twin)."""
        outcome: RotateOutcome = yield Call(run, (self._rotate(token_hash, new, now_ms, grace_ms),))
        if self._due_purge(now_ms):
            try:
                yield Call(run, (self._purge(now_ms),))
            except StoreUnavailable:
                pass  # housekeeping; the rotation itself is done
        return outcome

    def _due_purge(self, now_ms: int) -> bool:
        if now_ms - self._last_purge_ms < _PURGE_EVERY_MS:
            return False
        self._last_purge_ms = now_ms
        return True

    @staticmethod
    def _purge(now_ms: int) -> Op[None]:
        # Its own transaction, after the rotation: never holds a rotation's locks longer.
        locked = yield Query("SELECT pg_try_advisory_xact_lock(%s)", (_PURGE_LOCK,))
        if locked.rows and locked.rows[0][0]:
            yield Query(_PURGE, (now_ms, now_ms))

    def _revoke(self, token_hash: str) -> Op[SessionRecord | None]:
        if _unstorable(token_hash):
            return None
        yield Query(_LOCK_FAMILY, (family_of(token_hash),))
        record = _record((yield Query(_SESSION_SELECT, (token_hash,))).rows)
        if record is not None:
            yield Query("DELETE FROM tokenguard_sessions WHERE family = %s", (record.family,))
            yield from self._families_revoked([record.family])
        return record

    def _revoke_user(self, user_id: str, except_family: str | None) -> Op[int]:
        if _unstorable(user_id):
            return 0
        if except_family is not None and _unstorable(except_family):
            except_family = None  # no stored family has it: nothing to keep
        reply = yield Query(
            "SELECT DISTINCT family FROM tokenguard_sessions"
            " WHERE user_id = %s AND family IS DISTINCT FROM %s ORDER BY family",
            (user_id, except_family),
        )
        families = [str(row[0]) for row in reply.rows]
        if not families:
            return 0
        for family in families:  # sorted: two revokers never wait on each other in a cycle
            yield Query(_LOCK_FAMILY, (family,))
        yield Query("DELETE FROM tokenguard_sessions WHERE family = ANY(%s)", (families,))
        yield from self._families_revoked(families)
        return len(families)

    @staticmethod
    def _sessions(user_id: str, now_ms: int) -> Op[list[SessionInfo]]:
        if _unstorable(user_id):
            return []
        reply = yield Query(_SESSION_OF_USER, (user_id,), alone=True)
        return summarize_sessions((_row_record(r) for r in reply.rows), user_id, now_ms)

    def _revoke_session(self, user_id: str, family: str) -> Op[bool]:
        if _unstorable(user_id) or _unstorable(family):
            return False
        yield Query(_LOCK_FAMILY, (family,))
        reply = yield Query(
            "DELETE FROM tokenguard_sessions WHERE family = %s AND EXISTS (SELECT 1"
            " FROM tokenguard_sessions WHERE family = %s AND user_id = %s) RETURNING 1",
            (family, family, user_id),
        )
        if not reply.rows:
            return False
        yield from self._families_revoked([family])  # as every other end of a session
        return True


class PgSessionStore(_SessionLogic, SyncOwned):
    """:class:`~tokenguard.stores.base.SessionStore` in ``tokenguard_sessions``."""

    def __init__(self, target: str | PgDatabase) -> None:
        _SessionLogic.__init__(self)
        SyncOwned.__init__(self, sync_db(target))

    def create(self, record: SessionRecord) -> None:
        self.db.run(self._create(record))

    def get(self, token_hash: str, now_ms: int) -> SessionRecord | None:
        return self.db.run(self._get(token_hash, now_ms))

    def rotate(
        self, token_hash: str, new: SessionRecord, *, now_ms: int, grace_ms: int
    ) -> RotateOutcome:
        return run_sync(self._rotation(self.db.run, token_hash, new, now_ms, grace_ms))

    def revoke(self, token_hash: str) -> SessionRecord | None:
        return self.db.run(self._revoke(token_hash))

    def revoke_user(self, user_id: str, *, except_family: str | None = None) -> int:
        return self.db.run(self._revoke_user(user_id, except_family))

    def sessions(self, user_id: str, now_ms: int) -> list[SessionInfo]:
        return self.db.run(self._sessions(user_id, now_ms))

    def revoke_session(self, user_id: str, family: str) -> bool:
        return self.db.run(self._revoke_session(user_id, family))

    def record_revocations(self, members: list[tuple[str, int]], message: str = "") -> None:
        """Write ``members`` (name, ms) to ``tokenguard_revocations`` and announce them to
        every listening process (NOTIFY, in the same transaction); ``message`` (the Redis
        channel's form) is not needed here."""
        self.db.run(self._record_members(members))

    def revocation_scores(self, sid: str | None, user: str | None) -> tuple[int | None, int | None]:
        """When session ``sid`` was revoked and ``user``'s not-before time, in ms (``None``
        for either when the window holds none)."""
        return self.db.run(_revocation_scores(sid, user))


class AsyncPgSessionStore(_SessionLogic, AsyncOwned):
    """:class:`~tokenguard.stores.base.AsyncSessionStore` in ``tokenguard_sessions``."""

    def __init__(self, target: str | AsyncPgDatabase) -> None:
        _SessionLogic.__init__(self)
        AsyncOwned.__init__(self, async_db(target))

    async def create(self, record: SessionRecord) -> None:
        await self.db.run(self._create(record))

    async def get(self, token_hash: str, now_ms: int) -> SessionRecord | None:
        return await self.db.run(self._get(token_hash, now_ms))

    async def rotate(
        self, token_hash: str, new: SessionRecord, *, now_ms: int, grace_ms: int
    ) -> RotateOutcome:
        return await run_async(self._rotation(self.db.run, token_hash, new, now_ms, grace_ms))

    async def revoke(self, token_hash: str) -> SessionRecord | None:
        return await self.db.run(self._revoke(token_hash))

    async def revoke_user(self, user_id: str, *, except_family: str | None = None) -> int:
        return await self.db.run(self._revoke_user(user_id, except_family))

    async def sessions(self, user_id: str, now_ms: int) -> list[SessionInfo]:
        return await self.db.run(self._sessions(user_id, now_ms))

    async def revoke_session(self, user_id: str, family: str) -> bool:
        return await self.db.run(self._revoke_session(user_id, family))

    async def record_revocations(self, members: list[tuple[str, int]], message: str = "") -> None:
        """See :meth:`PgSessionStore.record_revocations`."""
        await self.db.run(self._record_members(members))

    async def revocation_scores(
        self, sid: str | None, user: str | None
    ) -> tuple[int | None, int | None]:
        """See :meth:`PgSessionStore.revocation_scores`."""
        return await self.db.run(_revocation_scores(sid, user))


# --------------------------------------------------------------------------- users

_USER_COLUMNS = tuple(f.name for f in fields(User))
_USER_FIELDS = frozenset(_USER_COLUMNS) - {"id"}
_USER_SELECT = f"SELECT {', '.join(_USER_COLUMNS)} FROM tokenguard_users"  # noqa: S608
_USER_WRITE_COLUMNS = (*_USER_COLUMNS, "email_key", "external_key")
_USER_INSERT = (
    f"INSERT INTO tokenguard_users ({', '.join(_USER_WRITE_COLUMNS)})"  # noqa: S608
    f" VALUES ({', '.join('%s' for _ in _USER_WRITE_COLUMNS)})"
)
_USER_UPDATE = (
    "UPDATE tokenguard_users SET "  # noqa: S608 (fixed names)
    + ", ".join(f"{c} = %s" for c in _USER_WRITE_COLUMNS)
    + " WHERE id = %s"
)


def _user_params(user: User) -> tuple[Any, ...]:
    external = user.external_identifier
    return (
        *astuple(user),
        user.email.casefold(),
        None if external is None else external.casefold(),
    )


def _user(rows: list[tuple[Any, ...]]) -> User | None:
    return User(*rows[0]) if rows else None


class _UserLogic:
    """The user operations, as steps for either driver (no I/O here)."""

    @staticmethod
    def _one(where: str, value: str) -> Op[User | None]:
        if _unstorable(value):
            return None  # PostgreSQL cannot hold it, so no user has it (and no query fails)
        sql = f"{_USER_SELECT} WHERE {where} = %s"
        return _user((yield Query(sql, (value,), alone=True)).rows)

    def _by_id(self, user_id: str) -> Op[User | None]:
        return self._one("id", user_id)

    def _by_email(self, email: str) -> Op[User | None]:
        return self._one("email_key", email.casefold())

    def _by_token_hash(self, token_hash: str) -> Op[User | None]:
        return self._one("token_hash", token_hash)

    def _by_external(self, identifier: str) -> Op[User | None]:
        return self._one("external_key", identifier.casefold())

    @staticmethod
    def _create(user: User) -> Op[User]:
        yield Query(
            _USER_INSERT,
            _user_params(user),
            conflict=f"a user with this id, e-mail, token or external identifier exists "
            f"({user.id!r})",
            alone=True,
        )
        return user

    @staticmethod
    def _update(user_id: str, changes: dict[str, Any]) -> Op[User | None]:
        unknown = set(changes) - _USER_FIELDS
        if unknown:
            raise ValueError(f"unknown user field(s): {', '.join(sorted(unknown))}")
        current = _user((yield Query(f"{_USER_SELECT} WHERE id = %s FOR UPDATE", (user_id,))).rows)
        if current is None:
            return None
        updated = replace(current, **changes)
        yield Query(
            _USER_UPDATE,
            (*_user_params(updated), user_id),
            conflict=f"another user has this e-mail, token or external identifier ({user_id!r})",
        )
        return updated

    @staticmethod
    def _delete(user_id: str) -> Op[bool]:
        reply = yield Query("DELETE FROM tokenguard_users WHERE id = %s", (user_id,), alone=True)
        return reply.rowcount > 0

    @staticmethod
    def _list() -> Op[list[User]]:
        reply = yield Query(f"{_USER_SELECT} ORDER BY seq", alone=True)
        return [User(*row) for row in reply.rows]


class PgUserStore(_UserLogic, SyncOwned):
    """:class:`~tokenguard.stores.base.UserStore` in ``tokenguard_users``; e-mails and
    external identifiers unique casefolded (``str.casefold``), as in the other backends."""

    def __init__(self, target: str | PgDatabase) -> None:
        SyncOwned.__init__(self, sync_db(target))

    def get_by_id(self, user_id: str) -> User | None:
        return self.db.run(self._by_id(user_id))

    def get_by_email(self, email: str) -> User | None:
        return self.db.run(self._by_email(email))

    def get_by_token_hash(self, token_hash: str) -> User | None:
        return self.db.run(self._by_token_hash(token_hash))

    def get_by_external_identifier(self, identifier: str) -> User | None:
        return self.db.run(self._by_external(identifier))

    def create(self, user: User) -> User:
        return self.db.run(self._create(user))

    def update(self, user_id: str, **changes: Any) -> User | None:
        return self.db.run(self._update(user_id, changes))

    def delete(self, user_id: str) -> bool:
        return self.db.run(self._delete(user_id))

    def list_users(self) -> list[User]:
        return self.db.run(self._list())


class AsyncPgUserStore(_UserLogic, AsyncOwned):
    """:class:`~tokenguard.stores.base.AsyncUserStore` in ``tokenguard_users``."""

    def __init__(self, target: str | AsyncPgDatabase) -> None:
        AsyncOwned.__init__(self, async_db(target))

    async def get_by_id(self, user_id: str) -> User | None:
        return await self.db.run(self._by_id(user_id))

    async def get_by_email(self, email: str) -> User | None:
        return await self.db.run(self._by_email(email))

    async def get_by_token_hash(self, token_hash: str) -> User | None:
        return await self.db.run(self._by_token_hash(token_hash))

    async def get_by_external_identifier(self, identifier: str) -> User | None:
        return await self.db.run(self._by_external(identifier))

    async def create(self, user: User) -> User:
        return await self.db.run(self._create(user))

    async def update(self, user_id: str, **changes: Any) -> User | None:
        return await self.db.run(self._update(user_id, changes))

    async def delete(self, user_id: str) -> bool:
        return await self.db.run(self._delete(user_id))

    async def list_users(self) -> list[User]:
        return await self.db.run(self._list())


# --------------------------------------------------------------------------- one-time claims


def _claim(key: str, ttl_ms: int, now_ms: int) -> Op[bool]:
    # One statement, atomic: a new key is inserted, an expired one taken over, a live one
    # left alone (then nothing is returned and the claim loses).
    reply = yield Query(
        "INSERT INTO tokenguard_once (key, expires_at_ms) VALUES (%s, %s)"
        " ON CONFLICT (key) DO UPDATE SET expires_at_ms = EXCLUDED.expires_at_ms"
        " WHERE tokenguard_once.expires_at_ms <= %s RETURNING 1",
        (digest(key), now_ms + max(ttl_ms, 1), now_ms),
    )
    won = bool(reply.rows)
    if won and now_ms % 64 == 0:
        # Now and then, forget what has expired (cheap, bounded by the index); rows another
        # claim holds are skipped, so two purges never wait on each other.
        yield Query(
            "DELETE FROM tokenguard_once WHERE key IN (SELECT key FROM tokenguard_once"
            " WHERE expires_at_ms <= %s FOR UPDATE SKIP LOCKED)",
            (now_ms,),
        )
    return won


class PgOnceStore(SyncOwned):
    """:class:`~tokenguard.stores.base.OnceStore` in ``tokenguard_once`` (hashed keys)."""

    def __init__(self, target: str | PgDatabase) -> None:
        super().__init__(sync_db(target))

    def claim(self, key: str, ttl_ms: int, now_ms: int) -> bool:
        return self.db.run(_claim(key, ttl_ms, now_ms))


class AsyncPgOnceStore(AsyncOwned):
    """:class:`~tokenguard.stores.base.AsyncOnceStore` in ``tokenguard_once``."""

    def __init__(self, target: str | AsyncPgDatabase) -> None:
        super().__init__(async_db(target))

    async def claim(self, key: str, ttl_ms: int, now_ms: int) -> bool:
        return await self.db.run(_claim(key, ttl_ms, now_ms))


# --------------------------------------------------------------------------- audit trail

_AUDIT_FIELDS = tuple(AuditEvent.__dataclass_fields__)


def _append(event: AuditEvent, max_events: int) -> Op[None]:
    row = event.to_dict()
    reply = yield Query(
        f"INSERT INTO tokenguard_audit ({', '.join(_AUDIT_FIELDS)})"  # noqa: S608 (fixed names)
        f" VALUES ({', '.join('%s' for _ in _AUDIT_FIELDS)}) RETURNING id",
        tuple(_clean(row[f]) for f in _AUDIT_FIELDS),
    )
    last = int(reply.rows[0][0])
    if last > max_events:
        # Ids only grow: everything this far behind is past the cap. Rows another append is
        # deleting are skipped (SKIP LOCKED): two appends never wait on each other.
        yield Query(
            "DELETE FROM tokenguard_audit WHERE id IN (SELECT id FROM tokenguard_audit"
            " WHERE id <= %s FOR UPDATE SKIP LOCKED)",
            (last - max_events,),
        )


def _recent(limit: int, user_id: str | None, event: str | None) -> Op[list[AuditEvent]]:
    if limit < 1:
        raise ValueError("limit must be positive")
    if any(v is not None and _unstorable(v) for v in (user_id, event)):
        return []
    where: list[str] = []
    args: list[Any] = []
    if user_id is not None:
        where.append("user_id = %s")
        args.append(user_id)
    if event is not None:
        where.append("event = %s")
        args.append(event)
    sql = f"SELECT {', '.join(_AUDIT_FIELDS)} FROM tokenguard_audit"  # noqa: S608 (fixed names)
    if where:
        sql += " WHERE " + " AND ".join(where)
    reply = yield Query(sql + " ORDER BY id DESC LIMIT %s", (*args, limit), alone=True)
    return [
        AuditEvent.from_dict(dict(zip(_AUDIT_FIELDS, map(_unclean, row), strict=True)))
        for row in reply.rows
    ]


class PgAuditStore(SyncOwned):
    """Audit events in ``tokenguard_audit``, the newest ``max_events`` kept."""

    def __init__(self, target: str | PgDatabase, *, max_events: int = 10_000) -> None:
        super().__init__(sync_db(target))
        self.max_events = max_events

    def append(self, event: AuditEvent) -> None:
        self.db.run(_append(event, self.max_events))

    def recent(
        self, limit: int = 50, *, user_id: str | None = None, event: str | None = None
    ) -> list[AuditEvent]:
        return self.db.run(_recent(limit, user_id, event))


class AsyncPgAuditStore(AsyncOwned):
    """:class:`PgAuditStore` over the asynchronous driver."""

    def __init__(self, target: str | AsyncPgDatabase, *, max_events: int = 10_000) -> None:
        super().__init__(async_db(target))
        self.max_events = max_events

    async def append(self, event: AuditEvent) -> None:
        await self.db.run(_append(event, self.max_events))

    async def recent(
        self, limit: int = 50, *, user_id: str | None = None, event: str | None = None
    ) -> list[AuditEvent]:
        return await self.db.run(_recent(limit, user_id, event))


# --------------------------------------------------------------------------- from settings


def pg_stores(
    settings: Settings, flavour: str = "sync"
) -> tuple[PgUserStore, PgSessionStore] | tuple[AsyncPgUserStore, AsyncPgSessionStore]:
    """The user and session stores of ``DB_CLIENT=pg``, sharing one connection pool (the
    one-time and audit stores made next to them join it too). Raises
    :class:`~tokenguard.stores.pg_schema.SchemaNotMigrated` when the database is reachable
    but not migrated."""
    require_psycopg()
    conninfo = conninfo_from_settings(settings)
    check_schema_at_start(conninfo)
    sizes = {"min_size": settings.db_pool_min, "max_size": settings.db_pool_max}
    if flavour == "async":
        adb = AsyncPgDatabase(conninfo, **sizes)
        return AsyncPgUserStore(adb), AsyncPgSessionStore(adb)
    db = PgDatabase(conninfo, **sizes)
    return PgUserStore(db), PgSessionStore(db)


def pg_audit_store(
    settings: Settings, flavour: str = "sync", sessions: Any = None
) -> PgAuditStore | AsyncPgAuditStore:
    """``TOKENGUARD_AUDIT_STORE=pg``: the audit trail in ``tokenguard_audit``, on the
    session store's pool when that is a PostgreSQL store of the same flavour."""
    require_psycopg()
    cap = settings.audit_max_events
    database = getattr(sessions, "db", None)
    if flavour == "async":
        if isinstance(database, AsyncPgDatabase):
            return AsyncPgAuditStore(database, max_events=cap)
        return AsyncPgAuditStore(conninfo_from_settings(settings), max_events=cap)
    if isinstance(database, PgDatabase):
        return PgAuditStore(database, max_events=cap)
    return PgAuditStore(conninfo_from_settings(settings), max_events=cap)
