"""A bounded soak: a real server under sustained mixed traffic, judged on every answer.

Boots tokenguard around a tiny app under uvicorn (ASGI) or gunicorn (WSGI, threads) on
127.0.0.1, then runs worker threads for ``--duration`` seconds, each picking at random:

- a valid access token (Bearer, or in the query), a static token, no token at all;
- an expired token, a revoked session cookie, and garbage: forged ``alg: none`` tokens,
  tokens signed with another secret, random strings, oversized tokens, broken headers;
- logins (right password; wrong password for a second account, which the lockout and the
  per-account limit end up refusing — as they should);
- refreshes along a json-mode rotation chain, and now and then a replay of a rotated token
  (which must fail, and kill the chain), and logouts (after which the chain must be dead).

With ``--chaos`` the server runs several workers (``--server-workers``, default 2) with its
sessions and counters in a private ``redis-server`` (with an AOF, as the README recommends),
and every two minutes Redis is paused (SIGSTOP) for a few seconds and resumed, then
restarted, then one server worker is killed (SIGKILL; uvicorn and gunicorn start a new one).
While Redis is away tokenguard must answer 503, never accept what it cannot check; a refusal
of a due acceptance, or a dropped connection, is tolerated only during such a disturbance
and a few seconds after it.

Every answer is checked against what it must be. The report gives the request count, the
5xx count other than 503 (target 0), wrong acceptances (target 0: an acceptance where
refusal was due), wrong refusals outside a disturbance (target 0) and the server's resident
memory over the run (target: flat after warm-up — the last third of the samples peaks no more
than 10 % above the first third). The exit status is 1 when a target is missed.

    python -m benchmarks.soak --duration 300 --workers 8 [--shell wsgi] [--redis URL]
    python -m benchmarks.soak --minutes 10 --chaos [--shell wsgi]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt

SECRET = "soak-only-Jm4Qx8Vt2Np6Lr9Zw3Kc7Bh1Fd5Gs0Ay-eU_iO8pL3kM6nR2tS9wX4yZ"
EMAIL = "soak@example.com"
VICTIM = "victim@example.com"
PASSWORD = "soak password, long enough"
USER_ID = "5f0e2c1a-9b8d-4e7f-a6c5-1d2e3f4a5b6c"
VICTIM_ID = "6a1f3d2b-0c9e-4f8a-b7d6-2e3f4a5b6c7d"
STATIC_TOKEN = "soak-static-token-Hq7Wm2Zx9Cv4Bn8Lk3Jh6Gf1Ds5Az0"
STATIC_ID = "7b2a4e3c-1d0f-4a9b-c8e7-3f4a5b6c7d8e"
ROLE = "2c4e6a8b-0d1f-4e3a-8c5b-7d9e1f3a5b7c"


# -- the server side ----------------------------------------------------------------------------


def _stores() -> tuple[Any, Any]:
    from tokenguard.jose.tokens import hash_token
    from tokenguard.stores.base import User
    from tokenguard.stores.memory import MemoryUserStore

    users = MemoryUserStore()
    hashed = _passwords().hash(PASSWORD)
    users.create(User(id=USER_ID, email=EMAIL, password_hash=hashed, role=ROLE, app_access=True))
    # The victim of the wrong-password traffic: the lockout suspends it early in the run.
    users.create(User(id=VICTIM_ID, email=VICTIM, password_hash=hashed, role=ROLE))
    users.create(
        User(
            id=STATIC_ID, email="static@example.com", role=ROLE, token_hash=hash_token(STATIC_TOKEN)
        )
    )
    return users, None


def _whoami_body(principal: Any) -> bytes:
    return f"{getattr(principal, 'user', None)}|{getattr(principal, 'via', None)}".encode()


def _passwords() -> Any:
    # SOAK_CHEAP_HASH=1 (the default of --cheap-hash): argon2id with small costs, so that the
    # run measures tokenguard rather than argon2 on a shared machine.
    from tokenguard.auth.passwords import Passwords

    if os.environ.get("SOAK_CHEAP_HASH") == "1":
        from argon2 import PasswordHasher

        return Passwords(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    return Passwords()


def create_asgi_app() -> Any:
    """uvicorn factory: the middleware (settings from the environment) around a tiny app."""
    from tokenguard import TokenGuardMiddleware

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = _whoami_body(scope.get("user"))
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    users, _ = _stores()
    return TokenGuardMiddleware(app, users=users, passwords=_passwords())


def create_wsgi_app() -> Any:
    """gunicorn factory: the WSGI twin of :func:`create_asgi_app`."""
    from tokenguard import TokenGuardWSGI

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [_whoami_body(environ.get("tokenguard.principal"))]

    users, _ = _stores()
    return TokenGuardWSGI(app, users=users, passwords=_passwords())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _children(pid: int) -> list[int]:
    """The server's worker processes: its children, less multiprocessing's helper."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    if not path.exists():
        return []
    workers = []
    for child in (int(p) for p in path.read_text().split()):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"resource_tracker" not in cmdline:
            workers.append(child)
    return workers


def _rss_kb(pid: int) -> int:
    """Resident memory of ``pid`` and its workers, in KiB."""
    total = 0
    for p in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def start_server(
    shell: str, env: dict[str, str], workers: int = 1
) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    root = Path(__file__).resolve().parent.parent
    if shell == "asgi":
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "benchmarks.soak:create_asgi_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
    else:
        cmd = [
            sys.executable,
            "-m",
            "gunicorn",
            "benchmarks.soak:create_wsgi_app()",
            "-b",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--threads",
            "16",
            "--log-level",
            "warning",
        ]
    process = subprocess.Popen(cmd, cwd=root, env={**os.environ, **env})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ping", timeout=1).status_code == 200 and (
                workers == 1 or len(_children(process.pid)) >= workers
            ):
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("the server did not start")


class Chaos:
    """Disturbs the run on a schedule: Redis paused and resumed, Redis restarted, a server
    worker killed; and says whether a moment is inside a disturbance (or its aftermath)."""

    #: Seconds after a disturbance during which refusals of due acceptances and dropped
    #: connections are still put down to it (a new worker booting, pools reconnecting).
    GRACE = 10.0
    PERIOD = 120.0

    def __init__(self, server: subprocess.Popen[bytes] | None, redis: Any) -> None:
        self.server = server
        self.redis = redis
        self.events: list[str] = []
        self._until = 0.0
        self._lock = threading.Lock()

    def disturbed(self) -> bool:
        with self._lock:
            return time.monotonic() < self._until

    def _begin(self) -> None:
        with self._lock:
            self._until = float("inf")

    def _end(self) -> None:
        with self._lock:
            self._until = time.monotonic() + self.GRACE

    def run(self, started: float, stop: float) -> None:
        """The schedule, every :attr:`PERIOD` seconds: pause at +20 s (5 s), restart Redis
        at +60 s, kill a worker at +100 s; nothing within 15 s of the end."""
        steps = [(20.0, self.pause), (60.0, self.restart), (100.0, self.kill_worker)]
        cycle = 0
        while True:
            for offset, step in steps:
                at = started + cycle * self.PERIOD + offset
                if at > stop - 15:
                    return
                time.sleep(max(0.0, at - time.monotonic()))
                self._begin()
                try:
                    step(round(at - started))
                finally:
                    self._end()
            cycle += 1

    def pause(self, t: int) -> None:
        self.redis.pause()
        time.sleep(5)
        self.redis.resume()
        self.events.append(f"{t}s: Redis paused 5 s (SIGSTOP), resumed")

    def restart(self, t: int) -> None:
        self.redis.stop()
        self.redis.start()
        self.events.append(f"{t}s: Redis restarted")

    def kill_worker(self, t: int) -> None:
        assert self.server is not None
        before = _children(self.server.pid)
        if not before:
            return
        victim = random.choice(before)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = _children(self.server.pid)
            if victim not in now and len(now) >= len(before):
                self.events.append(f"{t}s: worker {victim} killed (SIGKILL), replaced")
                return
            time.sleep(0.2)
        self.events.append(f"{t}s: worker {victim} killed (SIGKILL), NOT replaced")


# -- the client side ----------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "id": USER_ID,
        "role": ROLE,
        "app_access": True,
        "admin_access": True,
        "iat": now,
        "exp": now + 900,
        "iss": "directus",
    }
    base.update(changes)
    return base


_NONE_HEADER = _b64(b'{"alg":"none"}')


def garbage(rng: random.Random) -> str:
    kind = rng.randrange(7)
    if kind == 0:
        return f"{_NONE_HEADER}.{_b64(json.dumps(_claims()).encode())}."
    if kind == 1:
        return jwt.encode(_claims(), "another-secret-entirely-0123456789abcdef", algorithm="HS256")
    if kind == 2:
        return secrets.token_urlsafe(rng.randrange(1, 80))
    if kind == 3:
        return "A" * rng.randrange(4097, 20_000)
    if kind == 4:
        token = jwt.encode(_claims(), SECRET, algorithm="HS256")
        return token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    if kind == 5:
        return jwt.encode(_claims(iss="someone-else"), SECRET, algorithm="HS256")
    return "".join(rng.choice("abc.-_=+/ %\"'") for _ in range(rng.randrange(1, 60)))


@dataclass
class Tally:
    """Every answer, judged. ``ok`` says whether it was the answer due; a wrong one is an
    acceptance (2xx/3xx: the worst kind) or a refusal, and a refusal — or a dropped
    connection — during a disturbance of :class:`Chaos` is put down to it. A 503 is never
    wrong: it refuses what could not be checked."""

    chaos: Chaos | None = None
    requests: int = 0
    server_errors: int = 0
    unavailable: int = 0
    wrong_acceptances: int = 0
    wrong_refusals: int = 0
    transport_errors: int = 0
    tolerated: int = 0
    by_action: Counter[str] = field(default_factory=Counter)
    wrong_examples: list[str] = field(default_factory=list)
    latency_ms: dict[str, list[float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def wrong(self) -> int:
        return self.wrong_acceptances + self.wrong_refusals + self.transport_errors

    def record(
        self, action: str, status: int, ok: bool, detail: str = "", ms: float | None = None
    ) -> None:
        disturbed = self.chaos is not None and self.chaos.disturbed()
        with self.lock:
            if ms is not None:
                self.latency_ms.setdefault(action, []).append(ms)
            self.requests += 1
            self.by_action[action] += 1
            if status == 503:
                self.unavailable += 1
                return
            if 500 <= status < 599:
                self.server_errors += 1
            if ok:
                return
            if status < 400:
                self.wrong_acceptances += 1
            elif disturbed:
                self.tolerated += 1
                return
            elif status == 599:
                self.transport_errors += 1
            else:
                self.wrong_refusals += 1
            if len(self.wrong_examples) < 10:
                self.wrong_examples.append(f"{action}: {status} {detail[:200]}")


@dataclass
class Fixtures:
    valid: str
    expired: str
    revoked_cookie: str


def prepare(url: str) -> Fixtures:
    with httpx.Client(base_url=url, timeout=10) as client:
        r = client.post("/auth/login", json={"email": EMAIL, "password": PASSWORD})
        r.raise_for_status()
        valid = r.json()["data"]["access_token"]
        r = client.post(
            "/auth/login", json={"email": EMAIL, "password": PASSWORD, "mode": "session"}
        )
        r.raise_for_status()
        cookie = r.headers["set-cookie"].split(";", 1)[0]
        r = client.post("/auth/logout", json={"mode": "session"}, headers={"Cookie": cookie})
        assert r.status_code == 204, r.text
    now = int(time.time())
    expired = jwt.encode(
        _claims(iat=now - 3600, exp=now - 1800, admin_access=False), SECRET, algorithm="HS256"
    )
    return Fixtures(valid, expired, cookie)


def worker(url: str, fixtures: Fixtures, tally: Tally, stop: float, seed: int) -> None:
    rng = random.Random(seed)
    me = f"{USER_ID}|jwt".encode()
    chain: str | None = None
    previous: str | None = None
    with httpx.Client(base_url=url, timeout=30) as client:
        while time.monotonic() < stop:
            action = rng.choices(
                [
                    "valid",
                    "query",
                    "static",
                    "public",
                    "expired",
                    "revoked",
                    "garbage",
                    "login",
                    "wrong",
                    "refresh",
                    "replay",
                    "logout",
                ],
                weights=[25, 5, 5, 5, 10, 10, 20, 3, 3, 10, 1, 1],
            )[0]
            t0 = time.perf_counter()
            try:
                if action == "valid":
                    r = client.get("/items", headers={"Authorization": f"Bearer {fixtures.valid}"})
                    tally.record(
                        action,
                        r.status_code,
                        r.status_code == 200 and r.content == me,
                        r.text,
                        (time.perf_counter() - t0) * 1000,
                    )
                elif action == "query":
                    r = client.get("/items", params={"access_token": fixtures.valid})
                    tally.record(
                        action,
                        r.status_code,
                        r.status_code == 200 and r.content == me,
                        r.text,
                        (time.perf_counter() - t0) * 1000,
                    )
                elif action == "static":
                    r = client.get("/items", headers={"Authorization": f"Bearer {STATIC_TOKEN}"})
                    ok = r.status_code == 200 and r.content == f"{STATIC_ID}|static".encode()
                    tally.record(
                        action, r.status_code, ok, r.text, (time.perf_counter() - t0) * 1000
                    )
                elif action == "public":
                    r = client.get("/items")
                    tally.record(
                        action,
                        r.status_code,
                        r.content == b"None|public",
                        r.text,
                        (time.perf_counter() - t0) * 1000,
                    )
                elif action == "expired":
                    r = client.get(
                        "/items", headers={"Authorization": f"Bearer {fixtures.expired}"}
                    )
                    tally.record(
                        action,
                        r.status_code,
                        r.status_code == 401 and b"TOKEN_EXPIRED" in r.content,
                        r.text,
                    )
                elif action == "revoked":
                    r = client.get("/items", headers={"Cookie": fixtures.revoked_cookie})
                    tally.record(
                        action,
                        r.status_code,
                        r.status_code == 401,
                        r.text,
                        (time.perf_counter() - t0) * 1000,
                    )
                elif action == "garbage":
                    token = garbage(rng)
                    where = rng.randrange(3)
                    if where == 0:
                        r = client.get("/items", headers={"Authorization": f"Bearer {token}"})
                    elif where == 1:
                        r = client.get("/items", params={"access_token": token})
                    else:
                        r = client.post(
                            "/items", headers={"Cookie": f"directus_session_token={token}"}
                        )
                    # Never accepted as anybody: a refusal (by tokenguard, or by the server
                    # itself for an oversized line or header: 414, 431), or public when the
                    # header is not a token at all.
                    ok = r.status_code in (400, 401, 403, 414, 431) or (
                        r.status_code == 200 and r.content == b"None|public"
                    )
                    tally.record(
                        action, r.status_code, ok, r.text, (time.perf_counter() - t0) * 1000
                    )
                elif action == "login":
                    r = client.post("/auth/login", json={"email": EMAIL, "password": PASSWORD})
                    ok = r.status_code == 200 and "access_token" in r.json().get("data", {})
                    tally.record(
                        action, r.status_code, ok, r.text, (time.perf_counter() - t0) * 1000
                    )
                elif action == "wrong":
                    r = client.post("/auth/login", json={"email": VICTIM, "password": "guess"})
                    ok = r.status_code in (401, 429) and b"access_token" not in r.content
                    tally.record(
                        action, r.status_code, ok, r.text, (time.perf_counter() - t0) * 1000
                    )
                elif action == "refresh":
                    if chain is None:
                        r = client.post("/auth/login", json={"email": EMAIL, "password": PASSWORD})
                        tally.record(
                            "login",
                            r.status_code,
                            r.status_code == 200,
                            r.text,
                            (time.perf_counter() - t0) * 1000,
                        )
                        if r.status_code == 200:
                            chain = r.json()["data"]["refresh_token"]
                        continue
                    r = client.post("/auth/refresh", json={"refresh_token": chain})
                    tally.record(
                        action,
                        r.status_code,
                        r.status_code == 200,
                        r.text,
                        (time.perf_counter() - t0) * 1000,
                    )
                    if r.status_code == 200:
                        previous, chain = chain, r.json()["data"]["refresh_token"]
                    else:
                        # Not rotated, or (503 while Redis was paused) rotated later:
                        # neither token's fate is known, so both are dropped.
                        previous = chain = None
                elif action == "logout":
                    if chain is None:
                        continue
                    r = client.post("/auth/logout", json={"refresh_token": chain})
                    tally.record(
                        action,
                        r.status_code,
                        r.status_code == 204,
                        r.text,
                        (time.perf_counter() - t0) * 1000,
                    )
                    if r.status_code == 204:
                        # Logged out: the token must not refresh any more.
                        r = client.post("/auth/refresh", json={"refresh_token": chain})
                        tally.record("after-logout", r.status_code, r.status_code == 401, r.text)
                    previous = chain = None
                elif action == "replay" and previous is not None:
                    r = client.post("/auth/refresh", json={"refresh_token": previous})
                    tally.record(
                        action,
                        r.status_code,
                        r.status_code == 401,
                        r.text,
                        (time.perf_counter() - t0) * 1000,
                    )
                    previous = None
                    if chain is not None:
                        # Reuse revoked the whole family: the current token must be dead too.
                        r = client.post("/auth/refresh", json={"refresh_token": chain})
                        tally.record(
                            "replay-family",
                            r.status_code,
                            r.status_code == 401,
                            r.text,
                            (time.perf_counter() - t0) * 1000,
                        )
                        chain = None
            except httpx.LocalProtocolError:
                pass  # the client library refused to send it: nothing reached the server
            except httpx.HTTPError as exc:
                tally.record(action, 599, False, f"transport error: {type(exc).__name__}")
                previous = chain = None  # whatever the lost request did is unknown


def _flat(samples: list[tuple[float, int]]) -> bool:
    """Resident memory flat after warm-up: the last third of the samples peaks no more than
    10 % above the first third (caches fill early and stay at their bound)."""
    values = [kb for _, kb in samples]
    third = max(1, len(values) // 3)
    return max(values[-third:]) <= max(values[:third]) * 1.10


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60, help="seconds of load (default 60)")
    parser.add_argument(
        "--minutes", type=float, default=None, help="minutes of load (overrides --duration)"
    )
    parser.add_argument("--workers", type=int, default=8, help="client threads (default 8)")
    parser.add_argument(
        "--server-workers",
        type=int,
        default=None,
        help="server processes (default 1; 2 with --chaos)",
    )
    parser.add_argument("--shell", choices=["asgi", "wsgi"], default="asgi")
    parser.add_argument("--redis", default=None, help="REDIS URL for sessions and counters")
    parser.add_argument(
        "--chaos",
        action="store_true",
        help="a private redis-server (AOF on), paused, restarted; a server worker killed",
    )
    parser.add_argument("--stall-ms", type=int, default=100, help="LOGIN_STALL_TIME (default 100)")
    parser.add_argument(
        "--real-argon2",
        action="store_true",
        help="hash with argon2's default costs (default: small costs, see SOAK_CHEAP_HASH)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    duration = args.minutes * 60 if args.minutes is not None else args.duration
    server_workers = args.server_workers or (2 if args.chaos else 1)

    with tempfile.TemporaryDirectory(prefix="soak-") as scratch:
        redis = None
        if args.chaos:
            # The test suite's private redis-server: its own port and directory, stopped by PID.
            from tests.helpers.redis_server import RedisServer

            redis = RedisServer(Path(scratch), persistent=True)
            redis.start()
            args.redis = redis.url
        try:
            return _run(args, duration, server_workers, redis)
        finally:
            if redis is not None:
                redis.stop()


def _run(args: argparse.Namespace, duration: float, server_workers: int, redis: Any) -> int:
    env = {
        "SECRET": SECRET,
        "LOGIN_STALL_TIME": str(args.stall_ms),
        "ACCESS_TOKEN_TTL": "1h",
        "SOAK_CHEAP_HASH": "0" if args.real_argon2 else "1",
    }
    if args.redis:
        env |= {
            "REDIS": args.redis,
            "RATE_LIMITER_STORE": "redis",
            "TOKENGUARD_REDIS_PREFIX": f"soak:{secrets.token_hex(4)}:",
        }
    process, url = start_server(args.shell, env, server_workers)
    chaos = Chaos(process, redis) if redis is not None else None
    try:
        fixtures = prepare(url)
        # Warm up before the first memory reading: imports, argon2, caches at their size.
        worker(url, fixtures, Tally(), time.monotonic() + min(10.0, duration / 10), seed=0)
        rss_start = _rss_kb(process.pid)
        tally = Tally(chaos=chaos)
        started = time.monotonic()
        stop = started + duration
        samples: list[tuple[float, int]] = [(0.0, rss_start)]
        threads = [
            threading.Thread(target=worker, args=(url, fixtures, tally, stop, seed), daemon=True)
            for seed in range(1, args.workers + 1)
        ]
        if chaos is not None:
            threads.append(threading.Thread(target=chaos.run, args=(started, stop), daemon=True))
        for thread in threads:
            thread.start()
        while any(t.is_alive() for t in threads):
            time.sleep(min(5.0, max(0.1, stop - time.monotonic())))
            samples.append((time.monotonic() - started, _rss_kb(process.pid)))
        elapsed = time.monotonic() - started
        rss_end = _rss_kb(process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
    flat = _flat(samples)
    report = {
        "shell": args.shell,
        "server_workers": server_workers,
        "redis": bool(args.redis),
        "chaos": chaos.events if chaos is not None else None,
        "duration_s": round(elapsed, 1),
        "workers": args.workers,
        "requests": tally.requests,
        "requests_per_s": round(tally.requests / elapsed, 1),
        "by_action": dict(sorted(tally.by_action.items())),
        "server_errors_5xx": tally.server_errors,
        "unavailable_503": tally.unavailable,
        "wrong_acceptances": tally.wrong_acceptances,
        "wrong_refusals": tally.wrong_refusals,
        "transport_errors": tally.transport_errors,
        "tolerated_in_chaos": tally.tolerated,
        "wrong_examples": tally.wrong_examples,
        "median_ms": {
            k: round(statistics.median(v), 1) for k, v in sorted(tally.latency_ms.items())
        },
        "rss_start_kb": rss_start,
        "rss_end_kb": rss_end,
        "rss_growth_kb": rss_end - rss_start,
        "rss_peak_kb": max(kb for _, kb in samples),
        "rss_flat": flat,
        # (seconds into the run, KiB), about a dozen points: growth that levels off is caches
        # filling to their bound; growth that does not is a leak.
        "rss_samples": samples[:: max(1, len(samples) // 12)] + samples[-1:],
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key:>18}: {value}")
    return 0 if tally.server_errors == 0 and tally.wrong == 0 and flat else 1


if __name__ == "__main__":
    sys.exit(main())
