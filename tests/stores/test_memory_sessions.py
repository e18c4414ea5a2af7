"""What only the memory session store does: sweeping families whose records all expired."""

from __future__ import annotations

from tokenguard.stores.memory import MemorySessionStore

from .conftest import new_token, record

HOUR = 3_600_000


def test_the_sweep_drops_whole_expired_families_only() -> None:
    store = MemorySessionStore()
    now = 1_000_000
    first = record(new_token(), user_id="ann", expires_at_ms=now + HOUR)
    store.create(first)
    nxt = record(new_token(first.family), user_id="ann", expires_at_ms=now + 3 * HOUR)
    assert store.rotate(first.token_hash, nxt, now_ms=now, grace_ms=0).status == "rotated"
    dead = [record(new_token(), expires_at_ms=now + HOUR) for _ in range(1100)]
    for rec in dead:
        store.create(rec)
    trigger = record(new_token(), expires_at_ms=now + 10 * HOUR)
    store.create(trigger)

    later = now + 2 * HOUR
    trigger_next = record(new_token(trigger.family), expires_at_ms=later + HOUR)
    assert store.rotate(trigger.token_hash, trigger_next, now_ms=later, grace_ms=0).status == (
        "rotated"
    )
    # the dead families went; ann's expired tombstone stayed with its live successor
    assert len(store) == 4
    assert store.revoke(first.token_hash) is not None
    assert store.get(nxt.token_hash, later) is None
    assert store.revoke_user("ann") == 0
