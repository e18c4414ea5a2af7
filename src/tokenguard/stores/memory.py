"""In-process stores: no server, nothing persisted. For tests and single-process demos."""

from __future__ import annotations

import threading
from dataclasses import fields, replace
from typing import Any

from .base import RotateOutcome, SessionInfo, SessionRecord, User, summarize_sessions
from .rotation import plan_rotation

__all__ = ["MemorySessionStore", "MemoryUserStore"]

_USER_FIELDS = frozenset(f.name for f in fields(User)) - {"id"}
#: Session records held before the memory store first sweeps expired families.
_SWEEP_AT = 1024


class MemoryUserStore:
    """Users in a dict, guarded by a lock."""

    io_bound = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, User] = {}
        self._by_token: dict[str, str] = {}

    def get_by_id(self, user_id: str) -> User | None:
        return self._by_id.get(user_id)

    def get_by_email(self, email: str) -> User | None:
        wanted = email.casefold()
        for user in list(self._by_id.values()):
            if user.email.casefold() == wanted:
                return user
        return None

    def get_by_token_hash(self, token_hash: str) -> User | None:
        # Every request with a static token asks this: an index, not a scan of all users.
        user_id = self._by_token.get(token_hash)
        return None if user_id is None else self._by_id.get(user_id)

    def get_by_external_identifier(self, identifier: str) -> User | None:
        wanted = identifier.casefold()
        for user in list(self._by_id.values()):
            if user.external_identifier is not None and (
                user.external_identifier.casefold() == wanted
            ):
                return user
        return None

    def create(self, user: User) -> User:
        with self._lock:
            if user.id in self._by_id:
                raise ValueError(f"a user with id {user.id!r} exists")
            self._check_unique(user)
            self._put(user)
        return user

    def _put(self, user: User, old: User | None = None) -> None:
        if old is not None and old.token_hash is not None:
            self._by_token.pop(old.token_hash, None)
        self._by_id[user.id] = user
        if user.token_hash is not None:
            self._by_token[user.token_hash] = user.id

    def update(self, user_id: str, **changes: Any) -> User | None:
        unknown = set(changes) - _USER_FIELDS
        if unknown:
            raise ValueError(f"unknown user field(s): {', '.join(sorted(unknown))}")
        with self._lock:
            user = self._by_id.get(user_id)
            if user is None:
                return None
            updated = replace(user, **changes)
            self._check_unique(updated)
            self._put(updated, user)
            return updated

    def delete(self, user_id: str) -> bool:
        with self._lock:
            user = self._by_id.pop(user_id, None)
            if user is not None and user.token_hash is not None:
                self._by_token.pop(user.token_hash, None)
            return user is not None

    def _check_unique(self, user: User) -> None:
        # Same constraints as a database's unique columns: one e-mail and one external
        # identifier (both case-insensitive) and one static token per user; a token hash or
        # an identity shared by two users would be ambiguous.
        for other in self._by_id.values():
            if other.id == user.id:
                continue
            if other.email.casefold() == user.email.casefold():
                raise ValueError(f"a user with e-mail {user.email!r} exists")
            if user.token_hash is not None and other.token_hash == user.token_hash:
                raise ValueError("another user has this static token")
            if (
                user.external_identifier is not None
                and other.external_identifier is not None
                and other.external_identifier.casefold() == user.external_identifier.casefold()
            ):
                raise ValueError("another user has this external identifier")

    def close(self) -> None:
        """Nothing to release (the users live as long as the store)."""

    def list_users(self) -> list[User]:
        return list(self._by_id.values())


class MemorySessionStore:
    """Refresh sessions in a dict, each operation atomic under one lock."""

    io_bound = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, SessionRecord] = {}
        self._families: dict[str, set[str]] = {}
        self._sweep_at = _SWEEP_AT

    def _put(self, record: SessionRecord) -> None:
        self._records[record.token_hash] = record
        self._families.setdefault(record.family, set()).add(record.token_hash)

    def _drop_family(self, family: str) -> None:
        for token_hash in self._families.pop(family, ()):
            self._records.pop(token_hash, None)

    def create(self, record: SessionRecord) -> None:
        with self._lock:
            self._put(record)

    def get(self, token_hash: str, now_ms: int) -> SessionRecord | None:
        record = self._records.get(token_hash)
        if record is None or not record.is_live(now_ms):
            return None
        return record

    def rotate(
        self, token_hash: str, new: SessionRecord, *, now_ms: int, grace_ms: int
    ) -> RotateOutcome:
        with self._lock:
            old = self._records.get(token_hash)
            current_next = (
                self._records.get(old.next_hash) if old is not None and old.next_hash else None
            )
            outcome, old_after, new_to_store = plan_rotation(
                old, current_next, new, now_ms=now_ms, grace_ms=grace_ms
            )
            if outcome.status == "reused" and old is not None:
                self._drop_family(old.family)
            if old_after is not None:
                self._put(old_after)
            if new_to_store is not None:
                self._put(new_to_store)
            self._sweep(now_ms)
            return outcome

    def revoke(self, token_hash: str) -> SessionRecord | None:
        with self._lock:
            record = self._records.get(token_hash)
            if record is not None:
                self._drop_family(record.family)
            return record

    def revoke_user(self, user_id: str, *, except_family: str | None = None) -> int:
        with self._lock:
            families = {
                r.family
                for r in self._records.values()
                if r.user_id == user_id and r.family != except_family
            }
            for family in families:
                self._drop_family(family)
            return len(families)

    def sessions(self, user_id: str, now_ms: int) -> list[SessionInfo]:
        with self._lock:
            families = {r.family for r in self._records.values() if r.user_id == user_id}
            records = [
                self._records[h] for f in families for h in self._families.get(f, ())
            ]
        return summarize_sessions(records, user_id, now_ms)

    def revoke_session(self, user_id: str, family: str) -> bool:
        with self._lock:
            hashes = self._families.get(family, ())
            if not any(self._records[h].user_id == user_id for h in hashes):
                return False
            self._drop_family(family)
            return True

    def _sweep(self, now_ms: int) -> None:
        # Keep memory bounded by TTL, a whole family at a time once all its records expired
        # (as SQLite purges and Redis expires): an expired record still names its family,
        # and a logout with it revokes the family's live records.
        if len(self._records) < self._sweep_at:
            return
        for family, hashes in list(self._families.items()):
            records = [self._records.get(h) for h in hashes]
            if all(r is None or r.expires_at_ms < now_ms for r in records):
                self._drop_family(family)
        # Amortised: the next sweep waits until what is left has doubled.
        self._sweep_at = max(_SWEEP_AT, 2 * len(self._records))

    def close(self) -> None:
        """Nothing to release (the sessions live as long as the store)."""

    def __len__(self) -> int:
        return len(self._records)
