"""What the Redis store leaves in Redis: key names, TTLs, compact values, nothing more."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import redis

from tokenguard.stores.base import StoreUnavailable
from tokenguard.stores.redis import RedisSessionStore

from .conftest import new_token, real_now_ms, record

pytestmark = pytest.mark.redis
HOUR = 3_600_000


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url)
    yield c
    c.close()


@pytest.fixture
def store(redis_url: str, redis_prefix: str) -> Iterator[RedisSessionStore]:
    s = RedisSessionStore.from_url(redis_url, prefix=redis_prefix)
    yield s
    s.close()


def keys(client: redis.Redis, prefix: str) -> set[str]:
    return {k.decode() for k in client.scan_iter(match=f"{prefix}*")}


def test_one_hash_per_family_and_one_set_per_user(
    store: RedisSessionStore, client: redis.Redis, redis_prefix: str
) -> None:
    now = real_now_ms()
    token = new_token()
    old = record(token, user_id="alice", expires_at_ms=now + HOUR, ip="10.0.0.1")
    store.create(old)
    family_key = f"{redis_prefix}s:{{{old.family}}}"
    user_key = f"{redis_prefix}u:alice"
    assert keys(client, redis_prefix) == {family_key, user_key}
    assert client.smembers(user_key) == {old.family.encode()}
    value = json.loads(client.hget(family_key, old.token_hash))
    assert value == {"u": "alice", "e": now + HOUR, "ip": "10.0.0.1"}
    assert token not in client.hget(family_key, old.token_hash).decode()
    # the key dies with its longest-lived record
    assert client.pexpiretime(family_key) == now + HOUR
    assert client.pexpiretime(user_key) == now + HOUR

    nxt = record(new_token(old.family), user_id="alice", expires_at_ms=now + 2 * HOUR)
    assert store.rotate(old.token_hash, nxt, now_ms=now, grace_ms=0).status == "rotated"
    assert set(client.hkeys(family_key)) == {old.token_hash.encode(), nxt.token_hash.encode()}
    assert client.pexpiretime(family_key) == now + 2 * HOUR
    tombstone = json.loads(client.hget(family_key, old.token_hash))
    assert tombstone["n"] == nxt.token_hash and tombstone["l"] == now

    assert store.revoke_user("alice") == 1
    # What remains is the window of revoked sessions (the family, until no access token of
    # it can still be valid: the session window, not the users' day).
    window_key = f"{redis_prefix}rvs"
    assert keys(client, redis_prefix) == {window_key}
    assert client.zrange(window_key, 0, -1) == [f"s:{old.family}".encode()]
    assert 0 < client.pttl(window_key) <= store.session_revocation_window_ms < HOUR


def test_sessions_leave_the_window_after_theirs_and_users_stay_for_theirs(
    store: RedisSessionStore, client: redis.Redis, redis_prefix: str
) -> None:
    store.revocation_window_ms, store.session_revocation_window_ms = HOUR, 300
    sessions, users = f"{redis_prefix}rvs", f"{redis_prefix}rv"
    now = real_now_ms()
    # Every way a session ends (the scripts, the batches) writes rvs only, with its expiry.
    logout, reused, ended = (record(new_token(), user_id="u", expires_at_ms=now + HOUR) for _ in range(3))
    for rec in (logout, reused, ended):
        store.create(rec)
    assert store.revoke(logout.token_hash) is not None
    nxt = record(new_token(reused.family), user_id="u", expires_at_ms=now + HOUR)
    assert store.rotate(reused.token_hash, nxt, now_ms=now, grace_ms=0).status == "rotated"
    again = record(new_token(reused.family), user_id="u", expires_at_ms=now + HOUR)
    assert store.rotate(reused.token_hash, again, now_ms=now, grace_ms=0).status == "reused"
    assert store.revoke_session("u", ended.family) is True
    at = real_now_ms()
    store.record_revocations([("u:bob", at), ("s:app-made", at)], "")
    assert {m.decode() for m in client.zrange(sessions, 0, -1)} == {
        f"s:{logout.family}", f"s:{reused.family}", f"s:{ended.family}", "s:app-made"
    }
    assert client.zrange(users, 0, -1) == [b"u:bob"]
    assert 0 < client.pttl(sessions) <= 300 and HOUR - 60_000 < client.pttl(users) <= HOUR
    assert store.revocation_scores("app-made", "bob") == (at, at)
    time.sleep(0.4)
    # Past the session window: the next session revocation prunes the earlier ones (and had
    # none come, the key's expiry would have), while the user revoked at the same moment stays.
    late = record(new_token(), user_id="u", expires_at_ms=now + HOUR)
    store.create(late)
    assert store.revoke(late.token_hash) is not None
    assert client.zrange(sessions, 0, -1) == [f"s:{late.family}".encode()]
    assert store.revocation_scores("app-made", "bob") == (None, at)
    assert store.revocation_scores(logout.family, None) == (None, None)
    time.sleep(0.4)
    assert client.exists(sessions) == 0 and client.zrange(users, 0, -1) == [b"u:bob"]


def test_sessions_in_the_window_of_earlier_versions_are_still_found(
    store: RedisSessionStore, client: redis.Redis, redis_prefix: str
) -> None:
    # Before rvs existed, rv held both kinds for the users' window: after an upgrade those
    # members are asked until they are pruned with the users' window, never dropped early.
    store.revocation_window_ms, store.session_revocation_window_ms = HOUR, 300
    users = f"{redis_prefix}rv"
    now = real_now_ms()
    client.zadd(users, {"s:written-before": now - 10_000, "u:carol": now - 10_000})
    assert store.revocation_scores("written-before", "carol") == (now - 10_000, now - 10_000)
    # the later of the two sets wins for a session found in both
    store.record_revocations([("s:written-before", now)], "")
    assert store.revocation_scores("written-before", None) == (now, None)
    time.sleep(0.4)
    store.record_revocations([("s:other", real_now_ms())], "")
    assert store.revocation_scores("written-before", None) == (now - 10_000, None)
    # a user's revocation prunes rv with the users' window: the old member is still in it
    store.record_revocations([("u:dave", real_now_ms())], "")
    assert client.zscore(users, "s:written-before") == now - 10_000
    store.revocation_window_ms = 5_000
    store.record_revocations([("u:erin", real_now_ms())], "")
    assert client.zscore(users, "s:written-before") is None
    assert store.revocation_scores("written-before", "carol") == (None, None)


def test_an_expired_record_leaves_nothing_behind(
    store: RedisSessionStore, client: redis.Redis, redis_prefix: str
) -> None:
    store.create(record(new_token(), expires_at_ms=real_now_ms() - 1))
    assert keys(client, redis_prefix) == set()


def test_an_unreadable_record_fails_closed(
    store: RedisSessionStore, client: redis.Redis, redis_prefix: str
) -> None:
    now = real_now_ms()
    rec = record(new_token(), expires_at_ms=now + HOUR)
    store.create(rec)
    for garbage in (b"not json", b'{"u": "x"}', b'{"u": "x", "e": "soon"}', b"[]"):
        client.hset(f"{redis_prefix}s:{{{rec.family}}}", rec.token_hash, garbage)
        with pytest.raises(StoreUnavailable):
            store.get(rec.token_hash, now)


@pytest.mark.parametrize(
    "bad",
    [
        {"expires_at_ms": 10**14},
        {"expires_at_ms": -1},
        {"created_at_ms": 10**15},
        {"user_agent": "\udc80"},
    ],
)
def test_values_redis_cannot_keep_exactly_are_refused(
    store: RedisSessionStore, client: redis.Redis, redis_prefix: str, bad: dict[str, Any]
) -> None:
    fields: dict[str, Any] = {"expires_at_ms": real_now_ms() + HOUR, **bad}
    with pytest.raises(ValueError):
        store.create(record(new_token(), **fields))
    assert keys(client, redis_prefix) == set()


def test_a_successor_must_stay_in_its_family(store: RedisSessionStore) -> None:
    now = real_now_ms()
    old = record(new_token(), expires_at_ms=now + HOUR)
    store.create(old)
    stranger = record(new_token(), expires_at_ms=now + HOUR)
    with pytest.raises(ValueError):
        store.rotate(old.token_hash, stranger, now_ms=now, grace_ms=0)
    with pytest.raises(ValueError):
        store.create(replace(old, family="someone-else"))
    assert store.get(old.token_hash, now) == old
