"""The Redis session store on a real three-master Cluster: every script keeps to one slot."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
import redis
from redis.cluster import ClusterNode
from redis.cluster import RedisCluster as ClusterClient

from tests.scale.redis_topologies import RedisCluster
from tokenguard.stores.base import SessionRecord, refresh_token_key
from tokenguard.stores.redis import AsyncRedisSessionStore, RedisSessionStore, parse_redis_url

pytestmark = pytest.mark.e2e


def token(family: str, tail: str = "t") -> str:
    return (family + tail * 64)[:64]


def family_name() -> str:
    return uuid.uuid4().hex[:22]


def record(tok: str, user: str, now_ms: int, ttl: int = 60_000) -> SessionRecord:
    return SessionRecord(refresh_token_key(tok), tok[:22], user, now_ms + ttl, now_ms)


def test_url_is_a_cluster() -> None:
    target = parse_redis_url("redis+cluster://u:p%40ss@127.0.0.1:7000,127.0.0.1:7001")
    assert target.kind == "cluster" and target.nodes == (("127.0.0.1", 7000), ("127.0.0.1", 7001))
    assert (target.username, target.password, target.tls) == ("u", "p@ss", False)
    assert "p@ss" not in repr(target)
    assert parse_redis_url("rediss+cluster://h:1").tls


def test_sessions_spread_over_slots_and_every_operation_works(redis_cluster: RedisCluster) -> None:
    prefix = f"tg-scale:{uuid.uuid4().hex}:"
    store = RedisSessionStore.from_url(redis_cluster.url, prefix=prefix)
    assert store.cluster
    now = int(time.time() * 1000)
    users = [f"user-{i}" for i in range(12)]
    tokens = {}
    for user in users:
        for _ in range(3):
            tok = token(family_name())
            store.create(record(tok, user, now))
            tokens.setdefault(user, []).append(tok)
    # Keys really live on all three masters (so a cross-slot script would have failed).
    assert all(count > 0 for count in redis_cluster.keys_per_node(f"{prefix}*"))
    first = tokens[users[0]][0]
    got = store.get(refresh_token_key(first), now)
    assert got is not None and got.user_id == users[0]
    # Rotation, then reuse of the old token revokes the family.
    new = token(first[:22], "n")
    assert store.rotate(refresh_token_key(first), record(new, users[0], now), now_ms=now, grace_ms=0).status == "rotated"
    assert store.get(refresh_token_key(new), now) is not None
    assert store.rotate(refresh_token_key(first), record(token(first[:22], "x"), users[0], now), now_ms=now, grace_ms=0).status == "reused"
    assert store.get(refresh_token_key(new), now) is None
    # Logout of one session.
    second = tokens[users[1]][0]
    revoked = store.revoke(refresh_token_key(second))
    assert revoked is not None and revoked.user_id == users[1]
    assert store.get(refresh_token_key(second), now) is None
    # A user's sessions across slots, except one family.
    keep = tokens[users[2]][0][:22]
    assert store.revoke_user(users[2], except_family=keep) == 2
    assert [store.get(refresh_token_key(t), now) is not None for t in tokens[users[2]]] == [True, False, False]
    store.close()


def test_async_store_on_the_cluster(redis_cluster: RedisCluster) -> None:
    prefix = f"tg-scale:{uuid.uuid4().hex}:"

    async def main() -> None:
        store = AsyncRedisSessionStore.from_url(redis_cluster.url, prefix=prefix)
        assert store.cluster
        now = int(time.time() * 1000)
        toks = [token(family_name()) for _ in range(6)]
        for tok in toks:
            await store.create(record(tok, "async-user", now))
        assert all([await store.get(refresh_token_key(t), now) is not None for t in toks])
        new = token(toks[0][:22], "n")
        outcome = await store.rotate(refresh_token_key(toks[0]), record(new, "async-user", now), now_ms=now, grace_ms=0)
        assert outcome.status == "rotated"
        assert await store.revoke_user("async-user") == 6
        assert all([await store.get(refresh_token_key(t), now) is None for t in [*toks, new]])
        await store.aclose()

    asyncio.run(main())


def test_revocations_are_published_cluster_wide(redis_cluster: RedisCluster) -> None:
    prefix = f"tg-scale:{uuid.uuid4().hex}:"
    store = RedisSessionStore.from_url(redis_cluster.url, prefix=prefix)
    # Subscribed through a node other than those that will run the scripts, most of the time.
    listener = redis.Redis(port=redis_cluster.ports[0])
    pubsub = listener.pubsub()
    pubsub.subscribe(store.channel)
    assert pubsub.get_message(timeout=2)["type"] == "subscribe"  # type: ignore[index]
    now = int(time.time() * 1000)
    toks = [token(family_name()) for _ in range(8)]
    for tok in toks:
        store.create(record(tok, "pub-user", now))
    for tok in toks[:4]:
        store.revoke(refresh_token_key(tok))
    store.revoke_user("pub-user")
    expected = {t[:22] for t in toks[:4]}
    everyone = sorted(t[:22] for t in toks)
    singles: set[str] = set()
    batches: list[list[str]] = []
    deadline = time.monotonic() + 5
    while (singles != expected or not batches) and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.5)
        if not message or message["type"] != "message":
            continue
        data = message["data"].decode()
        if data.startswith("!"):
            continue  # a user's revocation (tokenguard.guard.revocation), not a family
        if "," in data:
            batches.append(sorted(data.split(",")))
        else:
            singles.add(data)
    # Messages published on different masters cross the cluster bus in no set order, and on a
    # Cluster a revocation is announced again after it is written: each family at least once.
    assert singles == expected
    # The user's set still names the families already gone; announcing them again is harmless.
    assert batches and all(batch == everyone for batch in batches)
    pubsub.close()
    listener.close()
    store.close()


def test_a_cross_slot_script_is_what_cluster_mode_avoids(redis_cluster: RedisCluster) -> None:
    # The single-server layout's create touches two slots; on a Cluster Redis refuses it. This
    # is why the store splits it: prove the refusal is real, not assumed.
    prefix = f"tg-scale:{uuid.uuid4().hex}:"
    client = ClusterClient(startup_nodes=[ClusterNode("127.0.0.1", redis_cluster.ports[0])])
    store = RedisSessionStore(client, prefix=prefix, cluster=False)
    now = int(time.time() * 1000)
    failures = 0
    for _ in range(8):
        try:
            store.create(record(token(family_name()), f"u-{uuid.uuid4().hex}", now))
        except Exception:
            failures += 1
    assert failures > 0
    client.close()


def test_session_cache_invalidation_over_the_cluster(redis_cluster: RedisCluster) -> None:
    from tests.guard.test_invalidation import eventually, login, refused, request
    from tests.helpers.tokens import SECRET
    from tokenguard.app import TokenGuard
    from tokenguard.config import Settings
    from tokenguard.principal import Principal
    from tokenguard.stores.memory import MemoryUserStore

    prefix = f"tg-scale:{uuid.uuid4().hex}:"
    settings = Settings(secret=SECRET, redis_url=redis_cluster.url, redis_prefix=prefix,
                        session_cache_ttl_ms=600_000)  # fmt: skip
    users = MemoryUserStore()
    a = TokenGuard(settings, users=users)
    b = TokenGuard(settings, users=users)
    assert a.invalidation is not None and b.invalidation is not None
    try:
        assert a.invalidation.start(wait_s=5) and b.invalidation.start(wait_s=5)
        assert isinstance(a.sessions, RedisSessionStore) and a.sessions.cluster
        jwt, refresh = login(a, a.sessions)
        for _ in range(3):
            assert isinstance(request(b, jwt), Principal)
        assert len(b.guard.cache) == 1
        a.sessions.revoke(refresh_token_key(refresh))
        assert eventually(lambda: refused(request(b, jwt)))
    finally:
        a.invalidation.close()
        b.invalidation.close()


def test_rate_limit_counters_on_the_cluster(redis_cluster: RedisCluster) -> None:
    from tokenguard.guard.limits import AsyncRedisCounter, RedisCounter

    prefix = f"tg-scale:{uuid.uuid4().hex}:"
    counter = RedisCounter.from_url(redis_cluster.url, prefix=prefix)
    keys = [f"ip:10.0.0.{i}" for i in range(8)]  # spread over several slots
    for key in keys:
        assert counter.hit(key, 60_000).count == 1
        assert counter.hit(key, 60_000).count == 2
    counter.reset(keys[0])
    assert counter.hit(keys[0], 60_000).count == 1
    counter.close()

    async def main() -> None:
        acounter = AsyncRedisCounter.from_url(redis_cluster.url, prefix=prefix)
        assert (await acounter.hit(keys[1], 60_000)).count == 3
        await acounter.aclose()

    asyncio.run(main())


def test_the_window_of_revocations_on_the_cluster(redis_cluster: RedisCluster) -> None:
    # Sessions in <prefix>rvs, users in <prefix>rv: two slots, written after the script that
    # revoked (a script keeps to its family's slot), asked in one pipeline, both read when a
    # process catches up; session members an earlier version left in rv are still found.
    from tests.guard.test_invalidation import eventually
    from tests.helpers.tokens import SECRET
    from tokenguard.app import TokenGuard
    from tokenguard.config import Settings
    from tokenguard.stores.memory import MemoryUserStore

    prefix = f"tg-scale:{uuid.uuid4().hex}:"
    store = RedisSessionStore.from_url(redis_cluster.url, prefix=prefix)
    client = store.client
    assert store.cluster
    store.revocation_window_ms, store.session_revocation_window_ms = 3_600_000, 300
    sessions, users = f"{prefix}rvs", f"{prefix}rv"
    assert client.keyslot(sessions) != client.keyslot(users)  # the cross-slot case is real
    now = int(time.time() * 1000)
    gone, late = token(family_name()), token(family_name())
    for tok in (gone, late):
        store.create(record(tok, "win-user", now))
    assert store.revoke(refresh_token_key(gone)) is not None
    store.record_revocations([("u:win-user", now)], "")
    client.zadd(users, {"s:old-layout": now})
    at = int(client.zscore(sessions, f"s:{gone[:22]}"))
    assert 0 < client.pttl(sessions) <= 300
    assert store.revocation_scores(gone[:22], "win-user") == (at, now)
    assert store.revocation_scores("old-layout", None) == (now, None)
    time.sleep(0.4)
    assert store.revoke(refresh_token_key(late)) is not None
    assert client.zrange(sessions, 0, -1) == [f"s:{late[:22]}".encode()]
    assert store.revocation_scores(gone[:22], "win-user") == (None, now)
    # A process starting now catches up from both sets.
    core = TokenGuard(
        Settings(secret=SECRET, redis_url=redis_cluster.url, redis_prefix=prefix),
        users=MemoryUserStore(),
    )
    assert core.invalidation is not None
    try:
        assert core.invalidation.start(wait_s=5)
        rv = core.guard.revocations
        assert eventually(lambda: rv.trusted)
        assert rv.refuses(late[:22], None, None) and rv.refuses("old-layout", None, None)
        assert rv.refuses(None, "win-user", now / 1000 - 1)
    finally:
        core.close()
        store.close()
