"""Redis going away, freezing, refusing writes and coming back, on a private redis-server."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.helpers.redis_server import RedisServer, redis_server_binary
from tokenguard.stores.base import RotateOutcome, StoreUnavailable
from tokenguard.stores.redis import RedisSessionStore

from .conftest import new_token, open_session_store, real_now_ms, record

pytestmark = pytest.mark.redis

HOUR = 3_600_000
# A liveness bound, not a speed claim: the store's own timeouts are 0.5 s / 1 s.
HANG = 30


@pytest.fixture(params=["redis", "redis-async"])
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def open_store(flavour: str, tmp_path: Path) -> Iterator[Any]:
    with ExitStack() as stack:

        def opener(server: RedisServer) -> Any:
            return open_session_store(flavour, stack, tmp_path, server.url, "tg-fault:")

        yield opener


def bounded(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run ``fn`` but give up (failing the test) if it hangs."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args, **kwargs).result(timeout=HANG)


def every_operation(store: Any, now: int) -> list[Any]:
    old = record(new_token(), expires_at_ms=now + HOUR)
    nxt = record(new_token(old.family), expires_at_ms=now + HOUR)
    return [
        lambda: store.create(old),
        lambda: store.get(old.token_hash, now),
        lambda: store.rotate(old.token_hash, nxt, now_ms=now, grace_ms=0),
        lambda: store.revoke(old.token_hash),
        lambda: store.revoke_user("user-1"),
    ]


def assert_unavailable(store: Any, now: int) -> None:
    for operation in every_operation(store, now):
        with pytest.raises(StoreUnavailable) as info:
            bounded(operation)
        assert info.value.service == "redis"


def test_a_stopped_server_is_unavailable_then_works_again(
    private_redis: RedisServer, open_store: Any
) -> None:
    store = open_store(private_redis)
    now = real_now_ms()
    before = record(new_token(), expires_at_ms=now + HOUR)
    store.create(before)
    assert store.get(before.token_hash, now) == before

    private_redis.stop()
    assert_unavailable(store, now)

    private_redis.start()  # same port, empty (no persistence): the store reconnects by itself
    assert store.get(before.token_hash, now) is None
    after = record(new_token(), expires_at_ms=now + HOUR)
    store.create(after)
    assert store.get(after.token_hash, now) == after
    nxt = record(new_token(after.family), expires_at_ms=now + HOUR)
    assert store.rotate(after.token_hash, nxt, now_ms=now, grace_ms=0).status == "rotated"


def test_a_frozen_server_times_out_instead_of_hanging(
    private_redis: RedisServer, open_store: Any
) -> None:
    store = open_store(private_redis)
    now = real_now_ms()
    rec = record(new_token(), expires_at_ms=now + HOUR)
    store.create(rec)
    private_redis.pause()
    try:
        for operation in every_operation(store, now)[1:3]:
            with pytest.raises(StoreUnavailable):
                bounded(operation)
    finally:
        private_redis.resume()
    assert bounded(store.get, rec.token_hash, now) == rec


def test_a_server_refusing_writes_is_unavailable(
    private_redis: RedisServer, open_store: Any
) -> None:
    store = open_store(private_redis)
    now = real_now_ms()
    rec = record(new_token(), expires_at_ms=now + HOUR)
    store.create(rec)
    admin = redis.Redis.from_url(private_redis.url)
    # a replica of a master that is not there: reads work, writes answer READONLY
    admin.replicaof("127.0.0.1", "1")
    try:
        assert store.get(rec.token_hash, now) == rec
        nxt = record(new_token(rec.family), expires_at_ms=now + HOUR)
        with pytest.raises(StoreUnavailable):
            store.rotate(rec.token_hash, nxt, now_ms=now, grace_ms=0)
        with pytest.raises(StoreUnavailable):
            store.revoke(rec.token_hash)
    finally:
        admin.replicaof("NO", "ONE")
        admin.close()
    assert store.revoke(rec.token_hash) == rec


def test_scripts_come_back_after_a_script_flush(
    private_redis: RedisServer, open_store: Any
) -> None:
    store = open_store(private_redis)
    now = real_now_ms()
    rec = record(new_token(), expires_at_ms=now + HOUR)
    store.create(rec)
    admin = redis.Redis.from_url(private_redis.url)
    admin.script_flush()
    admin.close()
    nxt = record(new_token(rec.family), expires_at_ms=now + HOUR)
    assert store.rotate(rec.token_hash, nxt, now_ms=now, grace_ms=0).status == "rotated"


@pytest.mark.skipif(redis_server_binary() is None, reason="redis-server is not installed")
def test_a_revoked_family_stays_revoked_across_a_crash(tmp_path: Path, open_store: Any) -> None:
    server = RedisServer(tmp_path, persistent=True)
    server.start()
    try:
        store = open_store(server)
        now = real_now_ms()
        kept = record(new_token(), expires_at_ms=now + HOUR)
        revoked = record(new_token(), expires_at_ms=now + HOUR)
        reused = record(new_token(), expires_at_ms=now + HOUR)
        for rec in (kept, revoked, reused):
            store.create(rec)
        assert store.revoke(revoked.token_hash) == revoked
        successor = record(new_token(reused.family), expires_at_ms=now + HOUR)
        assert store.rotate(reused.token_hash, successor, now_ms=now, grace_ms=0).status == (
            "rotated"
        )
        again = record(new_token(reused.family), expires_at_ms=now + HOUR)
        assert store.rotate(reused.token_hash, again, now_ms=now, grace_ms=0) == RotateOutcome(
            "reused"
        )

        server.kill()
        assert_unavailable(store, now)
        server.start()

        assert store.get(kept.token_hash, now) == kept  # the data did survive…
        assert store.get(revoked.token_hash, now) is None  # …and the revocations with it
        assert store.get(successor.token_hash, now) is None
        revived = record(new_token(revoked.family), expires_at_ms=now + HOUR)
        assert store.rotate(revoked.token_hash, revived, now_ms=now, grace_ms=0) == (
            RotateOutcome("missing")
        )
        assert store.rotate(reused.token_hash, again, now_ms=now, grace_ms=0) == (
            RotateOutcome("missing")
        )
    finally:
        server.stop()


def test_an_unreachable_url_fails_fast_and_closed() -> None:
    from tests.helpers.redis_server import free_port

    store = RedisSessionStore.from_url(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(StoreUnavailable) as info:
        bounded(store.get, "a" * 22 + "." + "b" * 64, real_now_ms())
    assert "127.0.0.1" not in str(info.value)
    store.close()


class _AnsweringServer:
    """A socket on 127.0.0.1 that answers every Redis command with one fixed reply.

    For replies a real server only gives in passing (``-LOADING`` while it reads its data
    set at start-up) or never (a broken protocol).
    """

    def __init__(self, reply: bytes) -> None:
        import socket
        import threading

        self.reply = reply
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _serve(self) -> None:
        import threading

        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: Any) -> None:
        with conn:
            buffer = b""
            while not self.stopped.is_set():
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buffer += data
                # one reply per command (an array header at the start of a line)
                commands = (b"\r\n" + buffer).count(b"\r\n*")
                buffer = buffer[buffer.rfind(b"\r\n") + 2 :] if commands else buffer
                try:
                    conn.sendall(self.reply * commands)
                except OSError:
                    return

    def close(self) -> None:
        self.stopped.set()
        self.sock.close()


@pytest.mark.parametrize(
    "reply",
    [
        b"-LOADING Redis is loading the dataset in memory\r\n",
        b"-MASTERDOWN Link with MASTER is down\r\n",
        b"-ERR unknown command\r\n",
        b"+OK\r\n",  # a reply of the wrong shape for every command
        b"?garbage\r\n",
    ],
)
def test_any_error_reply_means_unavailable_never_a_guess(
    flavour: str, tmp_path: Path, reply: bytes
) -> None:
    server = _AnsweringServer(reply)
    try:
        with ExitStack() as stack:
            store = open_session_store(flavour, stack, tmp_path, server.url, "tg-fault:")
            now = real_now_ms()
            for operation in every_operation(store, now):
                try:
                    result = bounded(operation)
                except StoreUnavailable:
                    continue
                # "+OK" parses as a reply to HGET/SMEMBERS; it must never read as a session
                assert reply == b"+OK\r\n"
                assert result is None or result == 0
    finally:
        server.close()
