"""Rate-limit counters: where :class:`~tokenguard.guard.limits.Limits` counts hits.

Two backends with the same method names (so that :mod:`tokenguard.flow` drives either):

- :class:`MemoryCounter` — per process, bounded, for a single worker or tests;
- :class:`RedisCounter` / :class:`AsyncRedisCounter` — one count shared by every process,
  as Directus's ``RATE_LIMITER_STORE=redis``. Each operation is written once, as a flow
  (one Lua script: ``INCR`` and, on the first hit of a window, ``PEXPIRE``, atomically in one
  round trip), which :func:`~tokenguard.flow.run_sync` drives over a redis-py client and
  :func:`~tokenguard.flow.run_async` over a ``redis.asyncio`` one.

Which one a deployment uses is decided in :mod:`tokenguard.stores.select`.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from ..flow import Call, Flow, run_async, run_sync

__all__ = ["AsyncRedisCounter", "Counter", "Hit", "MemoryCounter", "RedisCounter"]

_C = TypeVar("_C", bound="_RedisCounting")


@dataclass(frozen=True, slots=True)
class Hit:
    """The count of a key after one more hit, and how long until its window ends
    (``ms_before_next`` is ``-1`` for a count that never expires)."""

    count: int
    ms_before_next: int


class Counter(Protocol):
    """What :class:`~tokenguard.guard.limits.Limits` needs of a backend (sync or async
    flavour, same names)."""

    def hit(self, key: str, window_ms: int) -> Any:
        """Add one to ``key``; a new key lives ``window_ms`` (0: until reset). Returns a Hit."""
        ...

    def reset(self, key: str) -> Any: ...


class MemoryCounter:
    """Fixed-window counters in this process, at most ``max_keys`` of each kind.

    When the windows are full, the expired ones are swept, then the oldest go until a tenth
    of the room is free (so a sweep is paid once per ``max_keys / 10`` new keys, not per
    request): a flood of new keys can shorten somebody's window but never grow memory.
    Counts that never expire (the lockout) live apart, so that no flood of made-up accounts
    or addresses can push them out; they are only made for existing users.
    """

    io_bound = False

    def __init__(
        self, *, max_keys: int = 100_000, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_keys = max_keys
        self.monotonic = monotonic
        self._lock = threading.Lock()
        # key -> [count, expires_at (monotonic s) or inf]
        self._windows: OrderedDict[str, list[float]] = OrderedDict()
        self._forever: OrderedDict[str, int] = OrderedDict()

    def hit(self, key: str, window_ms: int) -> Hit:
        if window_ms <= 0:
            with self._lock:
                count = self._forever.pop(key, 0) + 1
                if len(self._forever) >= self.max_keys:
                    self._forever.popitem(last=False)
                self._forever[key] = count  # most recently counted last
            return Hit(count, -1)
        now = self.monotonic()
        with self._lock:
            entry = self._windows.get(key)
            if entry is None or entry[1] <= now:
                if entry is None and len(self._windows) >= self.max_keys:
                    self._make_room(now)
                entry = [0.0, now + window_ms / 1000]
                self._windows[key] = entry
            entry[0] += 1
            count, expires = int(entry[0]), entry[1]
        return Hit(count, max(0, math.ceil((expires - now) * 1000)))

    def reset(self, key: str) -> None:
        with self._lock:
            self._windows.pop(key, None)
            self._forever.pop(key, None)

    def _make_room(self, now: float) -> None:
        for key in [k for k, (_, exp) in self._windows.items() if exp <= now]:
            del self._windows[key]
        keep = self.max_keys - max(1, self.max_keys // 10)
        while len(self._windows) > keep:
            self._windows.popitem(last=False)

    def __len__(self) -> int:
        return len(self._windows) + len(self._forever)

    def close(self) -> None:
        """Nothing to release."""


# KEYS: counter. ARGV: window ms (0: no expiry). Returns {count, ms before the window ends}.
_HIT = """
local n = redis.call('INCR', KEYS[1])
local window = tonumber(ARGV[1])
if n == 1 and window > 0 then redis.call('PEXPIRE', KEYS[1], window) end
return {n, redis.call('PTTL', KEYS[1])}
"""


def _parse_hit(reply: Any) -> Hit:
    try:
        count, ttl = int(reply[0]), int(reply[1])
    except (TypeError, ValueError, IndexError) as exc:
        raise ConnectionError("unexpected reply from the rate limiter") from exc
    return Hit(count, -1 if ttl < 0 else ttl)


class _RedisCounting:
    """Keys and operations of the Redis counter, for either client (no I/O of its own).

    Keys are ``<prefix>rl:<key>``; the script touches one key, so it is Cluster-safe as is.
    """

    def __init__(self, client: Any, *, prefix: str = "tokenguard:") -> None:
        self.client = client
        self.prefix = f"{prefix}rl:"
        self._script = client.register_script(_HIT)

    @classmethod
    def from_url(
        cls: type[_C], url: str, *, prefix: str = "tokenguard:", timeout: float = 1.0
    ) -> _C:
        """A counter on ``url`` (the session store's URL forms: single server, Sentinel,
        Cluster), with short timeouts and no retries."""
        return cls(cls._connect(url, timeout), prefix=prefix)

    @staticmethod
    def _connect(url: str, timeout: float) -> Any:
        raise NotImplementedError

    def _hit(self, key: str, window_ms: int) -> Flow[Hit]:
        keys, args = (self.prefix + key,), (int(window_ms),)
        reply = yield Call(self._script, (), {"keys": keys, "args": args})
        return _parse_hit(reply)

    def _reset(self, key: str) -> Flow[None]:
        yield Call(self.client.delete, (self.prefix + key,))


class RedisCounter(_RedisCounting):
    """:class:`MemoryCounter`'s twin on a synchronous redis-py client: one count for every
    process that shares the Redis."""

    #: It blocks on the network: under ASGI the flow driver runs it in a worker thread.
    io_bound = True

    @staticmethod
    def _connect(url: str, timeout: float) -> Any:
        from redis.retry import Retry

        from .redis import client_options, sync_client

        client, _ = sync_client(url, **client_options(0.5, timeout, {}, Retry))
        return client

    def hit(self, key: str, window_ms: int) -> Hit:
        return run_sync(self._hit(key, window_ms))

    def reset(self, key: str) -> None:
        run_sync(self._reset(key))

    def close(self) -> None:
        """Close the client's connections (idempotent)."""
        from .redis import close_client

        close_client(self.client)


class AsyncRedisCounter(_RedisCounting):
    """:class:`RedisCounter` on ``redis.asyncio`` (same script, same keys)."""

    @staticmethod
    def _connect(url: str, timeout: float) -> Any:
        from redis.asyncio.retry import Retry

        from .redis import async_client, client_options

        client, _ = async_client(url, **client_options(0.5, timeout, {}, Retry))
        return client

    async def hit(self, key: str, window_ms: int) -> Hit:
        return await run_async(self._hit(key, window_ms))

    async def reset(self, key: str) -> None:
        await run_async(self._reset(key))

    async def aclose(self) -> None:
        """Close the client's connections (idempotent)."""
        from .redis import aclose_client

        await aclose_client(self.client)
