"""SQLite that cannot answer: locked by another writer, or not a database at all."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tokenguard.stores.base import StoreUnavailable, User
from tokenguard.stores.sqlite import SQLiteSessionStore, SQLiteUserStore

from .conftest import new_token, real_now_ms, record

HOUR = 3_600_000


def test_a_locked_file_is_unavailable_for_writes_and_recovers(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    sessions = SQLiteSessionStore(path, timeout=0.1)
    now = real_now_ms()
    old = record(new_token(), expires_at_ms=now + HOUR)
    sessions.create(old)

    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holding the write lock
    try:
        nxt = record(new_token(old.family), expires_at_ms=now + HOUR)
        with pytest.raises(StoreUnavailable) as info:
            sessions.rotate(old.token_hash, nxt, now_ms=now, grace_ms=0)
        assert info.value.service == "database"
        with pytest.raises(StoreUnavailable):
            sessions.revoke(old.token_hash)
        assert sessions.get(old.token_hash, now) == old  # WAL: readers are not blocked
    finally:
        other.execute("ROLLBACK")
        other.close()

    # nothing half-done, and the same connection works again
    assert sessions.rotate(old.token_hash, nxt, now_ms=now, grace_ms=0).status == "rotated"
    sessions.close()


def test_a_file_that_is_not_a_database_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not an SQLite file" * 100)
    users = SQLiteUserStore(path)
    with pytest.raises(StoreUnavailable):
        users.get_by_email("a@example.com")
    with pytest.raises(StoreUnavailable):
        users.create(User(id="1", email="a@example.com"))
    users.close()


def test_a_fresh_file_locked_by_another_process_is_waited_for(tmp_path: Path) -> None:
    # Workers of one server open a fresh file at once: switching it to WAL needs the file to
    # itself, and SQLite refuses that at once (no busy timeout) while another holds a lock.
    import sqlite3
    import threading

    path = tmp_path / "fresh.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE other_app (x)")
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO other_app VALUES (1)")
    threading.Timer(0.3, lambda: holder.execute("COMMIT")).start()
    store = SQLiteUserStore(str(path), timeout=5.0)
    assert store.get_by_email("nobody@example.com") is None
    holder.close()
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    check.close()


def test_a_db_filename_in_a_missing_folder_is_warned_about_at_start(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from tokenguard import TokenGuard
    from tokenguard.stores.sqlite import warn_if_unwritable

    missing = tmp_path / "no-such-folder" / "users.db"
    with caplog.at_level("WARNING", logger="tokenguard"):
        guard = TokenGuard(secret="x7Qm2Vt9Lp4Nc8Rw3Zk6Hb1Jf5Gd0Sa-Yu_Ei8Po3Lk", db_filename=str(missing))
    guard.close()
    assert [r.getMessage() for r in caplog.records if "DB_FILENAME" in r.getMessage()] == [
        f"DB_FILENAME {missing}: its folder does not exist; requests that need the store answer 503 until it can be opened"
    ]
    assert warn_if_unwritable(tmp_path / "fine.db") is False
    assert warn_if_unwritable(":memory:") is False
