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


def test_session_cache_invalidation_survives_a_failover(redis_sentinel: RedisSentinel) -> None:
    from tests.guard.test_invalidation import eventually, login, refused, request
    from tests.helpers.tokens import SECRET
    from tokenguard.app import TokenGuard
    from tokenguard.config import Settings
    from tokenguard.principal import Principal
    from tokenguard.stores.memory import MemoryUserStore

    settings = Settings(secret=SECRET, redis_url=redis_sentinel.url, redis_prefix="tg-sent:",
                        session_cache_ttl_ms=600_000)  # fmt: skip
    users = MemoryUserStore()
    a = TokenGuard(settings, users=users)
    b = TokenGuard(settings, users=users)
    assert a.invalidation is not None and b.invalidation is not None
    try:
        assert a.invalidation.start(wait_s=5) and b.invalidation.start(wait_s=5)
        assert isinstance(a.sessions, RedisSessionStore)
        redis_sentinel.failover()
        # Whatever the subscribers went through, once live again they hear revocations.
        jwt, refresh = "", ""
        deadline = time.monotonic() + 20
        while not jwt:
            try:
                jwt, refresh = login(a, a.sessions)
            except StoreUnavailable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert eventually(lambda: b.invalidation is not None and b.invalidation.live, 20)
        assert eventually(lambda: isinstance(request(b, jwt), Principal), 20)
        assert isinstance(request(b, jwt), Principal)
        a.sessions.revoke(refresh_token_key(refresh))
        assert eventually(lambda: refused(request(b, jwt)))
    finally:
        a.invalidation.close()
        b.invalidation.close()
