"""The verified-token cache on its own: what an entry holds, when it ends, what is evicted."""

from __future__ import annotations

from tokenguard.guard.cache import TokenCache
from tokenguard.principal import Principal

ALICE = Principal(user="alice", role="r", via="jwt")
BOB = Principal(user="bob", role="r", via="jwt")


def test_an_entry_ends_at_its_valid_until() -> None:
    cache = TokenCache(4)
    cache.put("t1", ALICE, 100.0)
    assert cache.get("t1", 99.999) is ALICE
    assert cache.get("t1", 100.0) is None  # at the instant itself: gone, and dropped
    assert "t1" not in cache and len(cache) == 0


def test_the_oldest_entry_goes_when_the_cache_is_full() -> None:
    cache = TokenCache(2)
    cache.put("t1", ALICE, 100.0)
    cache.put("t2", BOB, 100.0)
    cache.put("t2", BOB, 200.0)  # a token already held replaces itself, evicting nothing
    assert ("t1" in cache, len(cache)) == (True, 2)
    cache.put("t3", ALICE, 100.0)
    assert ("t1" in cache, "t2" in cache, "t3" in cache) == (False, True, True)
    one = TokenCache(1)  # the smallest cache that caches
    one.put("t1", ALICE, 100.0)
    assert one.get("t1", 0.0) is ALICE
    empty = TokenCache(0)
    empty.put("t1", ALICE, 100.0)  # size 0: caching is off
    assert len(empty) == 0


def test_discard_forgets_one_token_and_ignores_an_absent_one() -> None:
    cache = TokenCache(4)
    cache.put("t1", ALICE, 100.0)
    cache.put("t2", BOB, 100.0)
    cache.discard("t1")
    cache.discard("t1")  # already gone (evicted, or discarded twice): nothing happens
    assert ("t1" in cache, cache.get("t2", 0.0)) == (False, BOB)
