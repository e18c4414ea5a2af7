"""Counting requests: per-address and per-account rate limits and the login lockout.

:class:`Limits` is the policy (which key, how many points, what to answer), written once as
flows that yield :class:`~tokenguard.flow.Call` to whichever counter is configured (the
counters live in :mod:`tokenguard.stores.counters` and are importable from here too; which
one is chosen by :mod:`tokenguard.stores.select`). A counter that cannot answer fails
closed: the request is refused with 503 ``Service "authentication" is unavailable. Rate
limiter unreachable.``, never let through uncounted.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..errors import AuthError, requests_exceeded, service_unavailable
from ..flow import Call, Flow
from ..stores.counters import AsyncRedisCounter, Counter, Hit, MemoryCounter, RedisCounter

if TYPE_CHECKING:
    from ..config import Settings

__all__ = [
    "GLOBAL_KEY",
    "AsyncRedisCounter",
    "Counter",
    "Hit",
    "Limits",
    "MemoryCounter",
    "RedisCounter",
    "TooManyRequests",
    "client_address",
]

UNREACHABLE = "Rate limiter unreachable"


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
        counter: Counter | None = None,
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

