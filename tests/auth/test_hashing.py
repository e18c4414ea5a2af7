"""The password-hashing pool: a bound on concurrent argon2 runs, a bounded wait, and a 503
with Retry-After for the logins it cannot take (tokenguard.auth.hashing)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import anyio
import anyio.to_thread
import pytest
from argon2 import PasswordHasher

from tests.helpers.auth import EMAIL, PASSWORD, SECRET, make_user
from tests.security.harness import Shell, make_core
from tokenguard.auth.hashing import HashPool, Overloaded, shared_pool
from tokenguard.auth.passwords import Passwords
from tokenguard.stores.memory import MemoryUserStore

BUSY_BODY = (
    b'{"errors":[{"message":"Service \\"auth\\" is unavailable. Too many logins at once, retry '
    b'shortly.","extensions":{"service":"auth","reason":"Too many logins at once, retry shortly",'
    b'"code":"SERVICE_UNAVAILABLE"}}]}'
)


def test_no_more_than_concurrency_run_at_once() -> None:
    pool = HashPool(3, queue=20, wait=30)
    running = 0
    peak = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1

    callers = [threading.Thread(target=pool.run, args=(work,)) for _ in range(12)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    assert peak == 3
    assert pool.pending == 0
    pool.close()


def test_past_the_queue_a_caller_is_refused_at_once() -> None:
    pool = HashPool(1, queue=1, wait=30)
    release = threading.Event()
    started = threading.Event()

    def hold() -> str:
        started.set()
        release.wait(10)
        return "done"

    first = pool._submit(hold, ())  # running
    started.wait(5)
    second = pool._submit(lambda: "second", ())  # waiting: the queue holds one
    t0 = time.monotonic()
    with pytest.raises(Overloaded) as info:
        pool.run(lambda: "third")
    assert time.monotonic() - t0 < 1.0  # refused without waiting
    assert (info.value.status, info.value.code, info.value.retry_after) == (503, "SERVICE_UNAVAILABLE", 30)
    release.set()
    assert (first.result(5), second.result(5)) == ("done", "second")
    assert pool.pending == 0
    pool.close()


def test_a_caller_that_cannot_start_in_time_is_refused() -> None:
    pool = HashPool(1, queue=5, wait=0.2)
    release = threading.Event()
    started = threading.Event()

    def hold() -> None:
        started.set()
        release.wait(10)

    first = pool._submit(hold, ())
    started.wait(5)
    late = pool._submit(lambda: "never", ())
    time.sleep(0.4)  # past its deadline before a thread is free
    release.set()
    first.result(5)
    with pytest.raises(Overloaded) as info:
        late.result(5)
    assert info.value.retry_after == 1
    assert pool.pending == 0
    pool.close()


def test_a_nested_run_from_the_pool_runs_inline() -> None:
    # Passwords.verify runs in the pool and its dummy hash calls the pool again: one thread
    # must not wait for itself.
    pool = HashPool(1, queue=0, wait=1)
    assert pool.run(lambda: pool.run(lambda: 42)) == 42
    pool.close()


def test_awaiting_the_pool_holds_no_thread_of_the_loop() -> None:
    # The loop's thread pool stays free for blocking store calls while hashes run and wait.
    pool = HashPool(1, queue=4, wait=10)
    release = threading.Event()

    async def main() -> list[str]:
        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens = 1
        done: list[str] = []

        async def hashing() -> None:
            await pool.arun(release.wait, 10)
            done.append("hash")

        async def store_call() -> None:
            await anyio.to_thread.run_sync(time.sleep, 0.01)
            done.append("store")

        async with anyio.create_task_group() as tasks:
            for _ in range(3):
                tasks.start_soon(hashing)
            await anyio.sleep(0.05)
            with anyio.fail_after(2):
                await store_call()  # the hashes are still waiting: release not set
            release.set()
        return done

    done = asyncio.run(main())
    assert done[0] == "store" and done.count("hash") == 3
    pool.close()


def test_passwords_run_in_their_pool() -> None:
    pool = HashPool(1, queue=0, wait=1)
    names: list[str] = []
    hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)

    class Recording(PasswordHasher):
        def hash(self, *args: Any, **kwargs: Any) -> str:
            names.append(threading.current_thread().name)
            return hasher.hash(*args, **kwargs)

        def verify(self, *args: Any, **kwargs: Any) -> bool:
            names.append(threading.current_thread().name)
            return hasher.verify(*args, **kwargs)

    passwords = Passwords(Recording(time_cost=1, memory_cost=8, parallelism=1), pool=pool)
    digest = passwords.hash("pw")
    assert passwords.verify(digest, "pw") is True
    assert passwords.verify(None, "pw") is False  # the dummy: made and verified in the pool
    assert len(names) == 4
    assert all(name.startswith("tokenguard-hash") for name in names)
    pool.close()


def test_one_pool_per_configuration_in_a_process() -> None:
    assert shared_pool(2, queue=3, wait=1.5) is shared_pool(2, queue=3, wait=1.5)
    assert shared_pool(2, queue=3, wait=1.5) is not shared_pool(3, queue=3, wait=1.5)
    assert Passwords().pool is shared_pool()


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_a_login_the_pool_cannot_take_is_a_503_with_retry_after(kind: str) -> None:
    pool = HashPool(1, queue=0, wait=5)
    release = threading.Event()
    started = threading.Event()

    def hold() -> None:
        started.set()
        release.wait(10)

    users = MemoryUserStore()
    user = users.create(make_user())
    fast = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    core = make_core(kind, users=users)
    core.auth.passwords = Passwords(fast, pool=pool)
    shell = Shell(kind, core)
    busy = pool._submit(hold, ())  # another login's hash holds the only slot
    started.wait(5)
    try:
        for email in (EMAIL, "nobody@example.com"):  # a known user and the dummy alike
            reply = shell.request("POST", "/auth/login", json_body={"email": email, "password": PASSWORD})
            assert reply.status == 503
            assert reply.body == BUSY_BODY
            assert reply.header("retry-after") == "5"
            assert reply.header("set-cookie") is None
    finally:
        release.set()
        busy.result(5)
    # Nothing was half done: no lockout counted, no suspension; the next login goes through.
    assert users.get_by_id(user.id) == user
    reply = shell.request("POST", "/auth/login", json_body={"email": EMAIL, "password": PASSWORD})
    assert reply.status == 200
    pool.close()


def test_the_settings_choose_the_process_pool() -> None:
    from tokenguard import Settings, TokenGuard

    core = TokenGuard(
        users=MemoryUserStore(),
        sessions=None,
        secret=SECRET,
        hash_concurrency=3,
        hash_queue=1,
        hash_wait_ms=500,
    )
    try:
        assert core.auth.passwords.pool is shared_pool(3, queue=1, wait=0.5)
        assert (core.auth.passwords.pool.concurrency, core.auth.passwords.pool.queue) == (3, 1)
    finally:
        core.close()
    env = {"SECRET": SECRET, "TOKENGUARD_HASH_CONCURRENCY": "4", "TOKENGUARD_HASH_WAIT": "750ms"}
    settings = Settings.from_env(env)
    assert (settings.hash_concurrency, settings.hash_queue, settings.hash_wait_ms) == (4, None, 750)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("TOKENGUARD_HASH_CONCURRENCY", "0", "TOKENGUARD_HASH_CONCURRENCY must be at least 1"),
        ("TOKENGUARD_HASH_QUEUE", "-1", "TOKENGUARD_HASH_QUEUE cannot be negative"),
        ("TOKENGUARD_HASH_WAIT", "2m", "TOKENGUARD_HASH_WAIT must be between 1ms and 60s"),
    ],
)
def test_pool_settings_out_of_range_are_refused_at_start(name: str, value: str, message: str) -> None:
    from tokenguard import ConfigError, Settings

    with pytest.raises(ConfigError, match=message):
        Settings.from_env({"SECRET": SECRET, name: value})
