"""Revocations reaching every process through the PostgreSQL and SQLite session stores (real
servers and files): two ``TokenGuard`` objects with stores of their own stand for two worker
processes; what one revokes, the other refuses within the feed's bound, and while the feed
cannot vouch for its list, a revoked token is never accepted (401, or 503 when nothing can
answer)."""

from __future__ import annotations

import asyncio
import multiprocessing
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import GeneratorType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers.pg_server import PgServer
from tests.helpers.tokens import SECRET
from tokenguard.app import TokenGuard
from tokenguard.config import Settings, token_policy
from tokenguard.flow import run_async, run_sync
from tokenguard.guard.decide import Refusal
from tokenguard.guard.feed import Feed
from tokenguard.guard.feeds import PgRevocationFeed, SQLiteRevocationFeed
from tokenguard.jose.tokens import issue_access_token
from tokenguard.principal import Principal
from tokenguard.stores.base import FAMILY_LENGTH, SessionRecord, User, refresh_token_key
from tokenguard.stores.memory import MemoryUserStore
from tokenguard.stores.postgres import (
    CATCH_UP,
    AsyncPgSessionStore,
    PgSessionStore,
    read_revocation_payload,
    revocation_payload,
)
from tokenguard.stores.sqlite import SQLiteSessionStore

#: How long a revocation may take to reach another process (generous: a loaded machine).
BOUND_S = 5.0


def token(core: TokenGuard, user: str = "u1", *, store: Any = None) -> tuple[str, str]:
    """A json-mode login's (access token, refresh token), its session in ``store``."""
    store = store if store is not None else core.sessions
    users = core.users
    if isinstance(users, MemoryUserStore) and users.get_by_id(user) is None:
        users.create(User(id=user, email=f"{user}@example.com", role="r", app_access=True))
    refresh = secrets.token_urlsafe(48)
    now = time.time()
    now_ms = int(now * 1000)
    store.create(
        SessionRecord(refresh_token_key(refresh), refresh[:FAMILY_LENGTH], user, now_ms + 600_000, now_ms)
    )
    jwt = issue_access_token(
        token_policy(core.settings), user_id=user, role="r", app_access=True, admin_access=False,
        ttl_ms=600_000, now=now, sid=refresh[:FAMILY_LENGTH],
    )  # fmt: skip
    return jwt, refresh


def request(core: TokenGuard, jwt: str) -> Principal | Refusal:
    outcome = core.guard.authenticate(f"Bearer {jwt}", "", None)
    if isinstance(outcome, GeneratorType):
        outcome = run_sync(outcome)
    assert isinstance(outcome, Principal | Refusal)
    return outcome


def status(outcome: Principal | Refusal) -> int:
    return 200 if isinstance(outcome, Principal) else outcome.error.status


def refused(outcome: Principal | Refusal) -> bool:
    return isinstance(outcome, Refusal) and (outcome.error.status, outcome.error.code) == (
        401,
        "INVALID_CREDENTIALS",
    )


def eventually(check: Callable[[], bool], timeout: float = BOUND_S) -> float:
    """Seconds until ``check()`` holds; fails past ``timeout``."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout, "not within the bound"
        time.sleep(0.005)
    return time.monotonic() - start


@pytest.fixture
def cores() -> Iterator[list[TokenGuard]]:
    made: list[TokenGuard] = []
    yield made
    for core in made:
        core.close()


def make_core(sessions: Any, cores: list[TokenGuard], feed: type[Feed]) -> TokenGuard:
    """A guard over ``sessions`` (its own connections: another process's worth)."""
    core = TokenGuard(Settings(secret=SECRET), users=MemoryUserStore(), sessions=sessions)
    cores.append(core)
    assert isinstance(core.feed, feed)
    return core


def pg_core(conninfo: str, cores: list[TokenGuard]) -> TokenGuard:
    return make_core(PgSessionStore(conninfo), cores, PgRevocationFeed)


def sqlite_core(path: Path, cores: list[TokenGuard]) -> TokenGuard:
    return make_core(SQLiteSessionStore(path), cores, SQLiteRevocationFeed)


# -- PostgreSQL ----------------------------------------------------------------------------------


@pytest.mark.pg
def test_pg_a_logout_and_a_user_revocation_reach_the_other_process(
    pg_conninfo: str, cores: list[TokenGuard]
) -> None:
    a, b = pg_core(pg_conninfo, cores), pg_core(pg_conninfo, cores)
    for core in (a, b):
        assert core.feed is not None and core.feed.start(wait_s=10)
        assert core.guard.revocations.trusted
    jwt, refresh = token(a)
    other, _ = token(a, "u2")
    assert isinstance(request(b, jwt), Principal)
    run_sync(a.auth.logout(refresh))
    assert refused(request(a, jwt))  # here at once
    eventually(lambda: refused(request(b, jwt)))  # there through NOTIFY
    assert isinstance(request(b, other), Principal)  # another user's token is untouched

    # A user's revocation (a role change, a suspension), from the public API.
    a.revoke_user("u2")
    eventually(lambda: refused(request(b, other)))
    assert b.feed is not None and b.feed.received >= 2
    # Trusted all along: refused from memory, the store never asked per request.
    assert b.guard.revocations.trusted


@pytest.mark.pg
def test_pg_a_process_started_later_catches_up_from_the_table(
    pg_conninfo: str, cores: list[TokenGuard]
) -> None:
    a = pg_core(pg_conninfo, cores)
    jwt, refresh = token(a)
    theirs, _ = token(a, "u2")
    run_sync(a.auth.logout(refresh))  # a's feed never ran: the rows are all there is
    a.revoke_user("u2")
    b = pg_core(pg_conninfo, cores)
    # Not caught up yet: the store answers for the token (refused, never accepted blind).
    assert not b.guard.revocations.trusted
    assert refused(request(b, jwt)) and refused(request(b, theirs))
    assert b.feed is not None and b.feed.start(wait_s=10)
    # Both kinds, each kept in the table for its own window (the session's the shorter).
    assert b.guard.revocations.trusted and refused(request(b, jwt)) and refused(request(b, theirs))
    assert isinstance(b.sessions, PgSessionStore)
    assert b.sessions.session_revocation_window_ms == 905_000
    assert b.sessions.revocation_window_ms == 86_405_000


@pytest.mark.pg
def test_pg_an_announcement_too_long_for_notify_makes_listeners_read_the_table(
    pg_conninfo: str, cores: list[TokenGuard]
) -> None:
    a, b = pg_core(pg_conninfo, cores), pg_core(pg_conninfo, cores)
    assert b.feed is not None and b.feed.start(wait_s=10)
    jwt, _ = token(a, f"{'x' * 40}-399")
    assert isinstance(request(b, jwt), Principal)
    now_ms = int(time.time() * 1000) + 1  # after the token was issued
    many = [(f"u:{'x' * 40}-{i}", now_ms) for i in range(400)]  # > 8000 bytes of JSON
    assert revocation_payload(many) == CATCH_UP
    assert isinstance(a.sessions, PgSessionStore)
    a.sessions.record_revocations(many)
    eventually(lambda: refused(request(b, jwt)))
    assert len(b.guard.revocations.users) == 400


def test_pg_payloads_round_trip_and_unreadable_ones_mean_catch_up() -> None:
    members = [("s:abc", 1), ("u:ü,\"x\"", 1_800_000_000_000)]
    assert read_revocation_payload(revocation_payload(members)) == members
    for junk in (CATCH_UP, "", "{}", "[1]", '[["s:a"]]', "not json"):
        assert read_revocation_payload(junk) is None


# User ids come from wherever the app's users come from: any text.
_members = st.lists(
    st.tuples(
        st.sampled_from(["s:", "u:"]).flatmap(lambda k: st.text(min_size=1).map(lambda t: k + t)),
        st.integers(min_value=0, max_value=2**53),
    ),
    max_size=300,
)


@given(members=_members)
@settings(max_examples=200, deadline=None)
def test_pg_a_payload_is_exact_or_says_catch_up_and_always_fits(
    members: list[tuple[str, int]],
) -> None:
    payload = revocation_payload(members)
    assert len(payload.encode("utf-8", "surrogatepass")) < 8000  # NOTIFY's limit
    if payload == CATCH_UP:
        assert read_revocation_payload(payload) is None
    else:
        assert read_revocation_payload(payload) == members


@given(user=st.text(min_size=1), sid=st.text(min_size=1))
@settings(max_examples=50, deadline=None)
def test_sqlite_any_user_id_or_sid_is_found_again(tmp_path_factory: Any, user: str, sid: str) -> None:
    store = SQLiteSessionStore(tmp_path_factory.mktemp("rv") / "rv.db")
    try:
        store.record_revocations([(f"u:{user}", 5), (f"s:{sid}", 7), (f"u:{user}", 9)])
        assert store.revocation_scores(sid, user) == (7, 9)  # a user's latest time wins
        assert store.revocation_scores(sid + "x", user + "x") == (None, None)
        members, last = store.revocations_after(None, 0)
        assert sorted(members) == sorted([(f"u:{user}", 5), (f"s:{sid}", 7), (f"u:{user}", 9)])
        assert store.revocations_after(last) == ([], last)
    finally:
        store.close()


@pytest.mark.pg
def test_pg_the_async_store_feeds_the_registry_too(pg_conninfo: str) -> None:
    store = AsyncPgSessionStore(pg_conninfo)
    core = TokenGuard(Settings(secret=SECRET), users=MemoryUserStore(), sessions=store, flavour="async")
    other = PgSessionStore(pg_conninfo)  # another process, synchronous

    async def main() -> None:
        assert isinstance(core.feed, PgRevocationFeed)
        jwt, refresh = token(core, store=other)
        # Before the feed: the async store's answer, awaited.
        outcome = core.guard.authenticate(f"Bearer {jwt}", "", None)
        assert isinstance(outcome, GeneratorType)
        assert isinstance(await run_async(outcome), Principal)
        assert await asyncio.to_thread(core.feed.start, 10)
        other.revoke(refresh_token_key(refresh))
        deadline = time.monotonic() + BOUND_S
        while not core.guard.revocations.refuses(refresh[:FAMILY_LENGTH], None, None):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.005)
        outcome = core.guard.authenticate(f"Bearer {jwt}", "", None)
        assert isinstance(outcome, Refusal) and outcome.error.status == 401
        await core.aclose()

    try:
        asyncio.run(main())
    finally:
        other.close()


def watch(core: TokenGuard, tokens: dict[str, str], seconds: float) -> dict[str, set[int]]:
    """The statuses each token got over ``seconds`` of requests."""
    seen: dict[str, set[int]] = {name: set() for name in tokens}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for name, jwt in tokens.items():
            seen[name].add(status(request(core, jwt)))
        time.sleep(0.01)
    return seen


@pytest.mark.pg
def test_pg_frozen_then_killed_never_lets_a_revoked_token_through(
    own_pg: PgServer, cores: list[TokenGuard]
) -> None:
    a, b = pg_core(own_pg.conninfo, cores), pg_core(own_pg.conninfo, cores)
    for core in (a, b):
        assert core.feed is not None and core.feed.start(wait_s=10)
    kept, _ = token(a)
    gone, refresh = token(a, "u2")
    run_sync(a.auth.logout(refresh))
    eventually(lambda: refused(request(b, gone)))
    tokens = {"kept": kept, "gone": gone}
    rv = b.guard.revocations

    # Frozen: sockets stay open, nothing answers. The feed notices within its bound.
    own_pg.pause()
    try:
        frozen_at = time.monotonic()
        took = eventually(lambda: not rv.trusted, timeout=5)
        assert took < 3.0, took
        seen = watch(b, tokens, 3.0)  # each untrusted request waits for the pool's 2 s
        assert seen["gone"] <= {401, 503}, seen
        assert seen["kept"] == {503}, seen
        assert time.monotonic() - frozen_at < 30
    finally:
        own_pg.resume()
    eventually(lambda: rv.trusted, timeout=20)
    assert status(request(b, kept)) == 200 and refused(request(b, gone))

    # Killed outright (and a revocation made by the other process while b is dark is not
    # missed: b catches up from the table once the server is back).
    own_pg.stop()
    eventually(lambda: not rv.trusted, timeout=5)
    seen = watch(b, tokens, 1.0)
    assert seen["gone"] <= {401, 503} and seen["kept"] == {503}, seen
    own_pg.start()
    eventually(lambda: status(request(a, kept)) == 200, timeout=30)
    a.revoke_user("u1")  # a's registry at once; b hears it or catches it up
    eventually(lambda: rv.trusted, timeout=20)
    eventually(lambda: refused(request(b, kept)))
    assert refused(request(b, gone))


# -- SQLite --------------------------------------------------------------------------------------


def test_sqlite_a_logout_reaches_the_other_process_within_a_poll(
    tmp_path: Path, cores: list[TokenGuard]
) -> None:
    path = tmp_path / "shared.db"
    a, b = sqlite_core(path, cores), sqlite_core(path, cores)
    for core in (a, b):
        assert core.feed is not None and core.feed.start(wait_s=5)
    jwt, refresh = token(a)
    other, _ = token(a, "u2")
    assert isinstance(request(b, jwt), Principal)
    run_sync(a.auth.logout(refresh))
    assert refused(request(a, jwt))
    took = eventually(lambda: refused(request(b, jwt)))
    assert took < 1.0, took  # 50 ms polls; generous for a loaded machine
    a.revoke_user("u2")
    eventually(lambda: refused(request(b, other)))
    assert isinstance(b.sessions, SQLiteSessionStore)
    # Sessions revoked by the store itself (the command line's revoke-sessions) too.
    third, _ = token(a, "u3")
    assert isinstance(request(b, third), Principal)
    assert b.sessions.revoke_user("u3") == 1
    eventually(lambda: refused(request(a, third)))


def test_sqlite_a_failing_poll_ends_trust_and_the_table_answers_per_request(
    tmp_path: Path, cores: list[TokenGuard]
) -> None:
    path = tmp_path / "shared.db"
    a, b = sqlite_core(path, cores), sqlite_core(path, cores)
    assert b.feed is not None and b.feed.start(wait_s=5)
    kept, _ = token(a)
    gone, refresh = token(a, "u2")
    run_sync(a.auth.logout(refresh))
    eventually(lambda: refused(request(b, gone)))
    rv = b.guard.revocations
    # The table vanishes (a broken file, as far as the poller can tell).
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE tokenguard_revocations RENAME TO moved")
    conn.close()
    eventually(lambda: not rv.trusted)
    # Nothing can vouch for a token now: 503 for both, never a 200 for the revoked one.
    assert status(request(b, kept)) == 503 and status(request(b, gone)) in (401, 503)
    # Revocations b could not read meanwhile, one of each kind: found when it catches up.
    now_ms = int(time.time() * 1000) + 1
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO moved (member, at_ms) VALUES (?, ?)", [("s:missed", now_ms), ("u:u3", now_ms)]
        )
        conn.execute("ALTER TABLE moved RENAME TO tokenguard_revocations")
    conn.close()
    eventually(lambda: rv.trusted, timeout=15)
    assert status(request(b, kept)) == 200 and refused(request(b, gone))
    assert rv.refuses("missed", None, None) and rv.refuses(None, "u3", now_ms / 1000 - 1)


def test_sqlite_in_memory_and_memory_stores_have_no_feed_and_stay_trusted() -> None:
    for sessions in (SQLiteSessionStore(":memory:"), None):
        core = TokenGuard(Settings(secret=SECRET), users=MemoryUserStore(), sessions=sessions)
        assert core.feed is None and core.invalidation is None
        assert core.guard.revocations.trusted  # one process: a revocation applies at once
        jwt, refresh = token(core)
        assert isinstance(request(core, jwt), Principal)
        run_sync(core.auth.logout(refresh))
        assert refused(request(core, jwt))
        core.close()


def _child(path: str, queue: Any, core: TokenGuard) -> None:
    rv = core.guard.revocations
    queue.put(rv.trusted)  # inherited from a parent whose thread is not here: not trusted
    assert core.feed is not None
    queue.put(core.feed.start(wait_s=5) and rv.trusted)


def test_a_forked_child_trusts_nothing_it_inherited_and_starts_its_own_feed(
    tmp_path: Path, cores: list[TokenGuard]
) -> None:
    core = sqlite_core(tmp_path / "shared.db", cores)
    assert core.feed is not None and core.feed.start(wait_s=5)
    assert core.guard.revocations.trusted
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child, args=(str(tmp_path), queue, core))
    child.start()
    assert queue.get(timeout=30) is False
    assert queue.get(timeout=30) is True
    child.join(timeout=30)
    assert child.exitcode == 0


@pytest.mark.parametrize("kind", [pytest.param("pg", marks=pytest.mark.pg), "sqlite"])
def test_close_stops_the_feed_in_bounded_time(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if kind == "pg":
        sessions: Any = PgSessionStore(request.getfixturevalue("pg_conninfo"))
    else:
        sessions = SQLiteSessionStore(tmp_path / "f.db")
    core = TokenGuard(Settings(secret=SECRET), users=MemoryUserStore(), sessions=sessions)
    assert core.feed is not None and core.feed.start(wait_s=10)
    thread = core.feed._thread
    started = time.monotonic()
    core.close()
    assert time.monotonic() - started < 2
    assert thread is not None and not thread.is_alive()
    assert not core.guard.revocations.trusted
