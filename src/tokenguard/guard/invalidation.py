"""Session checks cached per process, kept coherent across processes through Redis pub/sub.

A session-mode request carries a JWT whose ``session`` claim must still be live in the
session store. Checking Redis on every request costs a round trip per request; instead the
guard remembers a successful check for at most ``TOKENGUARD_SESSION_CACHE_TTL`` (default 5 s)
and every revocation is announced on the channel ``<prefix>inv`` by the Redis store itself,
inside the same Lua script or round trip that deletes the session (logout, refresh-token
reuse, a user's sessions revoked — from any process, the CLI included). Each process runs
one subscriber thread that drops the announced families from its cache.

Fail safe, in order of importance:

- nothing is cached unless the subscriber is subscribed *now*; when its connection drops,
  every cached session check is forgotten at once and requests go back to Redis until it is
  subscribed again (messages published in between are lost, and so is the cache);
- a check that raced with an announcement is not cached (an epoch counter, bumped by every
  announcement, must be unchanged between the Redis read and the cache write);
- whatever happens, a cached check lives no longer than the TTL, the token's ``exp`` and the
  session's own expiry.

One thread, not an asyncio task, serves both flavours: the event loop does no pub/sub work,
and a process forked after start-up (gunicorn's ``--preload``) starts its own subscriber on
its first session request instead of inheriting a dead one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..principal import Principal
from ..stores.select import invalidation_source
from .cache import TokenCache
from .feed import Feed
from .revocation import MESSAGE_MARK, Entry, decode_entries, entry_from_member

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["SessionInvalidation", "invalidation_for"]

log = logging.getLogger("tokenguard.invalidation")

#: Seconds a subscriber waits for a message before checking whether it should stop.
_POLL_S = 0.5
#: Seconds between checks that the subscription still sits on the current master (Sentinel).
_CHECK_S = 1.0
#: Seconds between pings on the subscription, and of silence after which it counts as lost
#: (revocations are then checked against the store on each request, see
#: tokenguard.guard.revocation).
_PING_S = 0.5
_SILENT_S = 2.0


def _close(closable: Any) -> None:
    closable.close()


class SessionInvalidation(Feed):
    """The guard's cache of session checks, and the Redis subscriber that keeps it honest
    (and feeds the registry of revocations: a :class:`~tokenguard.guard.feed.Feed`)."""

    thread_name = "tokenguard-invalidation"
    source_name = "Redis"

    def __init__(
        self,
        cache: TokenCache,
        connect: Callable[[], Any],
        channel: str,
        *,
        ttl_s: float,
        clock: Callable[[], float] = time.time,
        owns_client: bool = True,
        still_master: Callable[[str, int], bool] | None = None,
    ) -> None:
        super().__init__(clock=clock)
        self.cache = cache
        self.connect = connect
        self.owns_client = owns_client
        #: Sentinel only: whether the subscription's server is still the master.
        self.still_master = still_master
        self.channel = channel
        self.ttl_s = ttl_s
        #: Bumped by every announcement and every loss of the subscription.
        self.epoch = 0
        #: Announcements received (families), for tests and metrics.
        self.received = 0
        self._families: dict[str, set[str]] = {}
        self._size = 0
        #: The sorted sets holding the store's window of revocations: users (and sessions
        #: written by earlier versions), then sessions.
        self.revocations_key = ""
        self.session_revocations_key = ""

    # -- revocations -------------------------------------------------------------------------

    def _catch_up(self, client: Any) -> None:
        # Subscribed first, read second: whatever was announced before the subscription is
        # in the window, whatever comes after arrives as a message. Both sets, each on its own
        # (on a Cluster they live in two slots).
        since = self.window_start_ms()
        found = []
        for key in (self.revocations_key, self.session_revocations_key):
            if not key:
                continue
            for member, score in client.zrangebyscore(key, since, "+inf", withscores=True):
                name = member.decode("utf-8", "replace") if isinstance(member, bytes) else member
                entry = entry_from_member(str(name), score)
                if entry is not None:
                    found.append(entry)
        self._caught_up(found)

    # -- request side ------------------------------------------------------------------------

    def begin(self) -> int:
        """Call before reading the store; pass the result to :meth:`remember`."""
        super().begin()
        return self.epoch

    def remember(
        self, token: str, principal: Principal, family: str, epoch: int, valid_until: float
    ) -> None:
        """Cache a successful session check, unless anything was announced since ``epoch``."""
        if self.ttl_s <= 0:
            return  # caching is off
        until = min(valid_until, self.clock() + self.ttl_s)
        with self._lock:
            if not self.live or epoch != self.epoch:
                return
            if self._size >= max(self.cache.max_size, 1):
                self._forget()  # a stale index can only grow so far
            tokens = self._families.setdefault(family, set())
            if token not in tokens:
                tokens.add(token)
                self._size += 1
            self.cache.put(token, principal, until)

    def invalidate(self, families: Iterable[str]) -> None:
        """Forget the cached checks of ``families`` (also called in-process by the store)."""
        with self._lock:
            self.epoch += 1
            for family in families:
                tokens = self._families.pop(family, None)
                if tokens:
                    self._size -= len(tokens)
                    for token in tokens:
                        self.cache.discard(token)

    def _forget(self) -> None:
        # Holding the lock: every cached session check goes.
        self.epoch += 1
        for tokens in self._families.values():
            for token in tokens:
                self.cache.discard(token)
        self._families.clear()
        self._size = 0

    # -- subscriber --------------------------------------------------------------------------

    def _follow(self, stop: threading.Event) -> None:
        client: Any = None
        pubsub: Any = None
        try:
            client = self.connect()
            pubsub = client.pubsub()
            pubsub.subscribe(self.channel)
            checked = pinged = heard = time.monotonic()
            while not stop.is_set():
                message = pubsub.get_message(timeout=_POLL_S)
                now = time.monotonic()
                if self.still_master is not None and now - checked > _CHECK_S:
                    checked = now
                    self._check_master(pubsub)
                if message is not None:
                    heard = now
                elif now - heard > _SILENT_S:
                    # A frozen server (SIGSTOP, a stalled network) keeps the socket open
                    # and says nothing: silence past the bound counts as a lost channel.
                    raise ConnectionError("the invalidation channel went silent")
                if now - pinged > _PING_S:
                    pinged = now
                    pubsub.ping()  # answered by a "pong" message: proof of life
                if message is not None:
                    self._message(client, message)
        finally:
            self._release(pubsub, client)

    def _message(self, client: Any, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "subscribe":
            self._catch_up(client)
        elif kind == "message":
            data = message.get("data")
            if isinstance(data, bytes):
                data = data.decode("ascii", "replace")
            text = str(data)
            if text.startswith(MESSAGE_MARK):
                self._heard(decode_entries(text))
                return
            families = [f for f in text.split(",") if f]
            self.received += len(families)
            now_ms = int(self.clock() * 1000)
            self._heard(Entry("s", f, now_ms) for f in families)
            self.invalidate(families)

    def _release(self, pubsub: Any, client: Any) -> None:
        from ..stores.redis import close_client

        for closable, close in (
            (pubsub, _close),
            (client if self.owns_client else None, close_client),
        ):
            if closable is None:
                continue
            try:
                close(closable)
            except Exception as exc:  # closing a broken connection may fail too
                log.debug("closing the subscriber failed: %s", type(exc).__name__)

    def _check_master(self, pubsub: Any) -> None:
        # After a failover the demoted master may keep our subscription while every write
        # goes to the new one: we would hear nothing. Move when the Sentinels say so.
        connection = pubsub.connection
        assert self.still_master is not None
        if connection is None or not self.still_master(connection.host, int(connection.port)):
            raise ConnectionError("subscribed to a server that is no longer the master")

    def close(self) -> None:
        """Stop the subscriber for good and wait for its thread (orderly shutdown, tests).

        Idempotent. Afterwards nothing is cached: every session request asks the store.
        """
        super().close()
        release = getattr(self.still_master, "close", None)
        if callable(release):
            release()


def invalidation_for(
    settings: Settings, sessions: object, cache: TokenCache
) -> SessionInvalidation | None:
    """A :class:`SessionInvalidation` when :func:`~tokenguard.stores.select.invalidation_source`
    finds one applies (a Redis session store: it also carries revocations, see
    :mod:`tokenguard.guard.revocation`); ``None`` (every session request checks the store,
    revocations stay in this process) otherwise."""
    source = invalidation_source(settings, sessions)
    if source is None:
        return None
    invalidation = SessionInvalidation(
        cache,
        source.connect,
        source.channel,
        # No caching with the cache or its TTL off: the channel then carries revocations only.
        ttl_s=settings.session_cache_ttl_ms / 1000 if settings.token_cache_size > 0 else 0,
        owns_client=source.owns_client,
        still_master=source.still_master,
    )
    source.listen(invalidation.invalidate)
    invalidation.revocations_key = source.revocations_key
    invalidation.session_revocations_key = source.session_revocations_key
    invalidation.set_window = source.set_window
    return invalidation
