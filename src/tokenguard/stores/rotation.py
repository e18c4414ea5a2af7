"""The rotation rule, once, for the backends that run it in Python (memory, SQLite).

The Redis backend runs the same rule in a Lua script; the shared test-suite in
``tests/stores/`` holds every backend to it.
"""

from __future__ import annotations

from dataclasses import replace

from .base import RotateOutcome, SessionRecord

__all__ = ["plan_rotation"]


def plan_rotation(
    old: SessionRecord | None,
    current_next: SessionRecord | None,
    new: SessionRecord,
    *,
    now_ms: int,
    grace_ms: int,
) -> tuple[RotateOutcome, SessionRecord | None, SessionRecord | None]:
    """Decide a rotation of ``old`` into ``new``.

    ``current_next`` is the record stored under ``old.next_hash`` (``None`` if ``old`` was
    never rotated or that record is gone). Returns ``(outcome, old_after, new_to_store)``:
    the backend writes ``old_after`` (the old record, now a tombstone pointing at the new
    hash) and ``new_to_store`` when they are not ``None``, or revokes ``old.family`` when the
    outcome is ``reused``.
    """
    if old is None or old.expires_at_ms < now_ms:
        return RotateOutcome("missing"), None, None
    if old.next_hash is not None:
        in_grace = old.live_until_ms is not None and now_ms < old.live_until_ms
        if in_grace and old.next_hash == new.token_hash:
            # A concurrent or repeated refresh: converge on the token already handed out,
            # unless that one has itself moved on (then the caller is simply behind).
            if (
                current_next is None
                or not current_next.is_live(now_ms)
                or (current_next.next_hash is not None)
            ):
                return RotateOutcome("missing"), None, None
            extended = replace(current_next, expires_at_ms=new.expires_at_ms)
            return RotateOutcome("grace", extended), None, extended
        return RotateOutcome("reused"), None, None
    stored_new = replace(new, family=old.family)
    old_after = replace(old, next_hash=new.token_hash, live_until_ms=now_ms + grace_ms)
    return RotateOutcome("rotated", stored_new), old_after, stored_new
