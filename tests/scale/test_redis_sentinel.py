"""The Redis session store behind Sentinel: it follows the master through a failover."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
import redis

from tests.scale.redis_topologies import RedisSentinel
from tokenguard.stores.base import SessionRecord, StoreUnavailable, refresh_token_key
from tokenguard.stores.redis import AsyncRedisSessionStore, RedisSessionStore, parse_redis_url

pytestmark = pytest.mark.e2e


def record(tok: str, user: str, now_ms: int) -> SessionRecord:
    return SessionRecord(refresh_token_key(tok), tok[:22], user, now_ms + 60_000, now_ms)


def new_token() -> str:
    return (uuid.uuid4().hex + uuid.uuid4().hex + uuid.uuid4().hex)[:64]


def test_sentinel_urls() -> None:
    target = parse_redis_url("redis+sentinel://:pw@s1:26379,s2/mymaster/2?sentinel_password=sp")
    assert target.kind == "sentinel" and target.service == "mymaster" and target.db == 2
    assert target.nodes == (("s1", 26379), ("s2", 26379))
    assert (target.password, target.sentinel_password) == ("pw", "sp")
    with pytest.raises(ValueError, match="service name"):
        parse_redis_url("redis+sentinel://s1:26379")


def test_store_follows_the_master_through_a_failover(redis_sentinel: RedisSentinel) -> None:
    prefix = f"tg-scale:{uuid.uuid4().hex}:"
    store = RedisSessionStore.from_url(redis_sentinel.url, prefix=prefix)
    now = int(time.time() * 1000)
    tok = new_token()
    store.create(record(tok, "u1", now))
    # Replicated before the failover (WAIT), so the promoted replica has it.
    assert redis.Redis(port=redis_sentinel.master_port).wait(1, 2000) == 1
    new_master = redis_sentinel.failover()
    assert new_master == redis_sentinel.replica_port
    # The first calls may land on the demoted master (read-only) or a closed connection:
    # those fail closed (StoreUnavailable), then the store finds the new master.
    deadline = time.monotonic() + 20
    while True:
        try:
            got = store.get(refresh_token_key(tok), now)
            store.create(record(new_token(), "u1", now))
            break
        except StoreUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    assert got is not None and got.user_id == "u1"
    assert store.revoke_user("u1") == 2
    store.close()


def test_async_store_through_sentinel(redis_sentinel: RedisSentinel) -> None:
    prefix = f"tg-scale:{uuid.uuid4().hex}:"

    async def main() -> None:
        store = AsyncRedisSessionStore.from_url(redis_sentinel.url, prefix=prefix)
        now = int(time.time() * 1000)
        tok = new_token()
        await store.create(record(tok, "u2", now))
        got = await store.get(refresh_token_key(tok), now)
        assert got is not None and got.user_id == "u2"
        assert (await store.revoke(refresh_token_key(tok))) is not None
        await store.aclose()

    asyncio.run(main())
