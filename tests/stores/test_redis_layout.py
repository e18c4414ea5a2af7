"""What the Redis store leaves in Redis: key names, TTLs, compact values, nothing more."""

from __future__ import annotations

import json
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
    # What remains is the window of revocations (the family, until no token can need it).
    window_key = f"{redis_prefix}rv"
    assert keys(client, redis_prefix) == {window_key}
    assert client.zrange(window_key, 0, -1) == [f"s:{old.family}".encode()]
    assert 0 < client.pttl(window_key) <= store.revocation_window_ms


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
