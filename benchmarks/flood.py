"""A login flood over real servers: does a wave of bad logins take the server down?

Three targets, each on its own free 127.0.0.1 port:

- ``starlette``: the Starlette example under ``uvicorn --workers 2``;
- ``flask``: the Flask example under ``gunicorn -w 2 -k gthread`` (threads, see
  ``--gunicorn-threads``);
- ``directus``: a real Directus 11 from npm (``../shared/tools/directus-real.sh``), for comparison.

Both tokenguard servers keep sessions in a private ``redis-server`` and users in a fresh SQLite
file seeded with two users: the logged-in client's and the flood's victim. Then, for
``--seconds``:

- ``--clients`` concurrent clients (raw asyncio HTTP/1.1, in a process of their own so that their
  CPU does not stall the measuring threads) post to ``/auth/login``: half wrong passwords for
  the victim, half unknown e-mails (a new one every time), each client sending its next login
  as soon as the last is answered;
- ONE logged-in client polls ``GET /users/me`` back to back and times every answer;
- every worker process's ``VmRSS`` is read every 100 ms.

It reports each worker's idle and peak RSS, the poller's status codes and latency, logins
answered per second by status, one argon2 verification's time here, and judges three targets:

- peak RSS per worker <= its idle RSS + concurrency x 64 MiB + 100 MB (``concurrency``: the
  hashes a worker runs at once: tokenguard's ``HashPool``, the CPU count; Directus's libuv
  thread pool, ``UV_THREADPOOL_SIZE`` or 4);
- the poller gets 200 every time, with p99 <= 250 ms;
- completed logins (401 or 200: each one a full argon2 verification on tokenguard) per second
  >= 80 % of cores / t(one verification).

    python -m benchmarks.flood                        # all three targets, 30 s each
    python -m benchmarks.flood --quick                # 2 s, 20 clients, no Directus (smoke)
    python -m benchmarks.flood --targets starlette --seconds 10 --json flood.json

Traffic goes to 127.0.0.1 only; every loop has a deadline and every request a timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import math
import multiprocessing
import os
import platform
import random
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .redis_memory import private_redis
from .run import finish_report, free_port, machine

ROOT = Path(__file__).resolve().parent.parent

POLLER_EMAIL = "admin@example.com"
POLLER_PASSWORD = "flood poller password, long enough"
VICTIM_EMAIL = "flood-victim@example.com"
VICTIM_PASSWORD = "flood victim password, long enough"
# Directus's administrator: what ../shared/tools/directus-real.sh bootstraps it with.
DIRECTUS_ADMIN_PASSWORD = os.environ.get("ADMIN_PASSWORD", "Correct-Horse-Battery-9")

ARGON2_MIB = 64  # argon2id memory per hash, Directus's (and argon2-cffi's) default
SLACK_BYTES = 100 * 10**6  # the bound's "+ 100 MB"
POLL_P99_MS = 250.0
LOGIN_SHARE = 0.8
SAMPLE_EVERY_S = 0.1
TARGET_NAMES = ("starlette", "flask", "directus")


def log(*parts: Any) -> None:
    print("[flood]", *parts, file=sys.stderr, flush=True)


# -- processes and their memory -------------------------------------------------------------------


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (whichever of its threads forked them)."""
    found: list[int] = []
    with suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with suppress(OSError, ValueError):
                found += [int(c) for c in (task / "children").read_text().split()]
    return found


def descendants(pid: int) -> list[int]:
    out: list[int] = []
    stack = children(pid)
    while stack and len(out) < 1000:  # bounded: a process tree is never that large here
        child = stack.pop()
        out.append(child)
        stack += children(child)
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def rss_bytes(pid: int) -> int | None:
    """``VmRSS`` of ``pid`` in bytes, or ``None`` once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def uvicorn_workers(master: int) -> list[int]:
    # uvicorn spawns its workers with multiprocessing ("spawn_main"); the resource tracker,
    # also a child, serves no request.
    return [p for p in children(master) if "spawn_main" in cmdline(p)]


def gunicorn_workers(master: int) -> list[int]:
    return children(master)


def directus_workers(leader: int) -> list[int]:
    # npx runs `directus start` through a shell; the server is the node process at the end.
    def is_server(pid: int) -> bool:
        line = cmdline(pid)
        return "directus" in line and "start" in line and "npm" not in line

    servers = [p for p in descendants(leader) if is_server(p)]
    return [p for p in servers if not any(is_server(c) for c in descendants(p))]


class RssSampler(threading.Thread):
    """Reads every worker's RSS every ``SAMPLE_EVERY_S`` until stopped; keeps each one's peak."""

    def __init__(self, leader: int, select: Callable[[int], list[int]]) -> None:
        super().__init__(daemon=True)
        self.leader = leader
        self.select = select
        self.peaks: dict[int, int] = {}
        self.samples = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(SAMPLE_EVERY_S):
            self.sample()

    def sample(self) -> dict[int, int]:
        now: dict[int, int] = {}
        for pid in self.select(self.leader):
            rss = rss_bytes(pid)
            if rss is not None:
                now[pid] = rss
                self.peaks[pid] = max(rss, self.peaks.get(pid, 0))
        self.samples += 1
        return now

    def stop(self) -> None:
        self._stop_event.set()
        self.join(5)


def idle_rss(leader: int, select: Callable[[int], list[int]], seconds: float) -> dict[int, int]:
    """Each worker's median RSS over ``seconds`` of quiet."""
    readings: dict[int, list[int]] = {}
    sampler = RssSampler(leader, select)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for pid, rss in sampler.sample().items():
            readings.setdefault(pid, []).append(rss)
        time.sleep(SAMPLE_EVERY_S)
    return {pid: int(statistics.median(values)) for pid, values in readings.items()}


# -- the servers ---------------------------------------------------------------------------------


@dataclass
class Server:
    """A started target: where it answers, how to find its workers, how to stop it."""

    name: str
    label: str
    url: str
    leader: int
    select: Callable[[int], list[int]]
    concurrency: int  # hashes one worker runs at once
    stop: Callable[[], None]
    notes: list[str] = field(default_factory=list)


def wait_ready(url: str, path: str, seconds: float, alive: Callable[[], bool]) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError("the server exited while starting")
        with suppress(httpx.HTTPError):
            if httpx.get(url + path, timeout=2).status_code < 500:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {seconds:.0f} s")


def seed_users(db: Path) -> None:
    """A fresh SQLite user store with the poller (an administrator) and the flood's victim."""
    from tokenguard.stores.sqlite import SQLiteUserStore
    from tokenguard.users import create_user

    store = SQLiteUserStore(db)
    try:
        create_user(
            store,
            POLLER_EMAIL,
            password=POLLER_PASSWORD,
            role="administrator",
            admin_access=True,
            app_access=True,
        )
        create_user(store, VICTIM_EMAIL, password=VICTIM_PASSWORD, app_access=True)
    finally:
        store.close()


def hash_concurrency() -> int:
    """How many hashes one tokenguard worker runs at once (its pool's default)."""
    from tokenguard.auth.hashing import HashPool

    return HashPool().concurrency


def _stopper(process: subprocess.Popen[bytes]) -> Callable[[], None]:
    def stop() -> None:
        if process.poll() is None:
            process.terminate()  # uvicorn and gunicorn stop their workers on SIGTERM
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)

    return stop


def start_tokenguard(name: str, workdir: Path, redis_url: str, gunicorn_threads: int) -> Server:
    """The Starlette example under uvicorn or the Flask example under gunicorn, 2 workers."""
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "users.db"
    seed_users(db)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADMIN_")}
    env |= {
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(ROOT), str(ROOT / "src"), os.environ.get("PYTHONPATH")])
        ),
        "SECRET": secrets.token_urlsafe(48),
        "DB_FILENAME": str(db),
        "REDIS": redis_url,
        "TOKENGUARD_REDIS_PREFIX": f"flood:{name}:",
    }
    if name == "starlette":
        label = "Starlette example, uvicorn --workers 2"
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "examples.starlette_app.app:app",
            "--workers",
            "2",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
        select = uvicorn_workers
    else:
        label = f"Flask example, gunicorn -w 2 -k gthread --threads {gunicorn_threads}"
        cmd = [
            sys.executable,
            "-m",
            "gunicorn",
            "examples.flask_app.app:app",
            "-w",
            "2",
            "-k",
            "gthread",
            "--threads",
            str(gunicorn_threads),
            "-b",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
        ]
        select = gunicorn_workers
    output = (workdir / "server.log").open("wb")
    process = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    server = Server(
        name,
        label,
        f"http://127.0.0.1:{port}",
        process.pid,
        select,
        hash_concurrency(),
        _stopper(process),
    )
    try:
        wait_ready(server.url, "/", 60, lambda: process.poll() is None)
        deadline = time.monotonic() + 30
        while len(select(process.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
    except Exception:
        server.stop()
        tail = (workdir / "server.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{label} did not start:\n{tail}") from None
    return server


def start_directus(script: Path, directory: Path) -> Server:
    """A real Directus 11 from npm (installed once into ``directory``), its flood victim made
    (again) an active user with a known password."""
    if not script.is_file():
        raise RuntimeError(f"{script} not found (see --directus-script)")
    if shutil.which("npm") is None:
        raise RuntimeError("npm is not installed")
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {**os.environ, "ADMIN_PASSWORD": DIRECTUS_ADMIN_PASSWORD}
    log(f"starting Directus in {directory} (the first time installs it from npm: minutes)")
    # A session of its own: the script leaves npx running in the background, in this group.
    launcher = subprocess.run(
        ["bash", str(script.resolve()), str(directory.resolve()), str(port)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        start_new_session=True,
    )
    if launcher.returncode != 0 or not launcher.stdout.strip():
        raise RuntimeError(
            f"directus-real.sh failed ({launcher.returncode}): "
            f"{(launcher.stderr or launcher.stdout)[-2000:]}"
        )
    leader = int(launcher.stdout.strip().splitlines()[-1])
    group = os.getpgid(leader)

    def stop() -> None:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and rss_bytes(leader) is not None:
            time.sleep(0.2)
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)

    threads = int(os.environ.get("UV_THREADPOOL_SIZE", "4"))
    server = Server(
        "directus",
        "Directus 11.17.4 (node, one process, SQLite)",
        f"http://127.0.0.1:{port}",
        leader,
        directus_workers,
        threads,
        stop,
        [f"argon2 runs in libuv's thread pool: {threads} at once"],
    )
    try:
        wait_ready(server.url, "/server/ping", 180, lambda: rss_bytes(leader) is not None)
        reset_directus_victim(server.url)
    except Exception:
        stop()
        log_file = directory / "app" / "server.log"
        tail = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
        raise RuntimeError(f"Directus did not start:\n{tail}") from None
    return server


def reset_directus_victim(url: str) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        token = login(client, POLLER_EMAIL, DIRECTUS_ADMIN_PASSWORD)
        auth = {"Authorization": f"Bearer {token}"}
        found = client.get(
            "/users", params={"filter[email][_eq]": VICTIM_EMAIL, "fields": "id"}, headers=auth
        )
        found.raise_for_status()
        rows = found.json()["data"]
        body = {"status": "active", "password": VICTIM_PASSWORD}
        if rows:
            client.patch(f"/users/{rows[0]['id']}", json=body, headers=auth).raise_for_status()
        else:
            client.post(
                "/users", json={"email": VICTIM_EMAIL, **body}, headers=auth
            ).raise_for_status()


def login(client: httpx.Client, email: str, password: str) -> str:
    r = client.post("/auth/login", json={"email": email, "password": password})
    if r.status_code != 200:
        raise RuntimeError(f"login as {email}: {r.status_code} {r.text[:300]}")
    token: str = r.json()["data"]["access_token"]
    return token


# -- the load ------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100); ``None`` without values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass
class Poll:
    statuses: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)


def poll(url: str, token: str, stop_at: float) -> Poll:
    """``GET /users/me`` back to back until ``stop_at`` (monotonic), one connection."""
    result = Poll()
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, timeout=10) as client:
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            try:
                status = str(client.get("/users/me", headers=headers).status_code)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            result.latencies_ms.append((time.perf_counter() - started) * 1000)
            result.statuses[status] += 1
    return result


class _Connection:
    """One client's keep-alive HTTP/1.1 connection, spoken directly over asyncio streams.

    Not httpx: at 200 clients its per-request CPU (about 12 ms here) made the load generator,
    not the server, the bottleneck on a 2-core machine, so the servers were offered a fraction
    of the flood. This speaks only what a login needs: a POST with a JSON body, and answers
    with ``Content-Length`` (what uvicorn, gunicorn and Directus send for them)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post_json(self, path: str, body: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(
            b"POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s"
            % (path.encode(), self.host.encode(), self.port, len(body), body)
        )
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length, close = 0, False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
            await self.reader.readexactly(length)
        except BaseException:
            self.close()  # a broken connection is not reused
            raise
        if close:
            self.close()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _flood(url: str, clients: int, seconds: float, queue: Any) -> dict[str, Any]:
    answers: Counter[tuple[str, str]] = Counter()
    latencies: dict[tuple[str, str], list[float]] = {}
    target = httpx.URL(url)
    host, port = target.host, target.port or 80
    start = time.monotonic()
    stop = start + seconds
    queue.put(("started", start, stop))

    async def one(index: int) -> None:
        rng = random.Random(index)
        kind = "wrong password" if index % 2 == 0 else "unknown e-mail"
        connection = _Connection(host, port)
        try:
            while time.monotonic() < stop:
                if kind == "wrong password":
                    email = VICTIM_EMAIL
                else:
                    email = f"nobody-{rng.getrandbits(64):016x}@example.com"
                body = json.dumps(
                    {"email": email, "password": f"guess-{rng.getrandbits(64):016x}"}
                ).encode()
                began = time.monotonic()
                try:
                    status = str(await connection.post_json("/auth/login", body))
                except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
                    status = type(exc).__name__
                if time.monotonic() <= stop:
                    answers[kind, status] += 1
                    latencies.setdefault((kind, status), []).append(
                        (time.monotonic() - began) * 1000
                    )
        finally:
            connection.close()

    tasks = [asyncio.create_task(one(i)) for i in range(clients)]
    await asyncio.sleep(max(0.0, stop - time.monotonic()))
    for task in tasks:  # what is still in flight at the deadline is not counted
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "answers": [[kind, status, n] for (kind, status), n in sorted(answers.items())],
        "median_ms": {
            f"{k}|{s}": round(statistics.median(v), 1) for (k, s), v in sorted(latencies.items())
        },
        "client_cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
    }


def flood_process(url: str, clients: int, seconds: float, queue: Any, nice: int = 0) -> None:
    """The flood's own process (spawned): runs the clients, puts the tally on ``queue``.

    ``nice`` lowers its priority: an attacker's clients run on the attacker's machines, and
    here they share the server's cores; at a lower priority they take what the servers leave
    (the requests they send still cost the servers what they cost)."""
    if nice:
        os.nice(nice)
    try:
        queue.put(("done", asyncio.run(_flood(url, clients, seconds, queue))))
    except Exception as exc:  # reported, not lost with the process
        queue.put(("error", f"{type(exc).__name__}: {exc}"))


def measure(server: Server, clients: int, seconds: float, nice: int = 0) -> dict[str, Any]:
    """Warm up, read idle RSS, flood for ``seconds`` while polling and sampling, tally."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        password = DIRECTUS_ADMIN_PASSWORD if server.name == "directus" else POLLER_PASSWORD
        token = login(client, POLLER_EMAIL, password)
    for _ in range(8):  # fresh connections, so that every worker serves some
        with suppress(httpx.HTTPError):
            httpx.get(
                server.url + "/users/me", headers={"Authorization": f"Bearer {token}"}, timeout=10
            )
    idle = idle_rss(server.leader, server.select, 1.5)
    load_before = os.getloadavg()
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    flooder = context.Process(
        target=flood_process, args=(server.url, clients, seconds, queue, nice)
    )
    sampler = RssSampler(server.leader, server.select)
    sampler.start()
    flooder.start()
    try:
        message = queue.get(timeout=60)
        if message[0] != "started":
            raise RuntimeError(f"the flood did not start: {message[1]}")
        _, _start, stop = message
        polled = poll(server.url, token, stop)
        message = queue.get(timeout=60)
        if message[0] != "done":
            raise RuntimeError(f"the flood failed: {message[1]}")
        tally: dict[str, Any] = message[1]
    finally:
        sampler.stop()
        flooder.join(10)
        if flooder.is_alive():
            flooder.kill()
            flooder.join(5)
    load_after = os.getloadavg()
    return report_target(
        server, clients, seconds, idle, sampler, polled, tally, load_before, load_after
    )


# -- judging and reporting ------------------------------------------------------------------------


def report_target(
    server: Server,
    clients: int,
    seconds: float,
    idle: dict[int, int],
    sampler: RssSampler,
    polled: Poll,
    tally: dict[str, Any],
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
) -> dict[str, Any]:
    allowance = server.concurrency * ARGON2_MIB * 2**20 + SLACK_BYTES
    workers = []
    for pid in sorted(set(idle) | set(sampler.peaks)):
        before = idle.get(pid)
        peak = sampler.peaks.get(pid, before or 0)
        bound = None if before is None else before + allowance
        workers.append(
            {
                "pid": pid,
                "idle_bytes": before,
                "peak_bytes": peak,
                "bound_bytes": bound,
                # A worker that appeared during the flood replaced one that died: a failure.
                "met": bound is not None and peak <= bound and pid in sampler.peaks,
            }
        )
    by_status: Counter[str] = Counter()
    by_kind: dict[str, Counter[str]] = {}
    for kind, status, n in tally["answers"]:
        by_status[status] += n
        by_kind.setdefault(kind, Counter())[status] += n
    answered = sum(by_status.values())
    completed = by_status["401"] + by_status["200"]
    p50 = percentile(polled.latencies_ms, 50)
    p99 = percentile(polled.latencies_ms, 99)
    polls = sum(polled.statuses.values())
    return {
        "label": server.label,
        "url": server.url,
        "clients": clients,
        "seconds": seconds,
        "concurrency_per_worker": server.concurrency,
        "notes": server.notes,
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in load_after],
        "rss_samples": sampler.samples,
        "workers": workers,
        "memory_met": bool(workers) and all(w["met"] for w in workers),
        "poller": {
            "polls": polls,
            "statuses": dict(polled.statuses),
            "p50_ms": None if p50 is None else round(p50, 1),
            "p99_ms": None if p99 is None else round(p99, 1),
            "max_ms": round(max(polled.latencies_ms), 1) if polled.latencies_ms else None,
            "met": polls > 0
            and polled.statuses["200"] == polls
            and p99 is not None
            and p99 <= POLL_P99_MS,
        },
        "logins": {
            "answered": answered,
            "answered_per_s": round(answered / seconds, 1),
            "by_status": {s: by_status[s] for s in ("401", "503", "429")}
            | {"other": answered - by_status["401"] - by_status["503"] - by_status["429"]},
            "other_statuses": {
                s: n for s, n in by_status.items() if s not in ("401", "503", "429")
            },
            "completed_per_s": round(completed / seconds, 1),
            "by_kind": {kind: dict(counts) for kind, counts in sorted(by_kind.items())},
            "median_ms": tally["median_ms"],
            "client_cpu_s": tally["client_cpu_s"],
        },
    }


def time_verification(runs: int = 5) -> dict[str, Any]:
    """One argon2id verification with argon2-cffi's defaults (Directus's parameters)."""
    from argon2 import PasswordHasher

    hasher = PasswordHasher()
    hashed = hasher.hash("a password of the usual length")
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        hasher.verify(hashed, "a password of the usual length")
        times.append(time.perf_counter() - started)
    return {
        "ms": round(statistics.median(times) * 1000, 1),
        "runs_ms": [round(t * 1000, 1) for t in times],
        "time_cost": hasher.time_cost,
        "memory_cost_kib": hasher.memory_cost,
        "parallelism": hasher.parallelism,
    }


def _verify_for(seconds: float) -> int:
    from argon2 import PasswordHasher

    hasher = PasswordHasher()
    hashed = hasher.hash("a password of the usual length")
    done, stop = 0, time.monotonic() + seconds
    while time.monotonic() < stop:
        hasher.verify(hashed, "a password of the usual length")
        done += 1
    return done


def time_parallel_capacity(cores: int, seconds: float = 4.0) -> float:
    """Verifications per second with every core verifying back to back (one process each):
    what the machine can hash at most. Two cores need not give twice one core's rate: argon2
    is bound by memory bandwidth, which the cores of a virtual machine may share."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(cores) as pool:
        pool.map(_verify_for, [0.3] * cores)  # warm: imports, first allocation
        started = time.monotonic()
        counts = pool.map(_verify_for, [seconds] * cores)
        elapsed = time.monotonic() - started
    return round(sum(counts) / elapsed, 2)


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in (
        "tokenguard",
        "starlette",
        "Flask",
        "uvicorn",
        "gunicorn",
        "httpx",
        "argon2-cffi",
        "redis",
    ):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "-"
    return out


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.0f}"


def _verdict(met: bool) -> str:
    return "met" if met else "**missed**"


def markdown(report: dict[str, Any]) -> str:
    meta = report["meta"]
    verify = meta["argon2_verify"]
    lines = [
        f"Command: `{meta['command']}` — {meta['date']}",
        "",
        f"Machine: {meta['machine']}; load average before {meta['load_before']}, "
        f"after {meta['load_after']}; {meta['seconds_total']} s; {meta['clients']} flood "
        f"clients at nice {meta.get('flood_nice', 0)} for {meta['seconds']:g} s",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        "",
        f"One argon2id verification (t={verify['time_cost']}, m={verify['memory_cost_kib']} KiB, "
        f"p={verify['parallelism']}): {verify['ms']} ms (median of {verify['runs_ms']}); "
        f"{meta['cores']} cores; target: completed logins/s ≥ {LOGIN_SHARE:.0%} x "
        f"{meta['cores']} / {verify['ms'] / 1000:.4f} s = **{meta['logins_target_per_s']}/s**",
        "",
        f"Every core verifying back to back (one process each, no server): "
        f"{meta.get('parallel_capacity_per_s', '-')} verifications/s, what this machine can hash "
        f"at most; completed logins are also given as a share of it below.",
        "",
    ]
    targets = report["targets"]
    done = {name: t for name, t in targets.items() if "skipped" not in t}
    for name, target in targets.items():
        if "skipped" in target:
            lines += [f"{name}: **not run**: {target['skipped']}", ""]
    if not done:
        return "\n".join(lines)
    lines += [
        "#### Targets",
        "",
        "| target | peak RSS per worker | poller | logins/s |",
        "|---|---|---|---|",
    ]
    for t in done.values():
        lines.append(
            f"| {t['label']} | {_verdict(t['memory_met'])} | "
            f"{_verdict(t['poller']['met'])} | {_verdict(t['logins_met'])} |"
        )
    lines += [
        "",
        "#### Memory per worker (MiB)",
        "",
        "| target | worker | idle | peak | bound | verdict |",
        "|---|---|---:|---:|---:|---|",
    ]
    for t in done.values():
        for w in t["workers"]:
            lines.append(
                f"| {t['label']} | {w['pid']} | {_mib(w['idle_bytes'])} | "
                f"{_mib(w['peak_bytes'])} | {_mib(w['bound_bytes'])} | "
                f"{_verdict(w['met'])} |"
            )
    lines += [
        "",
        "Bound: idle + concurrency x 64 MiB + 100 MB; concurrency per worker: "
        + ", ".join(f"{n} {t['concurrency_per_worker']}" for n, t in done.items())
        + ".",
        "",
        "#### The logged-in client, `GET /users/me` back to back",
        "",
        "| target | polls | statuses | p50 ms | p99 ms | max ms | verdict |",
        "|---|---:|---|---:|---:|---:|---|",
    ]
    for t in done.values():
        p = t["poller"]
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(p["statuses"].items()))
        lines.append(
            f"| {t['label']} | {p['polls']} | {statuses} | {p['p50_ms']} | "
            f"{p['p99_ms']} | {p['max_ms']} | {_verdict(p['met'])} |"
        )
    lines += [
        "",
        f"#### Logins ({next(iter(done.values()))['clients']} clients)",
        "",
        "| target | answered | answered/s | 401 | 503 | 429 | other | completed/s "
        "(401+200) | of the machine's capacity | verdict |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    capacity = report["meta"].get("parallel_capacity_per_s")
    for t in done.values():
        g = t["logins"]
        share = f"{g['completed_per_s'] / capacity:.0%}" if capacity else "-"
        b = g["by_status"]
        other = ", ".join(f"{s}: {n}" for s, n in g["other_statuses"].items() if s != "200")
        lines.append(
            f"| {t['label']} | {g['answered']} | {g['answered_per_s']} | {b['401']} | "
            f"{b['503']} | {b['429']} | {b['other']}{f' ({other})' if other else ''} | "
            f"{g['completed_per_s']} | {share} | {_verdict(t['logins_met'])} |"
        )
    lines += [
        "",
        "| target | kind | answers by status | median ms by status |",
        "|---|---|---|---|",
    ]
    for t in done.values():
        g = t["logins"]
        for kind, counts in g["by_kind"].items():
            medians = ", ".join(f"{s}: {g['median_ms'].get(f'{kind}|{s}')}" for s in counts)
            answers = ", ".join(f"{s}: {n}" for s, n in sorted(counts.items()))
            lines.append(f"| {t['label']} | {kind} | {answers} | {medians} |")
    lines += [
        "",
        "Load average per target (1 min, before → after): "
        + "; ".join(f"{n} {t['load_before'][0]} → {t['load_after'][0]}" for n, t in done.items())
        + ". Client CPU (the flood's own process): "
        + "; ".join(f"{n} {t['logins']['client_cpu_s']} s" for n, t in done.items())
        + ".",
    ]
    for t in done.values():
        lines += [f"- {t['label']}: {note}" for note in t["notes"]]
    return "\n".join(lines) + "\n"


# -- main -------------------------------------------------------------------------------------------


@contextmanager
def maybe_redis(needed: bool) -> Iterator[str | None]:
    if not needed:
        yield None
        return
    with private_redis() as url:
        yield url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: 2 s, 20 clients, no Directus"
    )
    parser.add_argument("--seconds", type=float, default=None, help="flood length (default 30)")
    parser.add_argument("--clients", type=int, default=None, help="flood clients (default 200)")
    parser.add_argument(
        "--targets",
        default=None,
        help="a subset of starlette,flask,directus (default: all; --quick: starlette,flask)",
    )
    parser.add_argument(
        "--gunicorn-threads",
        type=int,
        default=128,
        help="threads per gunicorn worker (default 128: each login holds one "
        "for LOGIN_STALL_TIME, 500 ms)",
    )
    parser.add_argument(
        "--directus-script",
        type=Path,
        default=ROOT.parent / "shared" / "tools" / "directus-real.sh",
        help="the script that installs and starts Directus "
        "(default ../shared/tools/directus-real.sh)",
    )
    parser.add_argument(
        "--directus-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "tokenguard-flood-directus",
        help="where Directus is installed, kept for the next run",
    )
    parser.add_argument(
        "--flood-nice",
        type=int,
        default=10,
        help="niceness of the flood's own process (default 10; 0 to share the cores evenly "
        "with the servers)",
    )
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    parser.add_argument("--markdown", type=Path, help="also write the tables here")
    args = parser.parse_args(argv)
    seconds = args.seconds if args.seconds is not None else (2.0 if args.quick else 30.0)
    clients = args.clients if args.clients is not None else (20 if args.quick else 200)
    default_targets = "starlette,flask" if args.quick else ",".join(TARGET_NAMES)
    wanted = [t.strip() for t in (args.targets or default_targets).split(",") if t.strip()]
    unknown = set(wanted) - set(TARGET_NAMES)
    if unknown or seconds <= 0 or clients < 1:
        parser.error(f"bad --targets/--seconds/--clients: {sorted(unknown) or ''}")
    started = time.monotonic()
    cores = os.cpu_count() or 1
    load_before = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    log("timing one argon2 verification")
    verify = time_verification()
    logins_target = round(LOGIN_SHARE * cores / (verify["ms"] / 1000), 1)
    log("timing every core verifying at once")
    capacity = time_parallel_capacity(cores)
    report: dict[str, Any] = {
        "meta": {
            "command": " ".join(
                ["python -m benchmarks.flood", *(argv if argv is not None else sys.argv[1:])]
            ),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": machine(),
            "cores": cores,
            "versions": versions(),
            "load_before": load_before,
            "argon2_verify": verify,
            "logins_target_per_s": logins_target,
            "parallel_capacity_per_s": capacity,
            "clients": clients,
            "seconds": seconds,
            "flood_nice": args.flood_nice,
        },
        "targets": {},
    }
    needs_redis = any(t in ("starlette", "flask") for t in wanted)
    if needs_redis and shutil.which("redis-server") is None:
        parser.error("redis-server is not installed (the tokenguard targets keep sessions there)")
    with (
        tempfile.TemporaryDirectory(prefix="tokenguard-flood-") as tmp,
        maybe_redis(needs_redis) as redis_url,
    ):
        for name in wanted:
            log(f"{name}: starting")
            try:
                if name == "directus":
                    server = start_directus(args.directus_script, args.directus_dir)
                else:
                    assert redis_url is not None
                    server = start_tokenguard(
                        name, Path(tmp) / name, redis_url, args.gunicorn_threads
                    )
            except (RuntimeError, OSError, subprocess.SubprocessError, httpx.HTTPError) as exc:
                log(f"{name}: not run: {exc}")
                report["targets"][name] = {"skipped": str(exc)}
                continue
            try:
                log(f"{name}: flooding {server.url} for {seconds:g} s with {clients} clients")
                result = measure(server, clients, seconds, args.flood_nice)
            except (RuntimeError, OSError, httpx.HTTPError) as exc:
                log(f"{name}: failed: {exc}")
                report["targets"][name] = {"skipped": f"failed: {exc}"}
                continue
            finally:
                server.stop()
            result["logins_met"] = result["logins"]["completed_per_s"] >= logins_target
            report["targets"][name] = result
    return finish_report(report, started, markdown, args.json, args.markdown)


if __name__ == "__main__":
    sys.exit(main())
