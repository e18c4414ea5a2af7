"""What only the SQLite session store does: its table, and purging what expired."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tokenguard.stores.sqlite import SQLiteSessionStore

from .conftest import new_token, real_now_ms, record

HOUR = 3_600_000


def rows(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT token_hash FROM tokenguard_sessions")}
    finally:
        conn.close()


def test_expired_rows_are_purged_by_later_rotations(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SQLiteSessionStore(path)
    now = real_now_ms()
    short = [record(new_token(), expires_at_ms=now + 1000) for _ in range(5)]
    long = record(new_token(), expires_at_ms=now + 10 * HOUR)
    for rec in (*short, long):
        store.create(rec)
    assert rows(path) == {r.token_hash for r in (*short, long)}

    later = now + HOUR
    nxt = record(new_token(long.family), expires_at_ms=later + HOUR)
    assert store.rotate(long.token_hash, nxt, now_ms=later, grace_ms=0).status == "rotated"
    # the tombstone stays (it proves reuse until it expires), the dead ones went
    assert rows(path) == {long.token_hash, nxt.token_hash}
    store.close()


def test_an_expired_row_stays_while_its_family_lives(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SQLiteSessionStore(path)
    now = real_now_ms()
    first = record(new_token(), expires_at_ms=now + HOUR)
    store.create(first)
    nxt = record(new_token(first.family), expires_at_ms=now + 3 * HOUR)
    assert store.rotate(first.token_hash, nxt, now_ms=now, grace_ms=0).status == "rotated"
    bystander = record(new_token(), expires_at_ms=now + 10 * HOUR)
    store.create(bystander)

    def rotate_bystander(at: int) -> None:
        moved = record(new_token(bystander.family), expires_at_ms=at + 10 * HOUR)
        outcome = store.rotate(bystander.token_hash, moved, now_ms=at, grace_ms=0)
        assert outcome.status in ("rotated", "reused")

    rotate_bystander(now + 2 * HOUR)
    # the expired tombstone still names its family: a logout with it must find it
    assert {first.token_hash, nxt.token_hash} <= rows(path)
    rotate_bystander(now + 4 * HOUR)
    # once every row of the family expired, the family goes whole
    assert not {first.token_hash, nxt.token_hash} & rows(path)
    store.close()


def test_only_hashes_are_stored(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SQLiteSessionStore(path)
    token = new_token()
    store.create(record(token, expires_at_ms=real_now_ms() + HOUR))
    store.close()
    stored = b"".join(f.read_bytes() for f in tmp_path.iterdir())  # the file, and any WAL
    assert token.encode() not in stored
    assert token[:22].encode() in stored  # the family (not a secret) is, as a sanity check
