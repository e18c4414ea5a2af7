"""The revocation feeds of the PostgreSQL and SQLite session stores (the Redis one is
:class:`~tokenguard.guard.invalidation.SessionInvalidation`); their common life is
:class:`~tokenguard.guard.feed.Feed`.

- :class:`PgRevocationFeed` — ``LISTEN`` on its own connection (:mod:`tokenguard.stores.pg_listen`):
  it listens, then reads ``tokenguard_revocations`` for the current window, and only then
  trusts the registry; every revocation arrives as a ``NOTIFY`` sent by the transaction that
  wrote it. A ``SELECT 1`` every 0.5 s proves the server alive: an answer awaited 1.5 s (a
  frozen server), an error or a dropped connection ends trust at once, within about 2 s in
  all.
- :class:`SQLiteRevocationFeed` — several processes on one host share the file, and SQLite
  has no notifications: a poller reads the rows added since the last one it saw, every
  50 ms (one indexed query). A revocation reaches every process within one poll; a poll that
  fails ends trust until one succeeds again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from .feed import Feed
from .revocation import Entry, entry_from_member

__all__ = ["PgRevocationFeed", "SQLiteRevocationFeed", "revocation_feed_for"]

#: PostgreSQL: seconds between keepalive queries, of silence after which the server counts as
#: lost, and the longest single wait (how soon the thread notices it should stop).
_PING_S = 0.5
_SILENT_S = 1.5
_WAIT_S = 0.25
#: Seconds a catch-up query may take (the window may hold many rows).
_QUERY_S = 5.0
#: SQLite: seconds between polls.
POLL_S = 0.05


def _entries(members: Iterable[tuple[Any, Any]]) -> list[Entry]:
    found = []
    for member, at in members:
        entry = entry_from_member(str(member), float(at))
        if entry is not None:
            found.append(entry)
    return found


class PgRevocationFeed(Feed):
    """Revocations of every process, through PostgreSQL's ``LISTEN``/``NOTIFY``."""

    thread_name = "tokenguard-pg-revocations"
    source_name = "PostgreSQL"

    def __init__(self, conninfo: str, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock=clock)
        self.conninfo = conninfo
        #: Notifications received (tests, metrics).
        self.received = 0

    def _follow(self, stop: threading.Event) -> None:
        from ..stores.pg_listen import PgListener
        from ..stores.postgres import REVOCATION_CHANNEL_SQL

        listener = PgListener(self.conninfo)
        try:
            ((channel,),) = listener.query(f"SELECT {REVOCATION_CHANNEL_SQL}", timeout=_QUERY_S)
            listener.query(f'LISTEN "{channel}"', timeout=_QUERY_S)
            # Listening first, reading second: what was written before is in the table,
            # what is written after arrives as a notification.
            self._caught_up(self._window(listener))
            pinged = time.monotonic()
            while not stop.is_set():
                listener.wait(_WAIT_S)
                now = time.monotonic()
                if listener.pending_since is not None:
                    if listener.ready() is None and now - listener.pending_since > _SILENT_S:
                        # A frozen server keeps its socket open and says nothing.
                        raise ConnectionError("PostgreSQL went silent")
                elif now - pinged >= _PING_S:
                    pinged = now
                    listener.send("SELECT 1", timeout=_SILENT_S)
                self._deliver(listener)
        finally:
            listener.close()

    def _window(self, listener: Any) -> list[Entry]:
        from ..stores.postgres import REVOCATION_WINDOW_SQL

        if listener.pending_since is not None:  # a keepalive's reply first
            deadline = time.monotonic() + _SILENT_S
            while listener.ready() is None:
                if time.monotonic() > deadline:
                    raise ConnectionError("PostgreSQL went silent")
                listener.wait(_WAIT_S)
        rows = listener.query(
            REVOCATION_WINDOW_SQL, (str(self.window_start_ms()),), timeout=_QUERY_S
        )
        return _entries((member, at) for member, at in rows)

    def _deliver(self, listener: Any) -> None:
        from ..stores.postgres import read_revocation_payload

        payloads, listener.payloads = listener.payloads, []
        catch_up = False
        for payload in payloads:
            self.received += 1
            members = read_revocation_payload(payload)
            if members is None:
                catch_up = True
            else:
                self._heard(_entries(members))
        if catch_up:  # too many to announce: read them (once, however many said so)
            self._heard(self._window(listener))


class SQLiteRevocationFeed(Feed):
    """Revocations of every process sharing one SQLite file, polled every 50 ms."""

    thread_name = "tokenguard-sqlite-revocations"
    source_name = "the SQLite file"

    def __init__(
        self, sessions: Any, *, poll_s: float = POLL_S, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(clock=clock)
        self.sessions = sessions
        self.poll_s = poll_s
        #: Polls done (tests, metrics).
        self.polls = 0

    def _follow(self, stop: threading.Event) -> None:
        # The first read is the catch-up (the window, and where the log stands): one
        # snapshot, so the next poll starts exactly after it.
        members, last = self.sessions.revocations_after(None, self.window_start_ms())
        self._caught_up(_entries(members))
        while not stop.wait(self.poll_s):
            members, last = self.sessions.revocations_after(last)
            self.polls += 1
            if members:
                self._heard(_entries(members))


def revocation_feed_for(sessions: object) -> Feed | None:
    """The feed of a PostgreSQL or SQLite-file session store (see
    :func:`~tokenguard.stores.select.revocation_source`); ``None`` for the others (Redis has
    :func:`~tokenguard.guard.invalidation.invalidation_for`; memory is one process)."""
    from ..stores.select import revocation_source

    source = revocation_source(sessions)
    if source is None:
        return None
    feed: Feed
    if source.kind == "pg":
        feed = PgRevocationFeed(source.conninfo)
    else:
        feed = SQLiteRevocationFeed(sessions)
    feed.set_window = source.set_window
    return feed
