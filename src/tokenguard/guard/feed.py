"""The life of a revocation feed: one background thread per process that keeps this process's
:class:`~tokenguard.guard.revocation.Revocations` up to date with those made elsewhere.

Every session store that several processes share has a feed, over its own transport:

- Redis: pub/sub on ``<prefix>inv`` (:class:`~tokenguard.guard.invalidation.SessionInvalidation`,
  which also keeps the session-check cache coherent);
- PostgreSQL: ``LISTEN`` on the store's channel, every revocation being written to
  ``tokenguard_revocations`` and announced by ``NOTIFY`` in one transaction
  (:class:`~tokenguard.guard.feeds.PgRevocationFeed`);
- SQLite: no notifications exist, so a poller reads the rows added to
  ``tokenguard_revocations`` every 50 ms (:class:`~tokenguard.guard.feeds.SQLiteRevocationFeed`).

Written once here: a transport only says how to follow its source (:meth:`Feed._follow`). The
rules every transport keeps:

- **subscribe first, read second**: a transport listens, *then* reads the store's window of
  revocations (:meth:`Feed._caught_up`); whatever came before is in the window, whatever comes
  after arrives as a message. Only then is the registry ``trusted``;
- **fail closed**: on any loss (an error, a dropped connection, a server that went silent past
  a bound) the registry stops being trusted *at once* (:meth:`Feed._go_dark`) and the guard asks
  the store per request (503 when it cannot answer) until the transport is back and has caught
  up again; retries back off from 0.1 s to 5 s;
- **one thread per process**: a process forked after start-up (gunicorn's ``--preload``) trusts
  nothing it inherited and starts its own thread on its first request;
- :meth:`Feed.close` stops the thread in bounded time.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from .revocation import Entry, Revocations

__all__ = ["Feed"]

log = logging.getLogger("tokenguard.invalidation")

#: Seconds between a lost feed and the next attempt (doubling up to the maximum).
RETRY_MIN_S = 0.1
RETRY_MAX_S = 5.0
#: Seconds close() waits for the thread (transports wake at least every half second; a
#: connect or a read in progress is bounded by the transport's own timeouts).
JOIN_S = 10.0


def _after_fork(ref: weakref.ref[Feed]) -> None:
    feed = ref()
    if feed is not None:
        feed._forked()


class Feed:
    """A registry's feed: the thread's lifecycle, whatever the transport (see the module)."""

    #: The thread's name, and what the logs call this feed.
    thread_name = "tokenguard-feed"
    #: The store asked per request while the feed is down (for the log line).
    source_name = "the store"

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        #: True while the transport is following its source and has caught up.
        self.live = False
        #: The registry fed (see :meth:`attach`).
        self.revocations: Revocations | None = None
        #: Sets the store's windows of revocations to the registry's (a user's, a session's;
        #: milliseconds).
        self.set_window: Callable[[int, int], None] | None = None
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._subscribed = threading.Event()
        self._delay = RETRY_MIN_S
        #: Set by close(): no thread is started again, not even in a forked child.
        self._closed = False
        if hasattr(os, "register_at_fork"):  # POSIX; elsewhere no process forks
            ref = weakref.ref(self)
            os.register_at_fork(after_in_child=lambda: _after_fork(ref))

    # -- wiring ------------------------------------------------------------------------------

    def attach(self, revocations: Revocations, sessions: Any) -> None:
        """Feed ``revocations`` from this feed and the window of revocations of ``sessions``
        (its ``revocation_scores`` and ``record_revocations``); until the thread is live and
        has caught up, the registry is not trusted and that store is asked on each request."""
        self.revocations = revocations
        if self.set_window is not None:
            self.set_window(
                int(revocations.window_s * 1000), int(revocations.session_window_s * 1000)
            )
        revocations.trusted = False
        revocations.check = sessions.revocation_scores
        revocations.publish = sessions.record_revocations
        revocations.on_check = self.begin  # a thread not running yet is started

    def window_start_ms(self) -> int:
        """The oldest revocation that may still refuse a token (Unix ms): where a catch-up
        reads from."""
        window_s = self.revocations.window_s if self.revocations is not None else 0.0
        return int((self.clock() - window_s) * 1000)

    # -- lifecycle ---------------------------------------------------------------------------

    def begin(self) -> object:
        """Start the thread in this process unless it runs (called on requests that need it)."""
        if self._pid != os.getpid() and not self._closed:
            self._start()
        return None

    def start(self, wait_s: float | None = None) -> bool:
        """Start the thread now (else the first request that needs it does); with ``wait_s``,
        wait that long for it to catch up; whether it is live."""
        self.begin()
        if wait_s is not None:
            self._subscribed.wait(wait_s)
        return self.live

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid() or self._closed:
                return
            # A fresh process (or a fork): nothing inherited is trusted.
            self._pid = os.getpid()
            self.live = False
            self._forget()
            self._stop = threading.Event()
            self._subscribed = threading.Event()
            self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
            self._thread.start()

    def _forked(self) -> None:
        # In a child: the parent's thread does not exist here, so whatever it vouched for
        # may go stale; the child's first request that needs it starts its own.
        if self.revocations is not None and self._pid is not None:
            self.revocations.trusted = False
        self.live = False
        self._lock = threading.Lock()  # a lock held by another thread at fork stays held

    def _forget(self) -> None:
        """What a transport must drop when the feed goes dark or restarts (holding the lock)."""

    def _go_dark(self) -> None:
        if self.revocations is not None:
            self.revocations.trusted = False  # first, before anything else
        with self._lock:
            self.live = False
            self._forget()
        self._subscribed.clear()

    def _caught_up(self, entries: Iterable[Entry]) -> None:
        """Called by a transport once it listens and has read the store's window: from now
        on the registry is trusted."""
        rv = self.revocations
        if rv is not None:
            rv.apply(entries)
            rv.trusted = True
        with self._lock:
            self._forget()  # whatever was missed before now
            self.live = True
        self._subscribed.set()
        self._delay = RETRY_MIN_S  # a later loss is a fresh one: retried soon

    def _heard(self, entries: Iterable[Entry]) -> None:
        """Called by a transport with the revocations announced since it caught up."""
        if self.revocations is not None:
            self.revocations.apply(entries)

    def _follow(self, stop: threading.Event) -> None:
        """Follow the source until ``stop`` is set (return) or it is lost (raise): listen,
        call :meth:`_caught_up`, then :meth:`_heard` for every announcement."""
        raise NotImplementedError

    def _run(self) -> None:
        self._delay = RETRY_MIN_S
        stop = self._stop
        while not stop.is_set():
            try:
                self._follow(stop)
            except Exception as exc:  # any failure: stop trusting, then retry
                self._go_dark()
                log.warning(
                    "%s lost (%s); checking %s on every request until it is back",
                    self.thread_name,
                    type(exc).__name__,
                    self.source_name,
                )
                stop.wait(self._delay)
                self._delay = min(self._delay * 2, RETRY_MAX_S)
        self._go_dark()

    def close(self) -> None:
        """Stop the thread for good and wait for it (orderly shutdown, tests). Idempotent.
        Afterwards the registry is not trusted: every token is checked against the store."""
        with self._lock:
            self._closed = True
            stop, thread = self._stop, self._thread
        stop.set()
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout=JOIN_S)
            if thread.is_alive():
                log.warning("%s did not stop in %.0f s", self.thread_name, JOIN_S)
        self._go_dark()
