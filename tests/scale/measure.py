"""The figures in docs/scaling.md, measured on this machine: ``python -m tests.scale.measure``.

Everything runs on 127.0.0.1 against private servers started here (a redis-server, uvicorn
processes) and stopped by PID. Prints one JSON object.

- Redis commands (including those inside Lua scripts) and round trips per login, refresh,
  logout, a user's sessions revoked, and an uncached session check; ``INFO commandstats``.
- Redis memory per session, per refresh (old tokens stay until the family expires, for reuse
  detection) and after revocation; ``INFO memory`` over many sessions.
- Server CPU per request (``/proc/<pid>/stat``) for one uvicorn process: stateless JWT, session
  cookie with the session cache, and without it (one Redis GET per request).
- Logout propagation: from the logout's 204 in one process to the first 401 in another.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import redis

from tests.helpers.auth import EMAIL, PASSWORD, SECRET, make_user
from tests.helpers.redis_server import RedisServer
from tests.helpers.servers import serve
from tokenguard.auth.service import AuthService, ClientInfo
from tokenguard.config import Settings
from tokenguard.flow import run_sync
from tokenguard.stores.base import SessionRecord, refresh_token_key
from tokenguard.stores.memory import MemoryUserStore
from tokenguard.stores.redis import RedisSessionStore
from tokenguard.stores.sqlite import SQLiteUserStore

UVICORN = [sys.executable, "-m", "uvicorn", "tests.scale.app:application",
           "--host", "127.0.0.1", "--port", "{port}", "--log-level", "warning",
           "--no-access-log"]  # fmt: skip
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"


def commandstats(client: redis.Redis) -> dict[str, int]:
    return {k[len("cmdstat_"):] if k.startswith("cmdstat_") else k: int(v["calls"])
            for k, v in client.info("commandstats").items()}  # fmt: skip


def delta(before: dict[str, int], after: dict[str, int], n: int) -> dict[str, float]:
    out = {}
    for name, calls in after.items():
        d = calls - before.get(name, 0)
        if d and name not in ("info",):
            out[name] = round(d / n, 2)
    return out


class CountingStore(RedisSessionStore):
    """Counts round trips (scripts and command batches) on the way out."""

    round_trips = 0

    def _run(self, op: Any) -> Any:
        outer = self

        def counted() -> Any:
            reply = None
            try:
                step = op.send(None)
                while True:
                    outer.round_trips += 1
                    reply = yield step
                    step = op.send(reply)
            except StopIteration as stop:
                return stop.value

        return super()._run(counted())


def redis_operations(url: str) -> dict[str, Any]:
    client = redis.Redis.from_url(url)
    users = MemoryUserStore()
    users.create(make_user())
    store = CountingStore.from_url(url, prefix="m:")
    settings = Settings(secret=SECRET, login_stall_ms=0)
    from tests.helpers.auth import FAST

    service = AuthService(settings, users, store, passwords=FAST)
    from tokenguard.auth.service import Credentials

    n = 1000
    results: dict[str, Any] = {}
    client_info = ClientInfo("203.0.113.7", UA, None)

    def redis_cpu() -> float:
        info = client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    def measure(name: str, action: Any) -> list[Any]:
        before, trips, cpu = commandstats(client), store.round_trips, redis_cpu()
        out = [action(i) for i in range(n)]
        used = redis_cpu() - cpu
        results[name] = {
            "round_trips": round((store.round_trips - trips) / n, 2),
            "redis_cpu_us": round(used / n * 1e6, 1),
            "commands": delta(before, commandstats(client), n),
        }
        return out

    tokens = measure("login", lambda i: run_sync(service.login(
        Credentials(EMAIL, PASSWORD), "json", client_info, time.monotonic())))  # fmt: skip
    refreshed = measure("refresh", lambda i: run_sync(service.refresh(
        tokens[i].refresh_token, "json", client_info)))  # fmt: skip
    measure("session_check_uncached", lambda i: store.get(
        refresh_token_key(refreshed[i].refresh_token), int(time.time() * 1000)))  # fmt: skip
    measure("logout", lambda i: run_sync(service.logout(refreshed[i].refresh_token)))
    # A user's sessions revoked (password reset, suspension): 5 sessions each.
    for i in range(n):
        for _ in range(5):
            tok = secrets.token_urlsafe(48)
            now = int(time.time() * 1000)
            store.create(
                SessionRecord(refresh_token_key(tok), tok[:22], f"user-{i}", now + 600_000, now)
            )
    measure("revoke_user_5_sessions", lambda i: store.revoke_user(f"user-{i}"))
    store.close()
    client.close()
    return results


def redis_memory(url: str, count: int = 20_000) -> dict[str, Any]:
    client = redis.Redis.from_url(url)
    client.flushall()
    store = RedisSessionStore.from_url(url, prefix="tokenguard:")
    now = int(time.time() * 1000)
    base = int(client.info("memory")["used_memory"])
    tokens = []
    pipe_batch = 500
    for start in range(0, count, pipe_batch):
        for i in range(start, min(count, start + pipe_batch)):
            tok = secrets.token_urlsafe(48)
            tokens.append(tok)
            store.create(SessionRecord(refresh_token_key(tok), tok[:22], f"9b7c5e2a-1f3d-4c6b-8a9e-{i:012d}",
                                       now + 7 * 86_400_000, now, "203.0.113.7", UA, None))  # fmt: skip
    after_login = int(client.info("memory")["used_memory"])
    for i, tok in enumerate(tokens):
        new = tok[:22] + secrets.token_urlsafe(48)[:42]
        rec = SessionRecord(refresh_token_key(new), tok[:22], f"9b7c5e2a-1f3d-4c6b-8a9e-{i:012d}",
                            now + 7 * 86_400_000, now, "203.0.113.7", UA, None)  # fmt: skip
        store.rotate(refresh_token_key(tok), rec, now_ms=now, grace_ms=0)
        tokens[i] = new
    after_refresh = int(client.info("memory")["used_memory"])
    for tok in tokens:
        store.revoke(refresh_token_key(tok))
    after_revoke = int(client.info("memory")["used_memory"])
    store.close()
    client.flushall()
    client.close()
    return {
        "sessions": count,
        "bytes_per_session": round((after_login - base) / count),
        "bytes_per_refresh": round((after_refresh - after_login) / count),
        "bytes_left_per_revoked_session": round((after_revoke - base) / count),
        "note": "user sets keep revoked families until they expire (SREM only on revoke_user)",
    }


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


async def hammer(url: str, headers: dict[str, str], total: int, concurrency: int = 16) -> float:
    expected = "user=None" if not headers else f"user={make_user().id}"
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10,
                                 limits=httpx.Limits(max_connections=concurrency)) as client:  # fmt: skip

        async def worker(n: int) -> None:
            for _ in range(n):
                response = await client.get("/")
                assert response.text.startswith(expected), response.text

        started = time.perf_counter()
        await asyncio.gather(*(worker(total // concurrency) for _ in range(concurrency)))
        return time.perf_counter() - started


def server_cpu(url: str, env: dict[str, str], tmp: Path, total: int = 6000) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for cache_ttl in ("5s", "0"):
        directory = tmp / f"cpu-{cache_ttl}"
        directory.mkdir()
        with serve(UVICORN, {**env, "TOKENGUARD_SESSION_CACHE_TTL": cache_ttl}, directory) as srv:
            login = httpx.post(f"{srv.url}/auth/login",
                               json={"email": EMAIL, "password": PASSWORD, "mode": "session"})  # fmt: skip
            cookie = login.cookies["directus_session_token"]
            jwt = httpx.post(f"{srv.url}/auth/login",
                             json={"email": EMAIL, "password": PASSWORD}).json()["data"]["access_token"]  # fmt: skip
            cases = {"session_cookie": {"cookie": f"directus_session_token={cookie}"}}
            if cache_ttl != "0":
                cases["stateless_jwt"] = {"authorization": f"Bearer {jwt}"}
                cases["public"] = {}
            time.sleep(0.3)
            for name, headers in cases.items():
                asyncio.run(hammer(srv.url, headers, 800))  # warm-up
                before = cpu_seconds(srv.process.pid)
                wall = asyncio.run(hammer(srv.url, headers, total))
                used = cpu_seconds(srv.process.pid) - before
                key = f"{name}{'' if cache_ttl != '0' else '_no_session_cache'}"
                out[key] = {
                    "server_cpu_us_per_request": round(used / total * 1e6, 1),
                    "requests_per_core_second": round(total / used) if used else None,
                    "wall_rps_one_process_shared_box": round(total / wall),
                }
    return out


def propagation(env: dict[str, str], tmp: Path, rounds: int = 30) -> dict[str, Any]:
    samples: list[float] = []
    a_dir, b_dir = tmp / "pa", tmp / "pb"
    a_dir.mkdir()
    b_dir.mkdir()
    with (
        serve(UVICORN, env, a_dir) as a,
        serve(UVICORN, env, b_dir) as b,
        httpx.Client(timeout=5) as http,
    ):
        for _ in range(rounds):
            login = http.post(f"{a.url}/auth/login",
                                  json={"email": EMAIL, "password": PASSWORD, "mode": "session"})  # fmt: skip
            cookie = login.cookies["directus_session_token"]
            http.cookies.clear()
            headers = {"cookie": f"directus_session_token={cookie}"}
            for _ in range(3):
                assert http.get(f"{b.url}/whoami", headers=headers).status_code == 200
            out = http.post(f"{a.url}/auth/logout", json={"mode": "session"}, headers=headers)
            done = time.perf_counter()
            assert out.status_code == 204
            while http.get(f"{b.url}/whoami", headers=headers).status_code != 401:
                pass
            samples.append((time.perf_counter() - done) * 1000)
    samples.sort()
    return {
        "rounds": rounds,
        "ms_median": round(statistics.median(samples), 2),
        "ms_p90": round(samples[int(len(samples) * 0.9) - 1], 2),
        "ms_max": round(samples[-1], 2),
        "note": "includes one HTTP round trip to the other process (the first 401 seen)",
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        server = RedisServer(tmp)
        server.start()
        try:
            db = tmp / "users.db"
            users = SQLiteUserStore(db)
            users.create(make_user())
            users.close()
            env = {"SECRET": SECRET, "DB_FILENAME": str(db), "REDIS": server.url,
                   "LOGIN_STALL_TIME": "0"}  # fmt: skip
            report = {
                "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
                "redis_operations": redis_operations(server.url),
                "redis_memory": redis_memory(server.url),
                "server_cpu": server_cpu(server.url, env, tmp),
                "logout_propagation": propagation(env, tmp),
            }
            print(json.dumps(report, indent=2))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
