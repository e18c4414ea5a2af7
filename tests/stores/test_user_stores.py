"""User storage, memory and SQLite held to one contract; SQLite's file layout on its own."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenguard.stores.base import User
from tokenguard.stores.sqlite import (
    SCHEMA_VERSION,
    SchemaTooNew,
    SQLiteSessionStore,
    SQLiteUserStore,
)

ALICE = User(
    id="u-alice",
    email="Alice@Example.com",
    password_hash="$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
    role="r-admin",
    admin_access=True,
    app_access=True,
    first_name="Alice",
    last_name="Liddell",
    token_hash="a" * 64,
)
BOB = User(id="u-bob", email="bob@example.com", status="suspended")


def test_create_and_look_up(users: Any) -> None:
    assert users.create(ALICE) == ALICE
    users.create(BOB)
    assert users.get_by_id("u-alice") == ALICE
    assert users.get_by_id("u-nobody") is None
    assert users.get_by_email("alice@example.COM") == ALICE
    assert users.get_by_email("ALICE@EXAMPLE.COM") == ALICE
    assert users.get_by_email("alice@example.co") is None
    assert users.get_by_token_hash("a" * 64) == ALICE
    assert users.get_by_token_hash("b" * 64) is None
    assert users.get_by_email("bob@example.com") == BOB  # any status
    assert users.list_users() == [ALICE, BOB]


def test_unicode_e_mails_compare_casefolded(users: Any, request: pytest.FixtureRequest) -> None:
    if request.node.callspec.params["users"].startswith("sqlalchemy"):
        # A table we do not own compares with SQL lower(): ß stays ß (documented).
        users.create(User(id="1", email="Straße@example.com"))
        assert users.get_by_email("STRASSE@example.com") is None
        assert users.get_by_email("straße@EXAMPLE.com") is not None
        return
    users.create(User(id="1", email="straße@example.com"))
    assert users.get_by_email("STRASSE@example.com") is not None
    with pytest.raises(ValueError):
        users.create(User(id="2", email="STRASSE@EXAMPLE.COM"))


def test_duplicates_are_refused(users: Any) -> None:
    users.create(ALICE)
    for clash in (
        replace(BOB, id=ALICE.id),
        replace(BOB, email="ALICE@example.com"),
        replace(BOB, token_hash=ALICE.token_hash),
    ):
        with pytest.raises(ValueError):
            users.create(clash)
    assert users.list_users() == [ALICE]


def test_external_identifiers_are_found_case_insensitively_and_unique(users: Any) -> None:
    carol = User(id="u-carol", email="carol@example.com", provider="idp",
                 external_identifier="CN=Carol,OU=People,DC=Example,DC=org")
    users.create(ALICE)
    users.create(carol)
    assert users.get_by_external_identifier("cn=carol,ou=people,dc=example,dc=org") == carol
    assert users.get_by_external_identifier("CN=Carol,OU=People,DC=Example,DC=org") == carol
    assert users.get_by_external_identifier("cn=carol") is None
    assert users.get_by_external_identifier("") is None  # ALICE has none: NULL matches nothing
    with pytest.raises(ValueError):
        users.create(replace(BOB, external_identifier="cn=CAROL,ou=people,dc=example,dc=org"))
    with pytest.raises(ValueError):
        users.update("u-alice", external_identifier=carol.external_identifier.upper())
    users.create(replace(BOB, external_identifier="bob-sub"))  # many users, many identities
    moved = users.update("u-carol", external_identifier="carol-sub")
    assert moved == replace(carol, external_identifier="carol-sub")
    assert users.get_by_external_identifier("CAROL-SUB") == moved
    assert users.get_by_external_identifier(carol.external_identifier) is None
    assert users.update("u-carol", external_identifier=None) == replace(carol, external_identifier=None)
    assert users.get_by_external_identifier("carol-sub") is None


@settings(max_examples=50, deadline=None)
@given(identifier=st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=60))
def test_any_external_identifier_round_trips(identifier: str) -> None:
    from tokenguard.stores.memory import MemoryUserStore

    for store in (MemoryUserStore(), SQLiteUserStore(":memory:")):
        user = User(id="1", email="x@example.com", external_identifier=identifier)
        store.create(user)
        assert store.get_by_external_identifier(identifier) == user
        assert store.get_by_external_identifier(identifier.casefold()) == user
        assert store.get_by_external_identifier(identifier + "x") is None


def test_sqlite_migrates_a_version_1_file(tmp_path: Path) -> None:
    """A file written before external identifiers existed gains the column, keeping users."""
    from tokenguard.stores.sqlite import _MIGRATIONS

    path = tmp_path / "v1.db"
    conn = sqlite3.connect(path)
    for statement in _MIGRATIONS[1]:
        conn.execute(statement)
    conn.execute("CREATE TABLE tokenguard_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute("INSERT INTO tokenguard_meta VALUES ('schema_version', '1')")
    conn.execute(
        "INSERT INTO tokenguard_users (id, email, email_key, status, admin_access, app_access,"
        " provider) VALUES ('u-old', 'Old@example.com', 'old@example.com', 'active', 0, 1, 'idp')"
    )
    conn.commit()
    conn.close()
    store = SQLiteUserStore(path)
    old = store.get_by_id("u-old")
    assert old == User(id="u-old", email="Old@example.com", app_access=True, provider="idp")
    store.update("u-old", external_identifier="sub-1")
    assert store.get_by_external_identifier("SUB-1") == replace(old, external_identifier="sub-1")
    store.close()
    with sqlite3.connect(path) as check:
        assert check.execute(
            "SELECT value FROM tokenguard_meta WHERE key = 'schema_version'"
        ).fetchone() == (str(SCHEMA_VERSION),)
    check.close()


def test_update(users: Any) -> None:
    users.create(ALICE)
    users.create(BOB)
    changed = users.update("u-bob", status="active", email="Bobby@example.com", token_hash="c" * 64)
    assert changed == replace(BOB, status="active", email="Bobby@example.com", token_hash="c" * 64)
    assert users.get_by_email("bobby@EXAMPLE.com") == changed
    assert users.get_by_email("bob@example.com") is None
    assert users.get_by_token_hash("c" * 64) == changed
    assert users.update("u-bob", token_hash=None) == replace(changed, token_hash=None)
    assert users.get_by_token_hash("c" * 64) is None
    assert users.update("u-nobody", status="active") is None


def test_update_refuses_clashes_and_unknown_fields(users: Any) -> None:
    users.create(ALICE)
    users.create(BOB)
    with pytest.raises(ValueError):
        users.update("u-bob", email="alice@EXAMPLE.com")
    with pytest.raises(ValueError):
        users.update("u-bob", token_hash=ALICE.token_hash)
    with pytest.raises(ValueError):
        users.update("u-bob", id="u-other")
    with pytest.raises(ValueError):
        users.update("u-bob", password="clear text")
    assert users.get_by_id("u-bob") == BOB


def test_delete(users: Any) -> None:
    users.create(ALICE)
    assert users.delete("u-alice") is True
    assert users.delete("u-alice") is False
    assert users.get_by_id("u-alice") is None
    assert users.get_by_email(ALICE.email) is None
    assert users.get_by_token_hash("a" * 64) is None
    users.create(replace(BOB, email=ALICE.email))  # the e-mail is free again


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@settings(max_examples=100, deadline=None)
@given(
    email=_text.filter(bool),
    first=st.none() | _text,
    admin=st.booleans(),
    status=st.sampled_from(["active", "suspended", "invited", "draft", "archived"]),
)
def test_sqlite_round_trips_any_user(
    tmp_path_factory: pytest.TempPathFactory,
    email: str,
    first: str | None,
    admin: bool,
    status: Any,
) -> None:
    store = SQLiteUserStore(tmp_path_factory.mktemp("users") / "u.db")
    try:
        user = User(id=email, email=email, first_name=first, admin_access=admin, status=status)
        store.create(user)
        assert store.get_by_id(email) == user
        assert store.get_by_email(email.upper()) in (user, None)
        assert store.get_by_email(email.casefold()) == user
    finally:
        store.close()


def test_sqlite_persists_and_records_its_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    first = SQLiteUserStore(path)
    first.create(ALICE)
    first.close()
    sessions = SQLiteSessionStore(path)  # one file may hold both
    sessions.close()
    again = SQLiteUserStore(path)
    assert again.get_by_email("alice@example.com") == ALICE
    again.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute(
            "SELECT value FROM tokenguard_meta WHERE key = 'schema_version'"
        ).fetchone() == (str(SCHEMA_VERSION),)
    conn.close()


def test_sqlite_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    SQLiteUserStore(path).close()
    store = SQLiteUserStore(path)
    store.list_users()
    store.close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE tokenguard_meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(SchemaTooNew):
        SQLiteUserStore(path).list_users()


def test_sqlite_in_memory_works_across_threads() -> None:
    from concurrent.futures import ThreadPoolExecutor

    store = SQLiteUserStore(":memory:")
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: store.create(User(id=str(i), email=f"{i}@x.org")), range(50)))
    assert len(store.list_users()) == 50
    store.close()


def test_sqlite_connections_of_finished_threads_are_closed(tmp_path: Path) -> None:
    """A server starting one thread per request must not keep one connection per request."""
    import gc
    import threading

    store = SQLiteUserStore(tmp_path / "threads.db")
    store.create(ALICE)
    seen: list[User | None] = []
    for _ in range(3):
        threads = [
            threading.Thread(target=lambda: seen.append(store.get_by_id("u-alice")))
            for _ in range(20)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    del threads, t
    gc.collect()
    assert seen == [ALICE] * 60
    assert len(store._db._all) <= 1  # only this thread's connection
    store.close()
