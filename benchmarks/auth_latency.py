"""``POST /auth/refresh`` and ``POST /auth/logout`` latency, per session store.

Requests go through the whole ASGI middleware, called in-process (no HTTP server), so the
numbers are tokenguard's work plus the store's round trips. Sessions are created the way a
login creates them (a login itself is dominated by argon2 and the login stall, and is not
what this measures). Redis is a private ``redis-server``; SQLite is a file in a temporary
directory; memory is the in-process store.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

from tokenguard import TokenGuard, TokenGuardMiddleware, User
from tokenguard.auth.service import AuthService, ClientInfo
from tokenguard.stores.memory import MemorySessionStore, MemoryUserStore

from . import apps
from .redis_memory import USER_AGENT, private_redis


class _Capture:
    def __init__(self) -> None:
        self.status = 0
        self.body = b""

    async def __call__(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")


def _post(path: str, body: bytes) -> tuple[dict[str, Any], Any]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"user-agent", USER_AGENT.encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)  # a disconnect never comes while we wait for the reply
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return scope, receive


class _Target:
    """One middleware over one session store, with a user to log in."""

    def __init__(self, name: str, sessions: Any) -> None:
        self.name = name
        self.user = User(id=str(uuid.uuid4()), email="bench@example.com", role=apps.ROLE)
        users = MemoryUserStore()
        users.create(self.user)
        self.core = TokenGuard(
            apps.SETTINGS, users=users, sessions=sessions, flavour="async", login_stall_ms=0
        )
        self.app = TokenGuardMiddleware(apps.bare_asgi, self.core)
        self.sessions = sessions
        self.client = ClientInfo("127.0.0.1", USER_AGENT, None)

    async def new_session(self) -> str:
        """A refresh token and its session row, exactly as a login makes them."""
        token = self.core.auth.refresh_tokens.new()
        now_ms = int(time.time() * 1000)
        record = AuthService._record(
            token, self.user.id, now_ms + apps.SETTINGS.refresh_token_ttl_ms, now_ms, self.client
        )
        created = self.sessions.create(record)
        if asyncio.iscoroutine(created):
            await created
        return token

    async def call(self, path: str, token: str) -> tuple[int, bytes, float]:
        body = json.dumps({"refresh_token": token, "mode": "json"}).encode()
        scope, receive = _post(path, body)
        send = _Capture()
        t0 = time.perf_counter_ns()
        await self.app(scope, receive, send)
        elapsed = (time.perf_counter_ns() - t0) / 1000
        return send.status, send.body, elapsed


async def _run(cfg: Any, rng: random.Random, redis_url: str, workdir: Path) -> dict[str, Any]:
    from tokenguard.stores.redis import AsyncRedisSessionStore
    from tokenguard.stores.sqlite import SQLiteSessionStore

    redis_store = AsyncRedisSessionStore.from_url(redis_url, prefix=f"bench:{uuid.uuid4().hex}:")
    targets = [
        _Target("memory", MemorySessionStore()),
        _Target("SQLite (embedded)", SQLiteSessionStore(str(workdir / "bench.sqlite3"))),
        _Target("Redis (127.0.0.1)", redis_store),
    ]
    per_round = 20 if cfg.rounds <= 3 else 200
    rounds = 1 if cfg.rounds <= 3 else 5
    samples: dict[tuple[str, str], list[float]] = {}
    chains = {t.name: await t.new_session() for t in targets}
    for round_no in range(rounds + 1):  # round 0 warms up and is not kept
        order = targets[:]
        rng.shuffle(order)
        for target in order:
            refresh = samples.setdefault(("refresh", target.name), [])
            logout = samples.setdefault(("logout", target.name), [])
            for _ in range(per_round):
                status, body, us = await target.call("/auth/refresh", chains[target.name])
                if status != 200:
                    raise RuntimeError(f"refresh on {target.name}: {status} {body!r}")
                chains[target.name] = json.loads(body)["data"]["refresh_token"]
                if round_no:
                    refresh.append(us)
            fresh = [await target.new_session() for _ in range(per_round)]
            for token in fresh:
                status, body, us = await target.call("/auth/logout", token)
                if status != 204:
                    raise RuntimeError(f"logout on {target.name}: {status} {body!r}")
                if round_no:
                    logout.append(us)
    close = getattr(redis_store, "aclose", None) or getattr(redis_store, "close", None)
    if close is not None:
        result = close()
        if asyncio.iscoroutine(result):
            await result
    rows = []
    for (operation, store), values in samples.items():
        values.sort()
        rows.append(
            {
                "operation": operation,
                "store": store,
                "us": statistics.median(values),
                "p99_us": values[int(len(values) * 0.99) - 1] if len(values) > 1 else values[0],
                "n": len(values),
            }
        )
    return {"rows": rows}


def measure(cfg: Any, rng: random.Random, workdir: Path) -> dict[str, Any]:
    with private_redis() as url:
        return asyncio.run(_run(cfg, rng, url, workdir))
