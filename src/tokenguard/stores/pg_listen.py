"""A PostgreSQL connection for ``LISTEN``, where every wait is bounded.

The revocation feed (:class:`~tokenguard.guard.feeds.PgRevocationFeed`) must notice within
seconds that its server stopped answering — including a server that is frozen (SIGSTOP, a
stalled VM or network), whose sockets stay open and whose kernel still acknowledges every
byte, so that neither TCP keepalives nor ``tcp_user_timeout`` ever fire. A blocking driver
call would then wait forever, and with it the feed that should stop trusting its list. So this
connection speaks libpq's non-blocking protocol (``psycopg.pq``) and waits with ``select``:
a query, a keepalive ``SELECT 1`` and the notifications all share one socket, and every wait
has a deadline.
"""

from __future__ import annotations

import select
import time
from collections.abc import Sequence
from typing import Any

from .pg_driver import with_options

__all__ = ["PgListener"]


class PgListener:
    """One libpq connection (autocommit), its notifications queued as they arrive."""

    def __init__(self, conninfo: str, *, connect_timeout: float = 2.0) -> None:
        from psycopg import pq

        self._pq = pq
        # Our keepalive and connect-timeout defaults, as for the pool (a user's own options
        # in the connection string still win).
        self.pg: Any = pq.PGconn.connect(
            with_options(conninfo, 5_000, connect_timeout).encode("utf-8")
        )
        if self.pg.status != pq.ConnStatus.OK:
            message = self.pg.get_error_message()
            self.pg.finish()
            raise ConnectionError(f"PostgreSQL refused the listener: {message[:200]}")
        self.pg.nonblocking = 1
        #: Notification payloads received, oldest first.
        self.payloads: list[str] = []
        #: When the query whose reply is awaited was sent (monotonic), or None.
        self.pending_since: float | None = None

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self.pg.finish()

    # -- sending -----------------------------------------------------------------------------

    def send(self, sql: str, params: Sequence[str] = (), *, timeout: float) -> None:
        """Send a query (parameters in text form, as ``$1``…) without waiting for its reply
        (one at a time: :meth:`reply` first)."""
        if self.pending_since is not None:
            raise RuntimeError("a reply is still awaited")
        self.pg.send_query_params(
            sql.encode("utf-8"), [p.encode("utf-8") for p in params] if params else None
        )
        deadline = time.monotonic() + timeout
        while self.pg.flush() != 0:  # the rest stays in libpq's buffer until writable
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("PostgreSQL does not take the query")
            select.select([], [self.pg.socket], [], remaining)
        self.pending_since = time.monotonic()

    # -- receiving ---------------------------------------------------------------------------

    def wait(self, timeout: float) -> None:
        """Read what the server sent within ``timeout`` seconds (notifications are queued);
        raises when the connection is lost."""
        readable, _, _ = select.select([self.pg.socket], [], [], max(timeout, 0))
        if readable:
            self.pg.consume_input()  # raises psycopg.OperationalError on a lost connection
        while True:
            note = self.pg.notifies()
            if note is None:
                break
            self.payloads.append(bytes(note.extra).decode("utf-8", "replace"))

    def ready(self) -> list[list[str | None]] | None:
        """The awaited reply's rows when it has arrived (``None`` while it has not); raises
        when the server answered with an error."""
        if self.pending_since is None:
            raise RuntimeError("no query was sent")
        if self.pg.is_busy():
            return None
        rows: list[list[str | None]] = []
        error: str | None = None
        status = self._pq.ExecStatus
        while True:
            result = self.pg.get_result()
            if result is None:
                break
            if result.status not in (status.TUPLES_OK, status.COMMAND_OK):
                error = (result.error_message or b"").decode("utf-8", "replace")
                continue
            for row in range(result.ntuples):
                values = (result.get_value(row, col) for col in range(result.nfields))
                rows.append([None if v is None else bytes(v).decode("utf-8") for v in values])
        self.pending_since = None
        if error is not None:
            # Its queries carry no secrets (a channel, a time): the server's words may be shown.
            raise ConnectionError(f"PostgreSQL refused a listener query: {error[:120]}")
        return rows

    def query(
        self, sql: str, params: Sequence[str] = (), *, timeout: float
    ) -> list[list[str | None]]:
        """Send a query and wait at most ``timeout`` seconds for its rows."""
        deadline = time.monotonic() + timeout
        self.send(sql, params, timeout=timeout)
        while True:
            rows = self.ready()
            if rows is not None:
                return rows
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("PostgreSQL did not answer in time")
            self.wait(remaining)
