"""One contract, every backend: memory (the reference), SQLite, Redis sync and Redis async."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from tokenguard.stores.base import RotateOutcome, SessionRecord, refresh_token_key, session_id

from .conftest import PortalStore, new_token, real_now_ms, record

MINUTE = 60_000
HOUR = 60 * MINUTE
GRACE = 10_000


def family_of_token(token: str) -> str:
    return token[:22]


def successor(old: SessionRecord, now: int, *, ttl: int = HOUR, **extra: Any) -> SessionRecord:
    """The record a refresh of ``old`` would hand out (same family prefix, new secret)."""
    return record(new_token(old.family), user_id=old.user_id, expires_at_ms=now + ttl, **extra)


# --- create / get / expiry ------------------------------------------------------------------


def test_create_then_get_returns_the_same_record(sessions: Any, now: int) -> None:
    rec = record(
        new_token(),
        expires_at_ms=now + HOUR,
        created_at_ms=now,
        ip="203.0.113.7",
        user_agent='Mozilla/5.0 "quoted" \\ é 漢字 \x00 /slash',
        origin="https://app.example",
    )
    sessions.create(rec)
    assert sessions.get(rec.token_hash, now) == rec


def test_unknown_and_malformed_hashes_are_absent(sessions: Any, now: int) -> None:
    sessions.create(record(new_token(), expires_at_ms=now + HOUR))
    for key in (refresh_token_key(new_token()), "", ".", "x", "{a}.b", "a b.c", "é" * 22 + ".x"):
        assert sessions.get(key, now) is None
        assert sessions.revoke(key) is None
        family = key.partition(".")[0]
        nxt = record(new_token(family if len(family) == 22 else None), expires_at_ms=now + HOUR)
        assert sessions.rotate(key, nxt, now_ms=now, grace_ms=0) == RotateOutcome("missing")


def test_a_record_lives_until_its_expiry_inclusive(sessions: Any, now: int) -> None:
    rec = record(new_token(), expires_at_ms=now + 1000)
    sessions.create(rec)
    assert sessions.get(rec.token_hash, now + 1000) == rec
    assert sessions.get(rec.token_hash, now + 1001) is None


def test_an_expired_token_does_not_rotate(sessions: Any, now: int) -> None:
    rec = record(new_token(), expires_at_ms=now + 1000)
    sessions.create(rec)
    nxt = successor(rec, now)
    assert sessions.rotate(rec.token_hash, nxt, now_ms=now + 1001, grace_ms=GRACE) == (
        RotateOutcome("missing")
    )
    assert sessions.get(nxt.token_hash, now + 1001) is None


# --- rotate ---------------------------------------------------------------------------------


def test_rotation_keeps_the_family_and_retires_the_old_token(sessions: Any, now: int) -> None:
    old = record(new_token(), user_id="u", expires_at_ms=now + HOUR, ip="10.0.0.1")
    sessions.create(old)
    nxt = replace(successor(old, now, ip="10.0.0.2"), family="ignored-by-the-store")
    outcome = sessions.rotate(old.token_hash, nxt, now_ms=now, grace_ms=0)
    assert outcome == RotateOutcome("rotated", replace(nxt, family=old.family))
    assert sessions.get(old.token_hash, now) is None
    assert sessions.get(nxt.token_hash, now) == replace(nxt, family=old.family)
    # the new token rotates in turn
    third = successor(old, now + 5)
    assert sessions.rotate(nxt.token_hash, third, now_ms=now + 5, grace_ms=0).status == "rotated"


def test_session_mode_grace_converges_on_the_same_token(sessions: Any, now: int) -> None:
    old = record(new_token(), expires_at_ms=now + HOUR)
    sessions.create(old)
    nxt = successor(old, now)
    first = sessions.rotate(old.token_hash, nxt, now_ms=now, grace_ms=GRACE)
    assert first.status == "rotated"
    # within the grace period the old token still authenticates…
    assert sessions.get(old.token_hash, now + GRACE - 1) is not None
    # …and a repeated refresh converges on the token already handed out, extending it
    later = replace(nxt, expires_at_ms=now + 2 * HOUR)
    again = sessions.rotate(old.token_hash, later, now_ms=now + GRACE - 1, grace_ms=GRACE)
    assert again == RotateOutcome(
        "grace", replace(nxt, family=old.family, expires_at_ms=now + 2 * HOUR)
    )
    assert sessions.get(nxt.token_hash, now + HOUR + 1) is not None
    # after the grace period the old token is dead, and presenting it again is reuse
    assert sessions.get(old.token_hash, now + GRACE) is None
    assert sessions.rotate(old.token_hash, later, now_ms=now + GRACE, grace_ms=GRACE) == (
        RotateOutcome("reused")
    )
    assert sessions.get(nxt.token_hash, now + GRACE) is None


def test_json_mode_reuse_revokes_the_family(sessions: Any, now: int) -> None:
    old = record(new_token(), expires_at_ms=now + HOUR)
    sessions.create(old)
    nxt = successor(old, now)
    assert sessions.rotate(old.token_hash, nxt, now_ms=now, grace_ms=0).status == "rotated"
    # the same old token again, even with the same new hash and at the same instant: reuse
    assert sessions.rotate(old.token_hash, nxt, now_ms=now, grace_ms=0) == RotateOutcome("reused")
    assert sessions.get(nxt.token_hash, now) is None
    assert sessions.get(old.token_hash, now) is None
    # the family is gone: nothing in it rotates any more
    assert sessions.rotate(nxt.token_hash, successor(old, now), now_ms=now, grace_ms=0) == (
        RotateOutcome("missing")
    )


def test_a_different_successor_within_grace_is_reuse(sessions: Any, now: int) -> None:
    old = record(new_token(), expires_at_ms=now + HOUR)
    sessions.create(old)
    nxt = successor(old, now)
    assert sessions.rotate(old.token_hash, nxt, now_ms=now, grace_ms=GRACE).status == "rotated"
    other = successor(old, now)
    assert sessions.rotate(old.token_hash, other, now_ms=now + 1, grace_ms=GRACE) == (
        RotateOutcome("reused")
    )
    assert sessions.get(nxt.token_hash, now + 1) is None


def test_grace_does_not_resurrect_a_successor_that_moved_on(sessions: Any, now: int) -> None:
    a = record(new_token(), expires_at_ms=now + HOUR)
    sessions.create(a)
    b = successor(a, now)
    c = successor(a, now)
    assert sessions.rotate(a.token_hash, b, now_ms=now, grace_ms=GRACE).status == "rotated"
    assert sessions.rotate(b.token_hash, c, now_ms=now + 1, grace_ms=GRACE).status == "rotated"
    # a client still holding A is behind: it gets nothing, and the family survives
    assert sessions.rotate(a.token_hash, b, now_ms=now + 2, grace_ms=GRACE) == (
        RotateOutcome("missing")
    )
    assert sessions.get(c.token_hash, now + 2) == replace(c, family=a.family)


def test_grace_with_an_expired_successor_is_missing(sessions: Any, now: int) -> None:
    a = record(new_token(), expires_at_ms=now + HOUR)
    sessions.create(a)
    b = successor(a, now, ttl=5)
    assert sessions.rotate(a.token_hash, b, now_ms=now, grace_ms=GRACE).status == "rotated"
    assert sessions.rotate(a.token_hash, b, now_ms=now + 6, grace_ms=GRACE) == (
        RotateOutcome("missing")
    )


# --- revoke ---------------------------------------------------------------------------------


def test_revoke_removes_the_whole_family(sessions: Any, now: int) -> None:
    a = record(new_token(), expires_at_ms=now + HOUR)
    sessions.create(a)
    b = successor(a, now)
    assert sessions.rotate(a.token_hash, b, now_ms=now, grace_ms=GRACE).status == "rotated"
    bystander = record(new_token(), expires_at_ms=now + HOUR)
    sessions.create(bystander)
    assert sessions.revoke(b.token_hash) == replace(b, family=a.family)
    assert sessions.get(a.token_hash, now) is None  # was alive in its grace period
    assert sessions.get(b.token_hash, now) is None
    assert sessions.rotate(a.token_hash, b, now_ms=now, grace_ms=GRACE) == RotateOutcome("missing")
    assert sessions.revoke(b.token_hash) is None
    assert sessions.get(bystander.token_hash, now) == bystander


@pytest.mark.parametrize(
    ("first_ttl", "next_ttl", "logout_with"),
    [
        # the usual case: the successor outlives the token it replaced
        (10 * MINUTE, 2 * HOUR, "first"),
        # found by the model test: a tombstone that outlives its successor
        (2 * HOUR, 10 * MINUTE, "next"),
    ],
)
def test_a_logout_with_an_expired_token_still_revokes_its_family(
    sessions: Any, now: int, first_ttl: int, next_ttl: int, logout_with: str
) -> None:
    first = record(new_token(), user_id="ann", expires_at_ms=now + first_ttl)
    sessions.create(first)
    nxt = successor(first, now, ttl=next_ttl)
    assert sessions.rotate(first.token_hash, nxt, now_ms=now, grace_ms=0).status == "rotated"
    later = now + 30 * MINUTE
    # A later rotation elsewhere gives SQLite its chance to purge what expired.
    other = record(new_token(), user_id="ben", expires_at_ms=later + HOUR)
    sessions.create(other)
    other_next = successor(other, later)
    assert sessions.rotate(other.token_hash, other_next, now_ms=later, grace_ms=0).status == (
        "rotated"
    )

    tombstone = replace(first, next_hash=nxt.token_hash, live_until_ms=now)
    stored = {"first": tombstone, "next": replace(nxt, family=first.family)}
    expired, survivor = (
        (stored["first"], stored["next"]) if logout_with == "first" else (stored["next"], tombstone)
    )
    assert expired.expires_at_ms < later <= survivor.expires_at_ms
    assert sessions.revoke(expired.token_hash) == expired
    assert sessions.get(nxt.token_hash, later) is None
    assert sessions.revoke(survivor.token_hash) is None  # the family went with the logout
    assert sessions.revoke_user("ann") == 0
    assert sessions.get(other_next.token_hash, later) == replace(other_next, family=other.family)


def test_revoke_user_takes_every_family_but_the_excepted_one(sessions: Any, now: int) -> None:
    mine = [record(new_token(), user_id="alice", expires_at_ms=now + HOUR) for _ in range(3)]
    theirs = record(new_token(), user_id="bob", expires_at_ms=now + HOUR)
    for rec in (*mine, theirs):
        sessions.create(rec)
    rotated = successor(mine[0], now)
    assert sessions.rotate(mine[0].token_hash, rotated, now_ms=now, grace_ms=0).status == "rotated"

    assert sessions.revoke_user("alice", except_family=mine[2].family) == 2
    assert sessions.get(rotated.token_hash, now) is None
    assert sessions.get(mine[1].token_hash, now) is None
    assert sessions.get(mine[2].token_hash, now) == mine[2]
    assert sessions.get(theirs.token_hash, now) == theirs

    assert sessions.revoke_user("alice") == 1
    assert sessions.get(mine[2].token_hash, now) is None
    assert sessions.revoke_user("alice") == 0
    assert sessions.revoke_user("nobody") == 0
    assert sessions.get(theirs.token_hash, now) == theirs


def test_a_new_login_after_revoke_user_is_kept(sessions: Any, now: int) -> None:
    sessions.create(record(new_token(), user_id="alice", expires_at_ms=now + HOUR))
    assert sessions.revoke_user("alice") == 1
    fresh = record(new_token(), user_id="alice", expires_at_ms=now + HOUR)
    sessions.create(fresh)
    assert sessions.get(fresh.token_hash, now) == fresh
    assert sessions.revoke_user("alice") == 1


@pytest.mark.parametrize("grace", [0, GRACE])
def test_rotation_chain(sessions: Any, now: int, grace: int) -> None:
    current = record(new_token(), expires_at_ms=now + HOUR)
    sessions.create(current)
    family = current.family
    for step in range(20):
        t = now + step * (grace + 1)
        nxt = successor(current, t)
        outcome = sessions.rotate(current.token_hash, nxt, now_ms=t, grace_ms=grace)
        assert outcome == RotateOutcome("rotated", replace(nxt, family=family))
        current = outcome.record
    assert sessions.get(current.token_hash, now + 20 * (grace + 1)) == current


# --- a user's own sessions: list, end one -----------------------------------------------------


def test_sessions_lists_each_live_family_once_newest_use_first(sessions: Any, now: int) -> None:
    a = record(new_token(), user_id="alice", expires_at_ms=now + HOUR, created_at_ms=now - 5000,
               ip="10.0.0.1", user_agent="A/1", origin="https://a.example")
    b = record(new_token(), user_id="alice", expires_at_ms=now + HOUR, created_at_ms=now - 3000,
               ip="10.0.0.2", user_agent="B/1")
    theirs = record(new_token(), user_id="bob", expires_at_ms=now + HOUR, created_at_ms=now)
    # (Redis expires keys on its own clock: a minute keeps it stored while the test runs.)
    dead = record(new_token(), user_id="alice", expires_at_ms=now + MINUTE,
                  created_at_ms=now - 9000)
    for rec in (a, b, theirs, dead):
        sessions.create(rec)
    # a is refreshed twice: created stays at its login, last used and the client move on.
    a2 = successor(a, now, created_at_ms=now - 2000, ip="10.0.0.9", user_agent="A/2")
    assert sessions.rotate(a.token_hash, a2, now_ms=now - 2000, grace_ms=0).status == "rotated"
    a3 = successor(a, now, created_at_ms=now - 1000, ip="10.0.0.10", user_agent="A/3")
    assert sessions.rotate(a2.token_hash, a3, now_ms=now - 1000, grace_ms=GRACE).status == (
        "rotated"
    )
    listed = sessions.sessions("alice", now)
    assert [(s.family, s.created_at_ms, s.last_used_at_ms) for s in listed] == [
        (a.family, now - 5000, now - 1000),
        (b.family, now - 3000, now - 3000),
        (dead.family, now - 9000, now - 9000),
    ]
    first = listed[0]
    assert (first.ip, first.user_agent, first.origin, first.user_id) == (
        "10.0.0.10", "A/3", None, "alice"
    )
    assert first.expires_at_ms == now + HOUR
    assert first.id == session_id(a.family) and first.family not in repr(first)
    # Once expired, a family is no longer listed; another user's never is.
    assert [s.family for s in sessions.sessions("alice", now + MINUTE + 1)] == [a.family, b.family]
    assert [s.family for s in sessions.sessions("bob", now)] == [theirs.family]
    assert sessions.sessions("nobody", now) == []


def test_revoke_session_ends_only_that_users_family(sessions: Any, now: int) -> None:
    mine = record(new_token(), user_id="alice", expires_at_ms=now + HOUR, created_at_ms=now)
    kept = record(new_token(), user_id="alice", expires_at_ms=now + HOUR, created_at_ms=now)
    theirs = record(new_token(), user_id="bob", expires_at_ms=now + HOUR, created_at_ms=now)
    for rec in (mine, kept, theirs):
        sessions.create(rec)
    nxt = successor(mine, now)
    assert sessions.rotate(mine.token_hash, nxt, now_ms=now, grace_ms=GRACE).status == "rotated"
    # Never another user's, whoever asks with its family.
    assert sessions.revoke_session("alice", theirs.family) is False
    assert sessions.get(theirs.token_hash, now) == theirs
    assert sessions.revoke_session("alice", mine.family) is True
    for token_hash in (mine.token_hash, nxt.token_hash):  # the whole family, grace or not
        assert sessions.get(token_hash, now) is None
    assert sessions.rotate(nxt.token_hash, successor(mine, now), now_ms=now, grace_ms=0) == (
        RotateOutcome("missing")
    )
    assert sessions.revoke_session("alice", mine.family) is False  # already gone
    assert [s.family for s in sessions.sessions("alice", now)] == [kept.family]
    assert sessions.get(kept.token_hash, now) == kept
    for odd in ("", "x", "{a}", "a b", "é" * 22, "\x00" * 22, kept.token_hash):
        assert sessions.revoke_session("alice", odd) is False
    assert sessions.revoke_session("bob", theirs.family) is True
    assert sessions.sessions("bob", now) == []


# --- the window of revocations (every store several processes share) ------------------------


def test_every_session_revocation_enters_the_window_of_revocations(sessions: Any, now: int) -> None:
    # What the other processes learn from (tokenguard.guard.revocation): a logout, reuse of a
    # rotated token and a user's revocation each record the families they ended, and a
    # revocation recorded by the app is found again. Memory is one process: it has no window.
    scores = getattr(sessions, "revocation_scores", None)
    if scores is None:
        from tokenguard.stores.memory import MemorySessionStore

        assert isinstance(sessions, MemorySessionStore)
        return
    logout, reused, alice = (record(new_token(), user_id=u, expires_at_ms=now + HOUR) for u in ("u", "u", "alice"))
    untouched = record(new_token(), user_id="bob", expires_at_ms=now + HOUR)
    for rec in (logout, reused, alice, untouched):
        sessions.create(rec)
    assert scores(logout.family, None) == (None, None)
    sessions.revoke(logout.token_hash)
    nxt = successor(reused, now)
    assert sessions.rotate(reused.token_hash, nxt, now_ms=now, grace_ms=0).status == "rotated"
    assert sessions.rotate(reused.token_hash, successor(reused, now), now_ms=now, grace_ms=0).status == "reused"
    assert sessions.revoke_user("alice") == 1
    ended = record(new_token(), user_id="carol", expires_at_ms=now + HOUR)
    sessions.create(ended)
    assert sessions.revoke_session("carol", ended.family) is True  # a user's own "end session"
    for family in (logout.family, reused.family, alice.family, ended.family):
        session_ms, _ = scores(family, None)
        assert session_ms is not None and abs(session_ms - real_now_ms()) < MINUTE
    assert scores(untouched.family, "bob") == (None, None)
    sessions.record_revocations([("u:bob", now + 5)], "")
    assert scores(untouched.family, "bob") == (None, now + 5)


def test_a_session_leaves_the_window_after_its_own_window_and_a_user_stays_for_theirs(
    sessions: Any, now: int
) -> None:
    # A session's revocation can refuse only access tokens (ACCESS_TOKEN_TTL): kept that
    # long, not for the users' window (a day), which is where most of a store's window went.
    scores = getattr(sessions, "revocation_scores", None)
    if scores is None:
        return  # memory: one process, no window (see above)
    store = sessions.store if isinstance(sessions, PortalStore) else sessions
    store.revocation_window_ms, store.session_revocation_window_ms = HOUR, MINUTE
    sessions.record_revocations([("s:gone", now), ("u:kept", now)], "")
    sessions.record_revocations([("s:fresh", now + MINUTE // 2)], "")
    assert scores("gone", "kept") == (now, now)  # within both windows
    sessions.record_revocations([("s:later", now + MINUTE + 1)], "")
    assert scores("gone", "kept") == (None, now)  # the session's window passed, not the user's
    assert scores("fresh", None) == (now + MINUTE // 2, None)
    assert scores("later", None) == (now + MINUTE + 1, None)
    sessions.record_revocations([("u:next", now + HOUR + 1)], "")
    assert scores(None, "kept") == (None, None)  # the user's window passed too
    assert scores(None, "next") == (None, now + HOUR + 1)
