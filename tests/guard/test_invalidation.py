"""Session checks cached per process and invalidated over Redis pub/sub (real Redis)."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from types import GeneratorType
from typing import Any

import pytest

from tests.helpers.redis_server import RedisServer
from tests.helpers.tokens import SECRET
from tokenguard.app import TokenGuard
from tokenguard.config import Settings, token_policy
from tokenguard.errors import AuthError
from tokenguard.flow import run_async, run_sync
from tokenguard.guard.decide import Refusal
from tokenguard.guard.invalidation import SessionInvalidation
from tokenguard.jose.tokens import issue_access_token
from tokenguard.principal import Principal
from tokenguard.stores.base import SessionRecord, User, refresh_token_key
from tokenguard.stores.memory import MemoryUserStore
from tokenguard.stores.redis import RedisSessionStore


class CountingStore(RedisSessionStore):
    """The real Redis store, counting the session checks that reach Redis."""

    gets = 0

    def get(self, token_hash: str, now_ms: int) -> SessionRecord | None:
        self.gets += 1
        return super().get(token_hash, now_ms)


def make_core(url: str, prefix: str, **settings: Any) -> tuple[TokenGuard, CountingStore]:
    store = CountingStore.from_url(url, prefix=prefix)
    options: dict[str, Any] = {"secret": SECRET, "redis_url": url, "redis_prefix": prefix}
    options.update(settings)
    core = TokenGuard(Settings(**options), users=MemoryUserStore(), sessions=store)
    assert isinstance(core.invalidation, SessionInvalidation)
    return core, store


def login(core: TokenGuard, store: RedisSessionStore, user: str = "u1") -> tuple[str, str]:
    """A session as /auth/login would make it: (session cookie JWT, refresh token)."""
    if core.users.get_by_id(user) is None:  # type: ignore[union-attr]
        core.users.create(User(id=user, email=f"{user}@example.com", role="r", app_access=True))  # type: ignore[union-attr]
    refresh = secrets.token_urlsafe(48)
    now = time.time()
    now_ms = int(now * 1000)
    store.create(SessionRecord(refresh_token_key(refresh), refresh[:22], user, now_ms + 600_000, now_ms))
    jwt = issue_access_token(
        token_policy(core.settings), user_id=user, role="r", app_access=True, admin_access=False,
        ttl_ms=600_000, now=now, session=refresh,
    )  # fmt: skip
    return jwt, refresh


def request(core: TokenGuard, jwt: str) -> Principal | Refusal:
    outcome = core.guard.authenticate(None, "", f"directus_session_token={jwt}")
    if isinstance(outcome, GeneratorType):
        outcome = run_sync(outcome)
    assert isinstance(outcome, Principal | Refusal)
    return outcome


def refused(outcome: object) -> bool:
    return isinstance(outcome, Refusal) and (outcome.error.status, outcome.error.code) == (
        401,
        "INVALID_CREDENTIALS",
    )


def eventually(check: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.005)
    return bool(check())


@pytest.fixture
def cores(redis_url: str, redis_prefix: str) -> Iterator[list[tuple[TokenGuard, CountingStore]]]:
    made: list[tuple[TokenGuard, CountingStore]] = []
    yield made
    for core, store in made:
        assert core.invalidation is not None
        core.invalidation.close()
        store.close()


def test_ordinary_requests_do_not_reach_redis(cores: list[Any], redis_url: str, redis_prefix: str) -> None:
    core, store = make_core(redis_url, redis_prefix, session_cache_ttl_ms=60_000)
    cores.append((core, store))
    assert core.invalidation is not None and core.invalidation.start(wait_s=5)
    jwt, _ = login(core, store)
    for _ in range(50):
        principal = request(core, jwt)
        assert isinstance(principal, Principal) and principal.via == "session"
    assert store.gets == 1


def test_logout_in_one_process_is_seen_by_the_other(cores: list[Any], redis_url: str, redis_prefix: str) -> None:
    # Two cores = two processes' worth of state (own stores, caches and subscribers). The TTL
    # is long, so only the announcement can make the second one refuse.
    a, store_a = make_core(redis_url, redis_prefix, session_cache_ttl_ms=600_000)
    b, store_b = make_core(redis_url, redis_prefix, session_cache_ttl_ms=600_000)
    cores.extend([(a, store_a), (b, store_b)])
    for core in (a, b):
        assert core.invalidation is not None and core.invalidation.start(wait_s=5)
    jwt, refresh = login(a, store_a)
    assert isinstance(request(a, jwt), Principal) and isinstance(request(b, jwt), Principal)
    assert isinstance(request(b, jwt), Principal) and store_b.gets == 1  # cached in b
    run_sync(a.auth.logout(refresh))
    # In the process that logged out: at once (the store told its own cache directly).
    assert refused(request(a, jwt))
    # In the other: as soon as the announcement arrives.
    assert eventually(lambda: refused(request(b, jwt)))
    assert b.invalidation is not None and b.invalidation.received >= 1


def test_user_revocation_and_reuse_are_announced(cores: list[Any], redis_url: str, redis_prefix: str) -> None:
    a, store_a = make_core(redis_url, redis_prefix, session_cache_ttl_ms=600_000)
    b, store_b = make_core(redis_url, redis_prefix, session_cache_ttl_ms=600_000)
    cores.extend([(a, store_a), (b, store_b)])
    for core in (a, b):
        assert core.invalidation is not None and core.invalidation.start(wait_s=5)
    first, _ = login(a, store_a, "u7")
    second, _ = login(a, store_a, "u7")
    for jwt in (first, second):
        assert isinstance(request(b, jwt), Principal)
    assert store_a.revoke_user("u7") == 2
    assert eventually(lambda: refused(request(b, first)) and refused(request(b, second)))
    # Reuse of a rotated refresh token revokes the family, and says so.
    third, refresh = login(a, store_a, "u8")
    assert isinstance(request(b, third), Principal)
    from tokenguard.auth.service import ClientInfo

    run_sync(a.auth.refresh(refresh, "json", ClientInfo()))
    assert isinstance(request(b, third), Principal)  # rotation keeps the family alive
    with pytest.raises(AuthError):
        run_sync(a.auth.refresh(refresh, "json", ClientInfo()))
    assert eventually(lambda: refused(request(b, third)))


def test_no_cache_without_a_subscription(cores: list[Any], redis_url: str, redis_prefix: str) -> None:
    core, store = make_core(redis_url, redis_prefix, session_cache_ttl_ms=60_000)
    cores.append((core, store))
    invalidation = core.invalidation
    assert invalidation is not None
    invalidation.connect = lambda: (_ for _ in ()).throw(ConnectionError("down"))
    invalidation.begin()
    jwt, _ = login(core, store)
    for _ in range(5):
        assert isinstance(request(core, jwt), Principal)
    assert store.gets == 5 and not invalidation.live


def test_a_check_that_raced_an_announcement_is_not_cached(cores: list[Any], redis_url: str, redis_prefix: str) -> None:
    core, store = make_core(redis_url, redis_prefix, session_cache_ttl_ms=60_000)
    cores.append((core, store))
    invalidation = core.invalidation
    assert invalidation is not None and invalidation.start(wait_s=5)
    jwt, _ = login(core, store)
    flow = core.guard.authenticate(None, "", f"directus_session_token={jwt}")
    assert isinstance(flow, GeneratorType)
    call = next(flow)  # the flow is about to read Redis…
    invalidation.invalidate(["someone-else"])  # …when an announcement lands
    try:
        flow.send(call.fn(*call.args))
    except StopIteration as stop:
        assert isinstance(stop.value, Principal)
    assert len(core.guard.cache) == 0
    assert isinstance(request(core, jwt), Principal) and len(core.guard.cache) == 1


def test_losing_redis_forgets_the_cache_and_fails_closed(tmp_path: Any) -> None:
    server = RedisServer(tmp_path)
    server.start()
    core, store = make_core(server.url, "tg-inv:", session_cache_ttl_ms=600_000)
    invalidation = core.invalidation
    assert invalidation is not None
    try:
        assert invalidation.start(wait_s=5)
        jwt, _ = login(core, store)
        assert isinstance(request(core, jwt), Principal) and len(core.guard.cache) == 1
        server.kill()
        # The subscriber notices, forgets everything, and nothing is served from memory.
        assert eventually(lambda: not invalidation.live and len(core.guard.cache) == 0)
        down = request(core, jwt)
        assert isinstance(down, Refusal) and down.error.status == 503
        server.start()
        assert eventually(lambda: invalidation.live, timeout=15)
        # The restarted server kept nothing (no persistence): the old session is gone…
        assert refused(request(core, jwt))
        # …and new ones are cached again.
        jwt, _ = login(core, store)
        before = store.gets
        for _ in range(3):
            assert isinstance(request(core, jwt), Principal)
        assert store.gets == before + 1
    finally:
        invalidation.close()
        store.close()
        server.stop()


def test_async_flavour_shares_the_thread_design(redis_url: str, redis_prefix: str) -> None:
    core = TokenGuard(
        Settings(secret=SECRET, redis_url=redis_url, redis_prefix=redis_prefix),
        users=MemoryUserStore(),
        flavour="async",
    )
    invalidation = core.invalidation
    assert invalidation is not None and invalidation.start(wait_s=5)
    sync_store = RedisSessionStore.from_url(redis_url, prefix=redis_prefix)
    jwt, refresh = login(core, sync_store)

    async def authenticate() -> Any:
        outcome = core.guard.authenticate(None, "", f"directus_session_token={jwt}")
        if isinstance(outcome, GeneratorType):
            outcome = await run_async(outcome)
        return outcome

    async def main() -> None:
        # One event loop throughout: the async client's connections belong to it.
        for _ in range(3):
            assert isinstance(await authenticate(), Principal)
        assert len(core.guard.cache) == 1
        sync_store.revoke(refresh_token_key(refresh))
        deadline = time.monotonic() + 10
        while len(core.guard.cache) and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        assert refused(await authenticate())

    try:
        asyncio.run(main())
    finally:
        invalidation.close()
        sync_store.close()


def test_off_when_the_ttl_is_zero_or_the_store_is_not_redis(redis_url: str, redis_prefix: str) -> None:
    off = TokenGuard(Settings(secret=SECRET, redis_url=redis_url, redis_prefix=redis_prefix, session_cache_ttl_ms=0), users=MemoryUserStore())
    # The channel still carries revocations (issue 28); nothing is cached.
    assert off.invalidation is not None and off.invalidation.ttl_s == 0
    jwt, _ = login(off, off.sessions)  # type: ignore[arg-type]
    off.invalidation.start(5)
    assert isinstance(request(off, jwt), Principal)
    assert len(off.guard.cache) == 0
    off.close()
    memory = TokenGuard(Settings(secret=SECRET))
    assert memory.invalidation is None


def test_an_async_store_passed_in_without_a_url_gets_a_subscriber(redis_url: str, redis_prefix: str) -> None:
    # No REDIS setting: the subscriber thread gets a synchronous twin of the asyncio client.
    from tokenguard.stores.redis import AsyncRedisSessionStore

    store = AsyncRedisSessionStore.from_url(redis_url, prefix=redis_prefix)
    core = TokenGuard(
        Settings(secret=SECRET, redis_prefix=redis_prefix), users=MemoryUserStore(), sessions=store,
        flavour="async",
    )  # fmt: skip
    invalidation = core.invalidation
    assert isinstance(invalidation, SessionInvalidation) and core.feed is invalidation
    other = RedisSessionStore.from_url(redis_url, prefix=redis_prefix)  # another process
    try:
        assert invalidation.start(wait_s=5) and core.guard.revocations.trusted
        _, refresh = login(core, other)
        other.revoke(refresh_token_key(refresh))
        family = refresh[:22]
        assert eventually(lambda: core.guard.revocations.refuses(family, None, None))
        assert invalidation.received >= 1
    finally:
        invalidation.close()
        other.close()


def test_a_catch_up_after_losing_the_channel_reads_both_sets_and_the_old_layout(tmp_path: Any) -> None:
    # Revocations whose announcements a process missed (written to the window, never
    # published: the channel was down) are found when it catches up: users in rv, sessions in
    # rvs, and sessions an earlier version wrote to rv. A private server: the test cuts every
    # subscriber's connection.
    import redis

    server = RedisServer(tmp_path)
    server.start()
    core, store = make_core(server.url, "tg-cu:")
    invalidation = core.invalidation
    assert invalidation is not None
    revocations = core.guard.revocations
    client = redis.Redis.from_url(server.url)
    try:
        assert invalidation.start(wait_s=5) and revocations.trusted
        # The store keeps each kind for the registry's window of it.
        assert store.revocation_window_ms == int(revocations.window_s * 1000)
        assert store.session_revocation_window_ms == int(revocations.session_window_s * 1000)
        now = int(time.time() * 1000)
        client.zadd("tg-cu:rvs", {"s:new-layout": now})
        client.zadd("tg-cu:rv", {"s:old-layout": now - 60_000, "u:mallory": now})
        assert not revocations.refuses("new-layout", None, None)
        assert not revocations.refuses("old-layout", None, None)
        assert not revocations.refuses(None, "mallory", now / 1000 - 1)
        lost = invalidation.epoch
        client.client_kill_filter(_type="pubsub")
        assert eventually(lambda: invalidation.epoch != lost and invalidation.live)
        assert revocations.trusted
        assert revocations.refuses("new-layout", None, None)
        assert revocations.refuses("old-layout", None, None)
        assert revocations.refuses(None, "mallory", now / 1000 - 1)
        assert not revocations.refuses(None, "mallory", now / 1000 + 1)
        # and asked per request meanwhile, the store answers the same from both sets
        assert store.revocation_scores("new-layout", "mallory") == (now, now)
        assert store.revocation_scores("old-layout", None) == (now - 60_000, None)
    finally:
        client.close()
        invalidation.close()
        store.close()
        server.stop()
