"""stores/counters: the Redis counter's one logic, driven over a sync and an async client
(the memory counter and the real-Redis script are covered in tests/guard/test_throttle.py and
tests/security/test_brute_force.py)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import redis

from tokenguard.guard import limits
from tokenguard.stores.counters import AsyncRedisCounter, Hit, RedisCounter


class FakeClient:
    """Records what the counter asks of Redis and answers ``reply`` to the script."""

    def __init__(self, reply: Any) -> None:
        self.reply = reply
        self.calls: list[tuple[Any, ...]] = []

    def register_script(self, source: str) -> Any:
        assert "INCR" in source and "PEXPIRE" in source

        def script(*, keys: tuple[str, ...], args: tuple[int, ...]) -> Any:
            self.calls.append(("script", keys, args))
            return self.reply

        return script

    def delete(self, key: str) -> int:
        self.calls.append(("delete", key))
        return 1


class AsyncFakeClient(FakeClient):
    def register_script(self, source: str) -> Any:
        script = super().register_script(source)

        async def run(**kwargs: Any) -> Any:
            return script(**kwargs)

        return run

    async def delete(self, key: str) -> int:  # type: ignore[override]
        return super().delete(key)


def test_sync_and_async_send_the_same_commands_and_parse_the_same_replies() -> None:
    sync_client, async_client = FakeClient([3, 1500]), AsyncFakeClient([3, 1500])
    sync_counter = RedisCounter(sync_client, prefix="p:")
    async_counter = AsyncRedisCounter(async_client, prefix="p:")
    assert sync_counter.hit("ip:1", 60_000) == Hit(3, 1500)
    sync_counter.reset("ip:1")

    async def go() -> Hit:
        hit = await async_counter.hit("ip:1", 60_000)
        await async_counter.reset("ip:1")
        return hit

    assert anyio.run(go) == Hit(3, 1500)
    expected = [("script", ("p:rl:ip:1",), (60_000,)), ("delete", "p:rl:ip:1")]
    assert sync_client.calls == async_client.calls == expected


def test_a_count_that_never_expires_has_no_window() -> None:
    assert RedisCounter(FakeClient([1, -1])).hit("lock:u", 0) == Hit(1, -1)


@pytest.mark.parametrize("reply", [None, "OK", [1], ["x", 2]])
def test_a_reply_that_is_not_a_count_is_a_connection_error(reply: Any) -> None:
    with pytest.raises(ConnectionError):
        RedisCounter(FakeClient(reply)).hit("k", 1000)

    async def go() -> None:
        await AsyncRedisCounter(AsyncFakeClient(reply)).hit("k", 1000)

    with pytest.raises(ConnectionError):
        anyio.run(go)


def test_an_unreachable_redis_raises_and_the_counters_stay_importable_from_limits() -> None:
    counter = RedisCounter.from_url("redis://127.0.0.1:1/0", timeout=0.5)
    try:
        with pytest.raises(redis.RedisError):  # Limits turns it into a 503
            counter.hit("k", 1000)
    finally:
        counter.close()
    assert (limits.RedisCounter, limits.AsyncRedisCounter, limits.Hit) == (
        RedisCounter,
        AsyncRedisCounter,
        Hit,
    )
