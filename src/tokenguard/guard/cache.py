"""A bounded cache of verified access tokens.

Keyed by the exact token string, so no other token can ever hit an entry. Expiry is checked
again on every hit. Stateless JWTs are cached until they expire; session-mode tokens only
through :mod:`tokenguard.guard.invalidation`, which keeps them for seconds and drops them (in every
process) the moment their session is revoked.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

from ..principal import Principal

__all__ = ["TokenCache"]


class TokenCache:
    """Token → (principal, valid-until) with FIFO eviction at ``max_size`` entries."""

    __slots__ = ("max_size", "_entries")

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        # OrderedDict, not dict: evicting the oldest of a plain dict with next(iter(d)) walks
        # past every slot deleted before it, which costs microseconds once the cache is full.
        self._entries: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    @property
    def entries(self) -> Mapping[str, tuple[Principal, float]]:
        """token -> (principal, valid until), read-only by contract: for the request path's
        lookups that cannot afford a method call (see ``Guard.cached_bearer``)."""
        return self._entries

    def get(self, token: str, now: float) -> Principal | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        if entry[1] <= now:
            self._entries.pop(token, None)
            return None
        return entry[0]

    def put(self, token: str, principal: Principal, valid_until: float) -> None:
        if self.max_size <= 0:
            return
        entries = self._entries
        if len(entries) >= self.max_size and token not in entries:
            # Drop the oldest. A racing thread may have emptied it already.
            try:
                entries.popitem(last=False)
            except KeyError:
                pass
        entries[token] = (principal, valid_until)

    def discard(self, token: str) -> None:
        """Forget ``token`` (a revoked session's cached check)."""
        self._entries.pop(token, None)

    def discard_user(self, user_id: str) -> None:
        """Forget every cached token of ``user_id`` (after a role change or suspension)."""
        for token, (principal, _) in list(self._entries.items()):
            if principal.user == user_id:
                self._entries.pop(token, None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, token: object) -> bool:
        return token in self._entries
