"""How long until every process refuses a revoked access token?

Four (``--processes``) separate uvicorn processes, each on its own free 127.0.0.1 port, share
one session store: a private ``redis-server`` (``--store redis``), a private PostgreSQL cluster
(``--store postgres``: ``DB_CLIENT=pg``) or one SQLite file (``--store sqlite``:
``DB_FILENAME``). Separate ports let the benchmark ask each process by name; ``uvicorn
--workers 4`` would hand a request to whichever worker accepts it. Users are the same in every
process (an in-memory store seeded alike, argon2 with small costs and ``LOGIN_STALL_TIME=0`` so
that a login costs milliseconds), so the session store is the only thing the processes share.

For each of ``--revocations`` (default 1,200) revocations, one after the other:

1. log in (json mode) at one process, and present the access token twice at every process
   (``GET /whoami``: 200 each time; the second answer comes from the token cache and the
   header memo, so the revocation has to beat the cached path);
2. release one poller thread per process, each sending ``GET /whoami`` with that token every
   ``--poll-gap-ms`` (1 ms; 0: back to back) over its own keep-alive connection, and at the
   same instant (``t0``) revoke the token
   at process ``i mod N``, cycling through three ways: ``POST /auth/logout`` (the session store
   ends the session), ``TokenGuard.arevoke_session`` and ``TokenGuard.arevoke_user`` (the
   public API, called by the app's ``POST /bench/revoke-session`` and
   ``/bench/revoke-user`` for the caller's own session or user);
3. each poller stops at its process's first 401; its time is ``t(401) - t0``, one HTTP round
   trip included. The revocation is refused by every process at the latest of those.

It reports p50/p90/p99/max of that "every process" time, of the issuing process alone and of
the others, per way of revoking, and against the target (p99 <= 100 ms). A process that still
answers 200 after ``--deadline`` seconds is a miss; when the first revocation is missed the run
stops there (that store does not carry revocations across processes in this build) and says so.

    python -m benchmarks.revocation                      # Redis, 4 processes, 1,200 revocations
    python -m benchmarks.revocation --store postgres     # LISTEN/NOTIFY (needs initdb, psycopg)
    python -m benchmarks.revocation --quick              # 2 processes, 12 revocations (smoke)
    python -m benchmarks.revocation --json rev.json --markdown rev.md

Traffic goes to 127.0.0.1 only; every poll loop has a deadline and every request a timeout.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.metadata
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .flood import percentile
from .redis_memory import private_redis
from .run import ROOT, finish_report, free_port, machine

STORES = ("redis", "postgres", "sqlite")
KINDS = ("logout", "session", "user")
TARGET_P99_MS = 100.0
PASSWORD = "revocation benchmark password"
#: A fixed namespace: every process derives the same user ids.
_NAMESPACE = uuid.UUID("0b6f2d4e-7a1c-4e59-9d3a-2f8c6b1e4a70")


def log(*parts: Any) -> None:
    print("[revocation]", *parts, file=sys.stderr, flush=True)


def user_email(index: int) -> str:
    return f"rv-{index}@example.com"


# -- the server side (each uvicorn process imports this module) -------------------------------


def create_app() -> Any:
    """uvicorn factory: tokenguard (settings from the environment) around a tiny app.

    ``GET /whoami`` answers 200 with a token, 401 without; ``POST /bench/revoke-session`` and
    ``/bench/revoke-user`` revoke the caller's own session or user through the public API;
    ``GET /bench/state`` tells whether this process's revocation list is trusted (its feed
    subscribed and caught up) and how many entries it holds.
    """
    from argon2 import PasswordHasher

    from tokenguard import TokenGuard, TokenGuardMiddleware
    from tokenguard.auth.passwords import Passwords
    from tokenguard.stores.base import User
    from tokenguard.stores.memory import MemoryUserStore

    # Small costs: the benchmark measures revocation, not argon2 (one login each).
    passwords = Passwords(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    users = MemoryUserStore()
    hashed = passwords.hash(PASSWORD)
    for index in range(int(os.environ.get("REVOCATION_BENCH_USERS", "64"))):
        users.create(
            User(
                id=str(uuid.uuid5(_NAMESPACE, str(index))),
                email=user_email(index),
                password_hash=hashed,
                role="revocation-bench",
                app_access=True,
            )
        )
    guard = TokenGuard(flavour="async", users=users, passwords=passwords)

    async def answer(send: Any, status: int, body: bytes) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await guard.aclose()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        principal = scope.get("user")
        user = getattr(principal, "user", None)
        path, method = scope["path"], scope["method"]
        if path == "/bench/state":
            rv = guard.guard.revocations
            state = {"pid": os.getpid(), "trusted": rv.trusted, "entries": len(rv)}
            await answer(send, 200, json.dumps(state).encode())
        elif user is None:
            await answer(send, 401, b'{"errors":[{"message":"anonymous"}]}')
        elif path == "/bench/revoke-session" and method == "POST" and principal.sid:
            await guard.arevoke_session(principal.sid)
            await answer(send, 200, b'{"data":"session revoked"}')
        elif path == "/bench/revoke-user" and method == "POST":
            await guard.arevoke_user(user)
            await answer(send, 200, b'{"data":"user revoked"}')
        else:
            await answer(send, 200, json.dumps({"data": {"user": user}}).encode())

    return TokenGuardMiddleware(app, guard=guard)


# -- the stores -----------------------------------------------------------------------------------


@contextmanager
def private_postgres() -> Iterator[str]:
    """A private PostgreSQL cluster (the tests' helper: initdb on a free port), migrated;
    yields its connection string."""
    sys.path.insert(0, str(ROOT))
    from tests.helpers.pg_server import PgServer
    from tokenguard.stores.pg_schema import migrate

    server = PgServer()
    try:
        server.start()
        migrate(server.conninfo)
        yield server.conninfo
    finally:
        server.cleanup()


@contextmanager
def store_settings(store: str, workdir: Path) -> Iterator[dict[str, str]]:
    """The environment that puts every process's sessions in ``store``."""
    if store == "redis":
        with private_redis() as url:
            yield {"REDIS": url}
    elif store == "postgres":
        with private_postgres() as conninfo:
            yield {"DB_CLIENT": "pg", "DB_CONNECTION_STRING": conninfo}
    else:
        yield {"DB_FILENAME": str(workdir / "sessions.db")}


# -- the servers ----------------------------------------------------------------------------------


@dataclass
class Process:
    port: int
    popen: subprocess.Popen[bytes]
    log_path: Path

    def tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-2000:]


def server_command(port: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "--factory", "benchmarks.revocation:create_app",
            "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
            "--log-level", "warning"]  # fmt: skip


def start_processes(count: int, env: dict[str, str], workdir: Path, users: int) -> list[Process]:
    base = {k: v for k, v in os.environ.items() if k not in ("REDIS", "DB_CLIENT", "DB_FILENAME")}
    base |= {
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(ROOT), str(ROOT / "src"), os.environ.get("PYTHONPATH")])
        ),
        "SECRET": secrets.token_urlsafe(48),
        "LOGIN_STALL_TIME": "0",
        "TOKENGUARD_LOGIN_ACCOUNT_POINTS": "0",  # the same users log in again and again
        "REVOCATION_BENCH_USERS": str(users),
        **env,
    }
    processes: list[Process] = []
    try:
        for _ in range(count):
            port = free_port()
            log_path = workdir / f"server-{port}.log"
            with log_path.open("wb") as out:
                popen = subprocess.Popen(server_command(port), cwd=ROOT, env=base, stdout=out,
                                         stderr=subprocess.STDOUT)  # fmt: skip
            processes.append(Process(port, popen, log_path))
        for process in processes:
            deadline = time.monotonic() + 60
            while True:
                if process.popen.poll() is not None:
                    raise RuntimeError(f"a server exited while starting:\n{process.tail()}")
                with suppress(OSError, http.client.HTTPException):
                    if request(process.port, "GET", "/bench/state")[0] == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"a server did not start in 60 s:\n{process.tail()}")
                time.sleep(0.2)
    except BaseException:
        stop_processes(processes)
        raise
    return processes


def stop_processes(processes: list[Process]) -> None:
    for process in processes:
        if process.popen.poll() is None:
            process.popen.terminate()
    for process in processes:
        try:
            process.popen.wait(15)
        except subprocess.TimeoutExpired:
            process.popen.kill()
            process.popen.wait(5)


# -- the client -----------------------------------------------------------------------------------


def request(
    port: int,
    method: str,
    path: str,
    *,
    token: str | None = None,
    body: dict[str, Any] | None = None,
    conn: http.client.HTTPConnection | None = None,
) -> tuple[int, bytes]:
    """One request (over ``conn`` when given, kept alive); status and body."""
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Host": "127.0.0.1"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException):
        conn.close()  # reconnects on the next request
        raise
    finally:
        if own:
            conn.close()


class Poller(threading.Thread):
    """Polls one process with the token it is given until the first 401 (or the deadline)."""

    def __init__(self, port: int, gap_s: float = 0.0) -> None:
        super().__init__(daemon=True)
        self.port = port
        #: Pause between two polls (0: back to back, the finest resolution and the most load).
        self.gap_s = gap_s
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.go = threading.Event()
        self.done = threading.Event()
        self.token = ""
        self.deadline = 0.0
        self.refused_at: float | None = None
        self.polls = 0
        self.error: str | None = None
        self.quit = False

    def arm(self, token: str, deadline: float) -> None:
        self.token, self.deadline = token, deadline
        self.refused_at, self.polls, self.error = None, 0, None
        self.done.clear()

    def run(self) -> None:
        while True:
            self.go.wait()
            self.go.clear()
            if self.quit:
                return
            try:
                while time.perf_counter() < self.deadline:
                    status, _ = request(self.port, "GET", "/whoami", token=self.token,
                                        conn=self.conn)  # fmt: skip
                    self.polls += 1
                    if status == 401:
                        self.refused_at = time.perf_counter()
                        break
                    if status != 200:
                        self.error = f"status {status}"
                        break
                    if self.gap_s:
                        time.sleep(self.gap_s)
            except (OSError, http.client.HTTPException) as exc:
                self.error = type(exc).__name__
            self.done.set()


def login(port: int, email: str, conn: http.client.HTTPConnection) -> dict[str, Any]:
    status, body = request(port, "POST", "/auth/login", conn=conn,
                           body={"email": email, "password": PASSWORD})  # fmt: skip
    if status != 200:
        raise RuntimeError(f"login: {status} {body[:200]!r}")
    data: dict[str, Any] = json.loads(body)["data"]
    return data


def wait_trusted(ports: list[int], seconds: float = 30.0) -> None:
    """Until every process's revocation list is trusted (its feed subscribed, caught up)."""
    deadline = time.monotonic() + seconds
    while True:
        states = [json.loads(request(p, "GET", "/bench/state")[1]) for p in ports]
        if all(s["trusted"] for s in states):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"revocation lists not trusted after {seconds:.0f} s: {states}")
        time.sleep(0.1)


def revoke(kind: str, port: int, session: dict[str, Any], conn: http.client.HTTPConnection) -> int:
    if kind == "logout":
        status, _ = request(port, "POST", "/auth/logout", conn=conn,
                            body={"refresh_token": session["refresh_token"]})  # fmt: skip
    else:
        status, _ = request(port, "POST", f"/bench/revoke-{kind}", conn=conn,
                            token=session["access_token"])  # fmt: skip
    return status


def measure(
    ports: list[int], revocations: int, users: int, deadline_s: float, gap_s: float = 0.0
) -> dict[str, Any]:
    """Run the revocations; every one's per-process refusal times (ms from t0)."""
    count = len(ports)
    conns = [http.client.HTTPConnection("127.0.0.1", p, timeout=10) for p in ports]
    pollers = [Poller(p, gap_s) for p in ports]
    for poller in pollers:
        poller.start()
    # Every process sees a token once, which starts its subscriber; then wait for catch-up.
    first = login(ports[0], user_email(0), conns[0])
    for port, conn in zip(ports, conns, strict=True):
        request(port, "GET", "/whoami", token=first["access_token"], conn=conn)
    wait_trusted(ports)
    rows: list[dict[str, Any]] = []
    try:
        for i in range(revocations):
            kind = KINDS[i % len(KINDS)]
            issuer = i % count
            at = (i + 1) % count
            session = login(ports[at], user_email(i % users), conns[at])
            token = session["access_token"]
            for _ in range(2):  # the second answer is the cached path's
                for port, conn in zip(ports, conns, strict=True):
                    status, body = request(port, "GET", "/whoami", token=token, conn=conn)
                    if status != 200:
                        raise RuntimeError(f"a fresh token was refused: {status} {body[:200]!r}")
            t0 = time.perf_counter()
            for poller in pollers:
                poller.arm(token, t0 + deadline_s)
                poller.go.set()
            status = revoke(kind, ports[issuer], session, conns[issuer])
            answered = time.perf_counter()
            for poller in pollers:
                poller.done.wait(deadline_s + 15)
            rows.append(
                {
                    "kind": kind,
                    "issuer": issuer,
                    "status": status,
                    "answer_ms": (answered - t0) * 1000,
                    "refused_ms": [
                        None if p.refused_at is None else (p.refused_at - t0) * 1000
                        for p in pollers
                    ],
                    "polls": [p.polls for p in pollers],
                    "errors": [p.error for p in pollers if p.error],
                }
            )
            if i == 0 and None in rows[0]["refused_ms"]:
                break  # not carried across processes: 1,000 more deadlines would say no more
            if (i + 1) % 200 == 0:
                log(f"{i + 1} revocations")
    finally:
        for poller in pollers:
            poller.quit = True
            poller.go.set()
        for conn in conns:
            conn.close()
    return {"rows": rows}


def distribution(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50_ms": round(statistics.median(values), 2),
        "p90_ms": round(percentile(values, 90) or 0.0, 2),
        "p99_ms": round(percentile(values, 99) or 0.0, 2),
        "max_ms": round(max(values), 2),
    }


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    complete = [r for r in rows if None not in r["refused_ms"] and not r["errors"]]
    every = [max(r["refused_ms"]) for r in complete]
    issuing = [r["refused_ms"][r["issuer"]] for r in complete]
    others = [ms for r in complete for j, ms in enumerate(r["refused_ms"]) if j != r["issuer"]]
    after_answer = [max(0.0, max(r["refused_ms"]) - r["answer_ms"]) for r in complete]
    by_kind = {
        kind: distribution([max(r["refused_ms"]) for r in complete if r["kind"] == kind])
        for kind in KINDS
    }
    statuses: dict[str, int] = {}
    for r in rows:
        statuses[str(r["status"])] = statuses.get(str(r["status"]), 0) + 1
    every_d = distribution(every)
    return {
        "revocations": len(rows),
        "complete": len(complete),
        "missed": sum(1 for r in rows if None in r["refused_ms"]),
        "errors": [e for r in rows for e in r["errors"]][:20],
        "revoke_statuses": statuses,
        "every_process": every_d,
        "issuing_process": distribution(issuing),
        "other_processes": distribution(others),
        "every_process_after_answer": distribution(after_answer),
        "revoke_answer": distribution([r["answer_ms"] for r in rows]),
        "by_kind": by_kind,
        "polls_per_process": round(statistics.mean(p for r in rows for p in r["polls"]), 1)
        if rows
        else 0,
        "target_met": bool(every)
        and len(complete) == len(rows)
        and every_d["p99_ms"] <= TARGET_P99_MS,
    }


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("tokenguard", "uvicorn", "redis", "psycopg"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "-"
    return out


def markdown(report: dict[str, Any]) -> str:
    meta = report["meta"]
    lines = [
        f"Command: `{meta['command']}` — {meta['date']}",
        "",
        f"Machine: {meta['machine']}; load average before {meta['load_before']}, after "
        f"{meta['load_after']}; {meta['seconds_total']} s",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        "",
        f"Server: `{meta['server_command']}`; polls "
        + ("back to back" if not meta["poll_gap_ms"] else f"{meta['poll_gap_ms']:g} ms apart")
        + f"; a miss after {meta['deadline_s']:g} s.",
        "",
    ]
    for store, result in report["stores"].items():
        if "skipped" in result:
            lines += [f"{store}: **not measured**: {result['skipped']}", ""]
            continue
        s = result["summary"]
        lines += [
            f"#### {store}: {meta['processes']} processes, {s['revocations']} revocations",
            "",
            f"Refused by every process within {s['complete']} of {s['revocations']} "
            f"(missed: {s['missed']}; revocation answers: {s['revoke_statuses']}; "
            f"{s['polls_per_process']} polls per process and revocation).",
            "",
            "| ms from the revocation sent to the first 401 | n | p50 | p90 | p99 | max |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        named = [
            ("**every process** (the latest of the N)", s["every_process"]),
            ("the process that revoked", s["issuing_process"]),
            ("each other process", s["other_processes"]),
            ("every process, after the revocation's answer", s["every_process_after_answer"]),
            ("the revocation's own answer", s["revoke_answer"]),
        ] + [(f"every process, by {kind}", d) for kind, d in s["by_kind"].items()]
        for name, d in named:
            if d["n"]:
                lines.append(
                    f"| {name} | {d['n']} | {d['p50_ms']} | {d['p90_ms']} | {d['p99_ms']} | "
                    f"{d['max_ms']} |"
                )
        verdict = "met" if s["target_met"] else "**missed**"
        lines += ["", f"Target: every process refuses within p99 ≤ {TARGET_P99_MS:.0f} ms: "
                  f"{verdict}.", ""]  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--store", default="redis",
                        help="comma-separated: redis, postgres, sqlite (default redis)")  # fmt: skip
    parser.add_argument("--processes", type=int, default=None, help="server processes (4)")
    parser.add_argument("--revocations", type=int, default=None, help="how many (1200)")
    parser.add_argument("--users", type=int, default=64, help="distinct users logging in")
    parser.add_argument("--deadline", type=float, default=5.0,
                        help="seconds a process may take to refuse before it is a miss")  # fmt: skip
    parser.add_argument("--poll-gap-ms", type=float, default=1.0,
                        help="pause between two polls of a process (default 1; 0: back to back, "
                        "where the pollers load the servers as much as what they measure)")  # fmt: skip
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 2 processes, 12 revocations")  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    parser.add_argument("--markdown", type=Path, help="also write the tables here")
    args = parser.parse_args(argv)
    stores = [s.strip() for s in args.store.split(",") if s.strip()]
    processes = args.processes or (2 if args.quick else 4)
    revocations = args.revocations or (12 if args.quick else 1200)
    if (
        set(stores) - set(STORES)
        or processes < 1
        or revocations < 1
        or args.users < 1
        or args.poll_gap_ms < 0
    ):
        parser.error("bad --store/--processes/--revocations/--users")
    started = time.monotonic()
    report: dict[str, Any] = {
        "meta": {
            "command": " ".join(
                ["python -m benchmarks.revocation", *(argv if argv is not None else sys.argv[1:])]
            ),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": machine(),
            "versions": versions(),
            "load_before": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
            "processes": processes,
            "deadline_s": args.deadline,
            "poll_gap_ms": args.poll_gap_ms,
            "server_command": " ".join(server_command(0))
            .replace(sys.executable, "python")
            .replace("--port 0", "--port <free port>"),
        },
        "stores": {},
    }
    for store in stores:
        if store == "redis" and shutil.which("redis-server") is None:
            report["stores"][store] = {"skipped": "redis-server is not installed"}
            continue
        log(f"{store}: starting {processes} processes")
        with ExitStack() as stack:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tg-rev-")))
            try:
                env = stack.enter_context(store_settings(store, workdir))
                servers = start_processes(processes, env, workdir, args.users)
            except (RuntimeError, OSError, ImportError, subprocess.SubprocessError) as exc:
                log(f"{store}: not run: {exc}")
                report["stores"][store] = {"skipped": f"not started: {exc}"}
                continue
            stack.callback(stop_processes, servers)
            load = os.getloadavg()[0]
            try:
                result = measure(
                    [p.port for p in servers],
                    revocations,
                    args.users,
                    args.deadline,
                    args.poll_gap_ms / 1000,
                )
            except (RuntimeError, OSError, http.client.HTTPException) as exc:
                log(f"{store}: failed: {exc}")
                report["stores"][store] = {"skipped": f"failed: {exc}"}
                continue
            rows = result["rows"]
            summary = summarise(rows)
            entry: dict[str, Any] = {
                "summary": summary,
                "load_1min_before_after": [round(load, 2), round(os.getloadavg()[0], 2)],
                "rows": rows,
            }
            if len(rows) == 1 and summary["missed"]:
                entry = {
                    "skipped": "the first revocation did not reach every process within "
                    f"{args.deadline:g} s: this build does not carry revocations across "
                    f"processes with the {store} store",
                    "rows": rows,
                }
            report["stores"][store] = entry
            log(f"{store}: done")
    return finish_report(report, started, markdown, args.json, args.markdown)


if __name__ == "__main__":
    sys.exit(main())
