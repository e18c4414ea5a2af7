"""Counting requests: per-address and per-account rate limits and the login lockout.

Two backends with the same method names (so that :mod:`tokenguard.flow` drives either):

- :class:`MemoryCounter` — per process, bounded, for a single worker or tests;
- :class:`RedisCounter` / :class:`AsyncRedisCounter` — one count shared by every process,
  as Directus's ``RATE_LIMITER_STORE=redis``. Both run the same Lua script (``INCR`` and, on
  the first hit of a window, ``PEXPIRE``), atomically in one round trip, so the drivers hold
  no logic of their own.

:class:`Limits` is the policy (which key, how many points, what to answer), written once as
flows that yield :class:`~tokenguard.flow.Call` to whichever counter is configured. A counter
that cannot answer fails closed: the request is refused with 503 ``Service
"authentication" is unavailable. Rate limiter unreachable.``, never let through uncounted.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import AuthError, requests_exceeded, service_unavailable
from ..flow import Call, Flow

if TYPE_CHECKING:
    import redis
    import redis.asyncio

    from ..config import Settings

__all__ = [
    "GLOBAL_KEY",
    "AsyncRedisCounter",
    "Hit",
    "Limits",
    "MemoryCounter",
    "RedisCounter",
    "TooManyRequests",
    "client_address",
]

UNREACHABLE = "Rate limiter unreachable"


@dataclass(frozen=True, slots=True)
class Hit:
    """The count of a key after one more hit, and how long until its window ends
    (``ms_before_next`` is ``-1`` for a count that never expires)."""

    count: int
    ms_before_next: int


class Counter(Protocol):
    """What :class:`Limits` needs of a backend (sync or async flavour, same names)."""

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


class RedisCounter:
    """:class:`MemoryCounter`'s twin on a synchronous redis-py client: one count for every
    process that shares the Redis. Keys are ``<prefix>rl:<key>``."""

    #: It blocks on the network: under ASGI the flow driver runs it in a worker thread.
    io_bound = True

    def __init__(self, client: redis.Redis, *, prefix: str = "tokenguard:") -> None:
        self.client = client
        self.prefix = f"{prefix}rl:"
        self._script = client.register_script(_HIT)

    @classmethod
    def from_url(
        cls, url: str, *, prefix: str = "tokenguard:", timeout: float = 1.0
    ) -> RedisCounter:
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        from ..stores.redis import sync_client

        # The same URL forms as the session store (single server, Sentinel, Cluster); the
        # counter's script touches one key, so it is Cluster-safe as is.
        client, _ = sync_client(
            url, socket_connect_timeout=0.5, socket_timeout=timeout, retry=Retry(NoBackoff(), 0)
        )
        return cls(client, prefix=prefix)

    def hit(self, key: str, window_ms: int) -> Hit:
        return _parse_hit(self._script(keys=(self.prefix + key,), args=(int(window_ms),)))

    def reset(self, key: str) -> None:
        self.client.delete(self.prefix + key)

    def close(self) -> None:
        """Close the client's connections (idempotent)."""
        from ..stores.redis import close_client

        close_client(self.client)


class AsyncRedisCounter:
    """:class:`RedisCounter` on ``redis.asyncio`` (same script, same keys)."""

    def __init__(self, client: redis.asyncio.Redis, *, prefix: str = "tokenguard:") -> None:
        self.client = client
        self.prefix = f"{prefix}rl:"
        self._script = client.register_script(_HIT)

    @classmethod
    def from_url(
        cls, url: str, *, prefix: str = "tokenguard:", timeout: float = 1.0
    ) -> AsyncRedisCounter:
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        from ..stores.redis import async_client

        client, _ = async_client(
            url, socket_connect_timeout=0.5, socket_timeout=timeout, retry=Retry(NoBackoff(), 0)
        )
        return cls(client, prefix=prefix)

    async def hit(self, key: str, window_ms: int) -> Hit:
        return _parse_hit(await self._script(keys=(self.prefix + key,), args=(int(window_ms),)))

    async def reset(self, key: str) -> None:
        await self.client.delete(self.prefix + key)

    async def aclose(self) -> None:
        """Close the client's connections (idempotent)."""
        from ..stores.redis import aclose_client

        await aclose_client(self.client)


class TooManyRequests(AuthError):
    """429 ``REQUESTS_EXCEEDED`` with Directus's body; ``retry_after`` is the seconds for the
    ``Retry-After`` header."""

    def __init__(self, limit: int, ms_before_next: int, now: float, *, first: bool = True) -> None:
        reset = datetime.fromtimestamp(now + ms_before_next / 1000, tz=timezone.utc)
        reset_iso = reset.strftime("%Y-%m-%dT%H:%M:%S.") + f"{reset.microsecond // 1000:03d}Z"
        base = requests_exceeded(limit, reset_iso, ms_before_next)
        super().__init__(base.status, base.code, base.message, base.extensions)
        # Directus rounds to the nearest second, which can say "0": never invite an instant retry.
        self.retry_after = max(1, math.ceil(ms_before_next / 1000))
        #: Whether this is the first refusal of its window (the one worth an audit record:
        #: a flood of refused requests must not become a flood of writes).
        self.first = first


def client_address(peer: str | None, forwarded_for: str | None, trust_hops: int) -> str | None:
    """The client's address: the peer's, or — behind ``trust_hops`` trusted proxies — the
    ``X-Forwarded-For`` entry the outermost trusted proxy appended.

    Counting from the right means a client cannot choose its own address by sending a forged
    header: it can only add entries to the left of the ones the proxies add.
    """
    address = peer
    if trust_hops > 0 and forwarded_for:
        entries = [e.strip() for e in forwarded_for.split(",") if e.strip()]
        if entries:
            address = entries[-min(trust_hops, len(entries))]
    if address is not None and address.startswith("::ffff:"):
        address = address[7:]  # an IPv4 client on a dual-stack socket, as Directus strips it
    return address


#: The one key every request counts against under ``RATE_LIMITER_GLOBAL_ENABLED``.
GLOBAL_KEY = "global-rate-limit"


class Limits:
    """The rate-limit and brute-force policy, once for both shells.

    - app-wide, on every request the middleware sees (:meth:`check_request`): all clients
      together, ``RATE_LIMITER_GLOBAL_POINTS`` per ``RATE_LIMITER_GLOBAL_DURATION`` when
      ``RATE_LIMITER_GLOBAL_ENABLED``; then per client address, ``RATE_LIMITER_POINTS`` per
      ``RATE_LIMITER_DURATION`` when ``RATE_LIMITER_ENABLED`` (Directus's two limiters);
    - per account (the e-mail as typed, lower-cased, known or not — so that the answer does not
      tell which accounts exist): ``TOKENGUARD_LOGIN_ACCOUNT_POINTS`` login attempts per
      ``TOKENGUARD_LOGIN_ACCOUNT_DURATION``, reset by a successful login;
    - the lockout: ``AUTH_LOGIN_ATTEMPTS`` consecutive failed logins of an existing user
      suspend that user (Directus's ``auth_login_attempts``).
    """

    def __init__(
        self,
        settings: Settings,
        counter: Any | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.counter: Any = counter if counter is not None else MemoryCounter()
        self.clock = clock
        self.ip_enabled = settings.rate_limiter_enabled
        self.ip_points = settings.rate_limiter_points
        self.ip_window_ms = settings.rate_limiter_duration_ms
        self.global_enabled = settings.rate_limiter_global_enabled
        self.global_points = settings.rate_limiter_global_points
        self.global_window_ms = settings.rate_limiter_global_duration_ms
        self.account_points = settings.login_account_points
        self.account_window_ms = settings.login_account_duration_ms
        self.lockout_after = settings.auth_login_attempts

    def _hit(self, key: str, window_ms: int) -> Flow[Hit]:
        try:
            hit = yield Call(self.counter.hit, (key, window_ms))
        except Exception:
            raise service_unavailable("authentication", UNREACHABLE) from None
        if not isinstance(hit, Hit):
            raise service_unavailable("authentication", UNREACHABLE)
        return hit

    def _reset(self, key: str) -> Flow[None]:
        try:
            yield Call(self.counter.reset, (key,))
        except Exception:
            raise service_unavailable("authentication", UNREACHABLE) from None

    @property
    def per_request(self) -> bool:
        """Whether every request is counted (either limiter is on)."""
        return self.ip_enabled or self.global_enabled

    def check_request(self, address: str | None) -> Flow[None]:
        """Count one request: against the global limit, then against ``address``'s; raise
        429 past either (a request without an address is counted globally only)."""
        if self.global_enabled:
            hit = yield from self._hit(GLOBAL_KEY, self.global_window_ms)
            self._over(hit, self.global_points)
        yield from self.check_address(address)

    def check_address(self, address: str | None) -> Flow[None]:
        """Count one request from ``address``; raise 429 past the limit."""
        if not self.ip_enabled or address is None:
            return
        hit = yield from self._hit(f"ip:{address}", self.ip_window_ms)
        self._over(hit, self.ip_points)

    def _over(self, hit: Hit, points: int) -> None:
        if hit.count > points:
            raise TooManyRequests(
                points, max(hit.ms_before_next, 0), self.clock(), first=hit.count == points + 1
            )

    def check_account(self, email: str) -> Flow[None]:
        """Count one login attempt for ``email``; raise 429 past the limit."""
        if not self.account_points:
            return
        # Counted before the outcome is known (parallel guesses all count); a success resets.
        hit = yield from self._hit(_account_key(email), self.account_window_ms)
        self._over(hit, self.account_points)

    def attempt(self, user_id: str) -> Flow[bool]:
        """Count one password attempt for an existing user, before the password is checked
        (so that concurrent guesses are all counted). ``True`` means: this attempt comes after
        ``AUTH_LOGIN_ATTEMPTS`` consecutive failures, and the user must be suspended now."""
        if not self.lockout_after:
            return False
        hit = yield from self._hit(f"lock:{user_id}", 0)
        if hit.count > self.lockout_after:
            yield from self._reset(f"lock:{user_id}")
            return True
        return False

    def succeeded(self, user_id: str, email: str) -> Flow[None]:
        """A successful login starts both counts of the account again: the limit is on
        guesses, and a client that keeps logging in correctly is not guessing."""
        if self.lockout_after:
            yield from self._reset(f"lock:{user_id}")
        if self.account_points:
            yield from self._reset(_account_key(email))


def _account_key(email: str) -> str:
    # Hashed: an e-mail can be long (up to the body limit) and need not sit in Redis in clear.
    digest = hashlib.sha256(email.strip().lower().encode("utf-8", "surrogatepass")).hexdigest()
    return f"acct:{digest[:32]}"


def counter_for(settings: Settings, flavour: str) -> Any:
    """The counter ``RATE_LIMITER_STORE`` asks for: Redis (on ``REDIS``) or memory."""
    if settings.rate_limiter_store == "redis" and settings.redis_url:
        if flavour == "async":
            return AsyncRedisCounter.from_url(settings.redis_url, prefix=settings.redis_prefix)
        return RedisCounter.from_url(settings.redis_url, prefix=settings.redis_prefix)
    return MemoryCounter()
