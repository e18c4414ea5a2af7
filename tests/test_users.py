"""Seeding the administrator (tokenguard.users): idempotent, and safe from every worker at once."""

from __future__ import annotations

import asyncio
import multiprocessing
import re
from pathlib import Path
from typing import Any

import pytest

from tokenguard.auth.passwords import verify_password
from tokenguard.jose.tokens import hash_token
from tokenguard.stores.base import User
from tokenguard.stores.memory import MemoryUserStore
from tokenguard.stores.sqlite import SQLiteUserStore
from tokenguard.users import aensure_admin, afind_user, aseed_from_env, ensure_admin, seed_from_env

EMAIL = "admin@example.com"


class SiblingWins(MemoryUserStore):
    """The first lookup misses, then a sibling worker creates the user before our insert."""

    def __init__(self) -> None:
        super().__init__()
        self.raced = False

    def get_by_email(self, email: str) -> User | None:
        if not self.raced:
            self.raced = True
            found = super().get_by_email(email)
            ensure_admin(MemoryUserStoreView(self), email)  # the sibling's insert
            return found
        return super().get_by_email(email)


class MemoryUserStoreView:
    """The same rows, without SiblingWins' race (the sibling's own view of the store)."""

    def __init__(self, store: MemoryUserStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(MemoryUserStore, name).__get__(self._store)


def test_the_loser_of_the_race_takes_the_winners_user() -> None:
    store = SiblingWins()
    admin = ensure_admin(store, EMAIL, "s3cret-pass-phrase")
    assert store.raced
    assert [u.id for u in store.list_users()] == [admin.id]
    assert admin.admin_access is True and admin.role == "administrator"
    assert verify_password(admin.password_hash, "s3cret-pass-phrase")


class RefusesEveryInsert(MemoryUserStore):
    def create(self, user: User) -> None:
        raise ValueError("a user with this id, e-mail, token or external identifier exists")


def test_a_clash_that_is_not_a_lost_race_still_raises() -> None:
    # The insert fails but no admin appeared: that is not a sibling's win, and must not pass.
    with pytest.raises(ValueError, match="exists"):
        ensure_admin(RefusesEveryInsert(), EMAIL, "s3cret-pass-phrase")


def _seed(path: str, barrier: Any, results: Any) -> None:
    store = SQLiteUserStore(path)
    barrier.wait()
    try:
        user = seed_from_env(store, {"ADMIN_EMAIL": EMAIL, "ADMIN_PASSWORD": "s3cret-pass-phrase"})
        results.put(("ok", user.id if user else None))
    except Exception as exc:  # reported to the parent, which fails the test
        results.put(("error", repr(exc)))


def test_four_processes_seed_one_sqlite_file_at_once(tmp_path: Path) -> None:
    # What four gunicorn workers do at boot on a fresh file: every one of them must come up.
    path = str(tmp_path / "fresh.db")
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    results = ctx.Queue()
    workers = [ctx.Process(target=_seed, args=(path, barrier, results)) for _ in range(4)]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    assert [kind for kind, _ in outcomes] == ["ok"] * 4, outcomes
    assert len({value for _, value in outcomes}) == 1
    users = SQLiteUserStore(path).list_users()
    assert [u.email for u in users] == [EMAIL]


# -- from an event loop: aensure_admin / aseed_from_env / afind_user ----------------------------

SEED = {"ADMIN_EMAIL": EMAIL, "ADMIN_PASSWORD": "s3cret-pass-phrase", "ADMIN_TOKEN": "t" * 20}


def test_the_async_seed_takes_a_sync_store_too() -> None:
    store = MemoryUserStore()
    admin = asyncio.run(aseed_from_env(store, SEED))
    assert admin is not None and admin.email == EMAIL and admin.admin_access is True
    assert verify_password(admin.password_hash, "s3cret-pass-phrase")
    assert admin.token_hash == hash_token("t" * 20)
    assert asyncio.run(afind_user(store, admin.id)) == admin
    assert asyncio.run(aseed_from_env(store, {})) is None  # no ADMIN_EMAIL: nothing to do


def test_the_async_seed_loser_of_the_race_takes_the_winners_user() -> None:
    store = SiblingWins()
    admin = asyncio.run(aensure_admin(store, EMAIL, "s3cret-pass-phrase"))
    assert store.raced
    assert [u.id for u in store.list_users()] == [admin.id]
    assert verify_password(admin.password_hash, "s3cret-pass-phrase")


def test_afind_user_raises_lookup_error_for_nobody() -> None:
    with pytest.raises(LookupError, match=re.escape("no user 'nobody@example.com'")):
        asyncio.run(afind_user(MemoryUserStore(), "nobody@example.com"))


@pytest.mark.pg
def test_the_async_seed_on_an_async_postgres_store(pg_conninfo: str) -> None:
    # What an ASGI app with DB_CLIENT=pg does in its lifespan: its user store is async.
    from tokenguard.stores.postgres import AsyncPgUserStore

    async def main() -> tuple[User | None, User | None, User]:
        store = AsyncPgUserStore(pg_conninfo)
        try:
            first = await aseed_from_env(store, SEED)
            again = await aseed_from_env(store, SEED)  # idempotent: a second worker, a restart
            return first, again, await afind_user(store, EMAIL)
        finally:
            await store.aclose()

    first, again, found = asyncio.run(main())
    assert first is not None and again is not None
    assert first.id == again.id == found.id
    assert found.admin_access is True and found.role == "administrator"
    assert verify_password(found.password_hash, "s3cret-pass-phrase")
    assert found.token_hash == hash_token("t" * 20)
