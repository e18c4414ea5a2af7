"""Redis memory per session, on a private ``redis-server`` so that nothing else is counted."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# A browser-sized User-Agent: the session record stores it, as a login does.
USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def private_redis() -> Iterator[str]:
    """A throw-away ``redis-server`` on a free 127.0.0.1 port; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed")
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        import redis

        client = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        client.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


def measure(sessions: int, users: int = 1000) -> dict[str, Any]:
    """``used_memory`` growth for ``sessions`` login-shaped sessions over ``users`` users."""
    import redis

    from tokenguard.auth.refresh_tokens import RefreshTokens
    from tokenguard.auth.service import AuthService, ClientInfo
    from tokenguard.stores.redis import RedisSessionStore

    tokens = RefreshTokens(b"bench-only-key-for-refresh-tokens-0123456789")
    client_info = ClientInfo("203.0.113.7", USER_AGENT, "https://app.example.com")
    user_ids = [str(uuid.uuid4()) for _ in range(users)]
    now_ms = int(time.time() * 1000)
    week_ms = 7 * 86_400_000
    with private_redis() as url:
        client = redis.Redis.from_url(url)
        store = RedisSessionStore(client)
        before = int(client.info("memory")["used_memory"])
        for i in range(sessions):
            record = AuthService._record(
                tokens.new(), user_ids[i % users], now_ms + week_ms, now_ms, client_info
            )
            store.create(record)
        after = int(client.info("memory")["used_memory"])
        keys = int(client.dbsize())
        client.close()
    per_session = (after - before) / sessions
    return {
        "sessions": sessions,
        "users": users,
        "keys": keys,
        "bytes_per_session": per_session,
        "mib_per_100k": per_session * 100_000 / 2**20,
    }
