"""The PostgreSQL driver shared by every PostgreSQL store: steps, pools, errors.

An operation is a generator that yields :class:`Query` steps and receives :class:`Result`
replies; :class:`PgDatabase` (``psycopg`` + ``psycopg_pool.ConnectionPool``) and
:class:`AsyncPgDatabase` (``AsyncConnectionPool``) run it in one transaction on one pooled
connection, so the stores of :mod:`tokenguard.stores.postgres` are written once for both.
The drivers are written once too: what is said to the connection (the schema check, the
transaction, each statement) is one flow of calls (:mod:`tokenguard.flow`), which
:class:`PgDatabase` runs with :func:`~tokenguard.flow.run_sync` and
:class:`AsyncPgDatabase` with :func:`~tokenguard.flow.run_async`.
Every failure to answer becomes :class:`~tokenguard.stores.base.StoreUnavailable`
``("database", …)``; a value PostgreSQL cannot hold becomes ``ValueError``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Generator, Mapping
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ..errors import MissingExtra
from ..flow import Call, Flow, run_async, run_sync
from .base import StoreUnavailable
from .pg_schema import SchemaNotMigrated, schema_check

if TYPE_CHECKING:
    from ..config import Settings

__all__ = [
    "AsyncOwned",
    "AsyncPgDatabase",
    "Op",
    "Owned",
    "PgDatabase",
    "Query",
    "Result",
    "SyncOwned",
    "async_db",
    "check_schema_at_start",
    "conninfo_from_env",
    "conninfo_from_settings",
    "make_pg_conninfo",
    "require_psycopg",
    "sync_db",
    "with_options",
]

T = TypeVar("T")
_log = logging.getLogger("tokenguard.stores.postgres")


# --------------------------------------------------------------------------- steps


@dataclass(frozen=True, slots=True)
class Query:
    """Run ``sql`` with ``params`` in the operation's transaction; the reply is a
    :class:`Result`. ``conflict`` is the ``ValueError`` message when the statement breaks a
    unique constraint (a duplicate user); without it, that is the database's fault."""

    sql: str
    params: tuple[Any, ...] = ()
    conflict: str | None = None
    #: The operation's only statement: run without BEGIN/COMMIT (one statement is atomic
    #: on its own), saving two round trips on the hot read path.
    alone: bool = False


@dataclass(frozen=True, slots=True)
class Result:
    """What a :class:`Query` gave: its rows (empty for a statement without any) and how
    many rows it touched."""

    rows: list[tuple[Any, ...]]
    rowcount: int


Op = Generator[Query, Result, T]


def _last_reply(op: Op[T], result: Result) -> T:
    """Hand the result of an ``alone`` statement to ``op``, which must then finish."""
    try:
        op.send(result)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    raise RuntimeError("an operation marked `alone` asked for a second statement")


def conninfo_from_settings(settings: Settings) -> str:
    """The libpq connection string of ``DB_CONNECTION_STRING``, or of ``DB_HOST``,
    ``DB_PORT``, ``DB_DATABASE``, ``DB_USER`` and ``DB_PASSWORD``."""
    return make_pg_conninfo(
        settings.db_connection_string,
        host=settings.db_host,
        port=settings.db_port,
        dbname=settings.db_database,
        user=settings.db_user,
        password=settings.db_password,
    )


def conninfo_from_env(environ: Mapping[str, str]) -> str:
    """:func:`conninfo_from_settings` straight from the ``DB_*`` variables (the command line
    needs no ``SECRET`` to migrate)."""
    return make_pg_conninfo(
        environ.get("DB_CONNECTION_STRING"),
        host=environ.get("DB_HOST"),
        port=environ.get("DB_PORT"),
        dbname=environ.get("DB_DATABASE"),
        user=environ.get("DB_USER"),
        password=environ.get("DB_PASSWORD"),
    )


def make_pg_conninfo(connection_string: str | None, **parts: Any) -> str:
    """``connection_string`` if given (a ``postgresql://`` URL or ``key=value`` pairs),
    else one made of the non-empty ``parts``."""
    from psycopg.conninfo import make_conninfo

    if connection_string:
        return connection_string
    return make_conninfo("", **{k: v for k, v in parts.items() if v not in (None, "")})


def _unavailable(exc: BaseException) -> StoreUnavailable:
    import psycopg
    from psycopg_pool import PoolTimeout

    if isinstance(exc, PoolTimeout | psycopg.OperationalError | OSError):
        # Down, restarting, refusing connections, or a connection lost mid-query.
        return StoreUnavailable("database", "Couldn't reach PostgreSQL")
    # The class name only: server messages may quote parameters (a token hash, an e-mail).
    return StoreUnavailable("database", f"PostgreSQL failed: {type(exc).__name__}")


def _not_migrated(exc: SchemaNotMigrated) -> StoreUnavailable:
    _log.error("%s", exc)
    return StoreUnavailable("database", "schema not migrated (run `tokenguard db migrate`)")


def _translate(exc: Exception, step: Query) -> Exception:
    """What psycopg and the pool raised, as the store's errors (one place for both
    drivers)."""
    import psycopg

    if isinstance(exc, psycopg.errors.UniqueViolation) and step.conflict:
        return ValueError(step.conflict)
    if isinstance(exc, psycopg.DataError | ValueError):
        # A value PostgreSQL cannot hold (a NUL character, a number out of range, a lone
        # surrogate): the caller's input, not an outage.
        return ValueError(f"a value cannot be stored in PostgreSQL ({type(exc).__name__})")
    return _unavailable(exc)


# Defaults a connection string may override. Over TCP, a server that vanished (a network
# partition) is noticed in seconds, not at the kernel's two-hour keepalive default (libpq
# ignores these on Unix sockets).
_CONNECTION_DEFAULTS = {
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "2",
    "keepalives_count": "3",
    "tcp_user_timeout": "10000",
}


def with_options(conninfo: str, statement_timeout_ms: int, connect_timeout: float = 2) -> str:
    """``conninfo`` with our defaults where it sets none, and a ``statement_timeout`` added
    to its ``options`` (kept, not replaced: a user's own ``-c search_path=…`` still
    applies)."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(conninfo)
    for name, value in _CONNECTION_DEFAULTS.items():
        params.setdefault(name, value)
    params.setdefault("connect_timeout", str(max(2, round(connect_timeout))))
    ours = f"-c statement_timeout={int(statement_timeout_ms)}"
    given = str(params.get("options") or "")
    params["options"] = f"{ours} {given}".strip()
    return make_conninfo("", **params)


def _pool_options(timeout: float, min_size: int, max_size: int) -> dict[str, Any]:
    return {
        "min_size": min_size,
        "max_size": max_size,
        # How long a request waits for a connection before it is answered 503.
        "timeout": timeout,
        # A connection attempt that keeps failing is given up quickly: the next request
        # then starts a fresh one instead of waiting for a long backoff to run out.
        "reconnect_timeout": max(2 * timeout, 2.0),
        "kwargs": {"autocommit": True},  # transactions are explicit (conn.transaction())
    }


# --------------------------------------------------------------------------- drivers


class _Exchange(Generic[T]):
    """One operation being run, and the statement it is at: ``None`` before its first
    (then a failure is the caller's argument error), else the statement whose ``conflict``
    names a unique violation."""

    __slots__ = ("op", "step")

    def __init__(self, op: Op[T]) -> None:
        self.op = op
        self.step: Query | None = None

    def failure(self, exc: Exception, raw_schema_error: bool) -> Exception:
        """What the driver raises for ``exc``."""
        if self.step is None or isinstance(exc, StoreUnavailable):
            return exc
        if isinstance(exc, SchemaNotMigrated):
            return exc if raw_schema_error else _not_migrated(exc)
        return _translate(exc, self.step)


def _execute(conn: Any, query: Query) -> Flow[Result]:
    cursor = yield Call(conn.execute, (query.sql, query.params))
    rows = (yield Call(cursor.fetchall)) if cursor.description else []
    return Result(rows, cursor.rowcount)


def _check_schema(conn: Any) -> Flow[None]:
    """:func:`~tokenguard.stores.pg_schema.schema_check` on ``conn``."""
    check = schema_check()
    sql, params = next(check)
    while True:
        cursor = yield Call(conn.execute, (sql, params))
        try:
            sql, params = check.send((yield Call(cursor.fetchall)))
        except StopIteration:
            return


class _Pooled:
    """What both drivers hold: the connection settings, the (lazily made) pool, whether the
    schema was checked, and how many stores share it; and what both say to a connection."""

    def __init__(
        self,
        conninfo: str,
        *,
        timeout: float = 2.0,
        statement_timeout_ms: int = 5_000,
        min_size: int = 1,
        max_size: int = 10,
    ) -> None:
        self.conninfo = conninfo
        self._pool_conninfo = with_options(conninfo, statement_timeout_ms, timeout)
        self._options = _pool_options(timeout, min_size, max_size)
        self._pool: Any = None
        self._checked = False
        self.holders = 0  # stores sharing this database; the last one to close closes it

    def _get_pool(self) -> Any:
        """The pool, opened on first use (async: an awaitable of it)."""
        raise NotImplementedError

    def _new_pool(self, pool_class: Any, name: str) -> Any:
        """A pool of ``pool_class`` (sync or async), not opened yet."""
        return pool_class(
            self._pool_conninfo,
            open=False,
            check=pool_class.check_connection,
            name=name,
            **self._options,
        )

    def _talk(self, exchange: _Exchange[T], enter: Callable[[Any], Any]) -> Flow[T]:
        """``exchange``'s operation on one pooled connection, as calls of the pool and the
        connection; ``enter`` enters a context (the connection, the transaction) that the
        driver leaves when the flow is over, whichever way."""
        op = exchange.op
        try:
            step = exchange.step = next(op)  # argument errors surface here, before any I/O
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        pool = yield Call(self._get_pool)
        conn = yield Call(enter, (pool.connection(),))
        if not self._checked:
            yield from _check_schema(conn)
            self._checked = True
        if step.alone:
            return _last_reply(op, (yield from _execute(conn, step)))
        yield Call(enter, (conn.transaction(),))
        while True:
            result = yield from _execute(conn, step)
            try:
                step = exchange.step = op.send(result)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]


class PgDatabase(_Pooled):
    """A synchronous connection pool and the driver of the shared operations.

    Opened on first use (a store that is never used opens nothing). The schema is checked
    once, on the first connection: :class:`~tokenguard.stores.pg_schema.SchemaNotMigrated`
    from :meth:`check_schema`, a 503 (and an error log) from a request.
    """

    def __init__(self, conninfo: str, **options: Any) -> None:
        super().__init__(conninfo, **options)
        self._lock = threading.Lock()

    def _get_pool(self) -> Any:
        with self._lock:
            if self._pool is None:
                from psycopg_pool import ConnectionPool

                self._pool = self._new_pool(ConnectionPool, "tokenguard")
                self._pool.open(wait=False)
            return self._pool

    def check_schema(self) -> None:
        """Raise :class:`SchemaNotMigrated` unless ``tokenguard db migrate`` has run;
        :class:`StoreUnavailable` if the server cannot be reached."""
        self.run(_ping(), raw_schema_error=True)

    def run(self, op: Op[T], *, raw_schema_error: bool = False) -> T:
        """Run ``op`` in one transaction."""
        exchange = _Exchange(op)
        try:
            with ExitStack() as contexts:
                return run_sync(self._talk(exchange, contexts.enter_context))
        except Exception as exc:  # see _Exchange.failure
            raise exchange.failure(exc, raw_schema_error) from None

    def close(self) -> None:
        """Close the pool (idempotent; a later call opens a new one)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()


class AsyncPgDatabase(_Pooled):
    """The asynchronous twin of :class:`PgDatabase` (an ``AsyncConnectionPool``, opened on
    first use in the running event loop)."""

    def __init__(self, conninfo: str, **options: Any) -> None:
        super().__init__(conninfo, **options)
        self._opened = False

    async def _get_pool(self) -> Any:
        if self._pool is None:
            from psycopg_pool import AsyncConnectionPool

            self._pool = self._new_pool(AsyncConnectionPool, "tokenguard-async")
        if not self._opened:
            # open() is idempotent and locked: coroutines arriving together all wait for it.
            await self._pool.open(wait=False)
            self._opened = True
        return self._pool

    async def check_schema(self) -> None:
        """See :meth:`PgDatabase.check_schema`."""
        await self.run(_ping(), raw_schema_error=True)

    async def run(self, op: Op[T], *, raw_schema_error: bool = False) -> T:
        """Run ``op`` in one transaction."""
        exchange = _Exchange(op)
        try:
            async with AsyncExitStack() as contexts:
                return await run_async(self._talk(exchange, contexts.enter_async_context))
        except Exception as exc:  # see _Exchange.failure
            raise exchange.failure(exc, raw_schema_error) from None

    async def aclose(self) -> None:
        """Close the pool (idempotent)."""
        pool, self._pool = self._pool, None
        self._opened = False
        if pool is not None:
            await pool.close()


def _ping() -> Op[None]:
    """An operation of one trivial query: runs the schema check and nothing else."""
    yield Query("SELECT 1", alone=True)


class Owned:
    """A store over a database it may share; closing the last store closes the pool."""

    def __init__(self, db: PgDatabase | AsyncPgDatabase) -> None:
        self.db = db
        db.holders += 1
        self._closed = False

    def _release(self) -> bool:
        if self._closed:
            return False
        self._closed = True
        self.db.holders -= 1
        return self.db.holders <= 0

    def discard(self) -> None:
        """Let go of a store that was made but is not used (synchronously, in either
        flavour): it stops counting as a user of the pool, which the others close."""
        if self._release() and isinstance(self.db, PgDatabase):
            self.db.close()


class SyncOwned(Owned):
    db: PgDatabase
    io_bound = True  # under ASGI the core runs it in a worker thread

    def close(self) -> None:
        """Release this store; the pool closes with the last store using it."""
        if self._release():
            self.db.close()


class AsyncOwned(Owned):
    db: AsyncPgDatabase
    io_bound = False

    async def aclose(self) -> None:
        """Release this store; the pool closes with the last store using it."""
        if self._release():
            await self.db.aclose()


def sync_db(target: str | PgDatabase) -> PgDatabase:
    return PgDatabase(target) if isinstance(target, str) else target


def async_db(target: str | AsyncPgDatabase) -> AsyncPgDatabase:
    return AsyncPgDatabase(target) if isinstance(target, str) else target


def require_psycopg() -> None:
    from importlib.util import find_spec

    if find_spec("psycopg") is None or find_spec("psycopg_pool") is None:
        raise MissingExtra("DB_CLIENT=pg", "psycopg 3", "pg")


def check_schema_at_start(conninfo: str, *, timeout: int = 2) -> None:
    """Refuse to start on a database ``tokenguard db migrate`` has not prepared
    (:class:`SchemaNotMigrated`). A server that cannot be reached now is not a reason to
    refuse: requests answer 503 until it is back, and the stores check the schema then."""
    import psycopg

    try:
        with psycopg.connect(
            with_options(conninfo, 5_000), autocommit=True, connect_timeout=timeout
        ) as conn:
            check = schema_check()
            sql, params = next(check)
            try:
                while True:
                    sql, params = check.send(conn.execute(sql, params).fetchall())
            except StopIteration:
                return
    except psycopg.Error as exc:
        _log.warning(
            "PostgreSQL unreachable at start-up (%s): its schema is checked on first use",
            type(exc).__name__,
        )
