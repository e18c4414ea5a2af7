"""Many workers booting at once on a fresh database: ``gunicorn -w 4`` and ``uvicorn --workers
4`` (as ``examples/run.sh`` runs them, with ``WEB_CONCURRENCY=4``) on a fresh SQLite file, and
on a fresh PostgreSQL database after ``tokenguard db migrate`` run four times at once.

Every worker seeds the administrator from ``ADMIN_EMAIL``/``ADMIN_PASSWORD`` (at import, or in
an ASGI example's lifespan); they race, and each must boot anyway. A server passes when a login works, its master is still up
with all four workers, and every worker answered (each logs its PID with each request).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.helpers.pg_server import PgServer
from tests.helpers.servers import ROOT, Server, serve
from tests.helpers.tokens import SECRET

pytestmark = pytest.mark.e2e

WORKERS = 4
ADMIN = {"email": "admin@example.com", "password": "correct horse battery staple"}
ENV = {
    "SECRET": SECRET,
    "ADMIN_EMAIL": ADMIN["email"],
    "ADMIN_PASSWORD": ADMIN["password"],
    "LOGIN_STALL_TIME": "0",
    "WEB_CONCURRENCY": str(WORKERS),
}
# gunicorn writes the worker's PID (``<1234>``) in each access-log line.
GUNICORN_PIDS = ["--access-logfile", "-", "--access-logformat", "pid=%(p)s %(r)s %(s)s"]


def _uvicorn_pids(tmp_path: Path) -> list[str]:
    """uvicorn options for an access log that names the worker's PID."""
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"pid": {"format": "pid=<%(process)d> %(message)s"}},
        "handlers": {
            "out": {"class": "logging.StreamHandler", "formatter": "pid", "stream": "ext://sys.stdout"}
        },
        "loggers": {
            "uvicorn": {"handlers": ["out"], "level": "INFO"},
            "uvicorn.access": {"handlers": ["out"], "level": "INFO", "propagate": False},
        },
    }
    path = tmp_path / "log-config.json"
    path.write_text(json.dumps(config))
    return ["--log-config", str(path)]


def _example(which: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "examples.serve", which, *extra]


def _workers(pid: int) -> set[int]:
    """The server's children: its workers (and, for uvicorn, maybe multiprocessing's helper)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(p) for p in path.read_text().split()} if path.exists() else set()


def _seen(server: Server) -> set[int]:
    """The PIDs that answered a request (access-log lines; not the master's own lines)."""
    return {int(p) for p in re.findall(r"pid=<(\d+)>[^\n]*GET /", server.output())}


def _check(server: Server, me: str = "/users/me") -> None:
    """A login works; every worker answers; the master is up with all its workers."""
    login = httpx.post(f"{server.url}/auth/login", json=ADMIN, timeout=30)
    assert login.status_code == 200, login.text
    token = login.json()["data"]["access_token"]
    headers = {"Authorization": f"Bearer {token}"}

    def call(_: int) -> int:
        # A new connection each time, so that any worker may accept it.
        return httpx.get(server.url + me, headers=headers, timeout=30).status_code

    deadline = time.monotonic() + 60
    with ThreadPoolExecutor(16) as pool:
        while True:
            assert set(pool.map(call, range(64))) == {200}
            workers = _workers(server.process.pid)
            if len(_seen(server) & workers) >= WORKERS or time.monotonic() > deadline:
                break
    assert server.process.poll() is None, server.output()
    seen = _seen(server)
    assert len(seen) == WORKERS and seen <= workers, (seen, workers, server.output())
    log = server.output()
    assert "Worker failed to boot" not in log and "Traceback" not in log, log


def _run(argv: Sequence[str], env: dict[str, str], tmp_path: Path, me: str = "/users/me") -> None:
    with serve(argv, env, tmp_path, ready_path="/ping", timeout=60) as server:
        _check(server, me)


# -- a fresh SQLite file ------------------------------------------------------------------------


def test_gunicorn_four_workers_on_a_fresh_sqlite_file(tmp_path: Path) -> None:
    env = {**ENV, "DB_FILENAME": str(tmp_path / "fresh.db")}
    _run(_example("flask", *GUNICORN_PIDS), env, tmp_path)


def test_uvicorn_four_workers_on_a_fresh_sqlite_file(tmp_path: Path) -> None:
    env = {**ENV, "DB_FILENAME": str(tmp_path / "fresh.db")}
    _run(_example("starlette", *_uvicorn_pids(tmp_path)), env, tmp_path)


# -- a fresh PostgreSQL database ----------------------------------------------------------------


@pytest.fixture
def database(pg_server: PgServer) -> Iterator[dict[str, str]]:
    """A new database in the tests' cluster, and the environment naming it."""
    name = f"tg_boot_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {
            **ENV,
            "DB_CLIENT": "pg",
            "DB_HOST": "127.0.0.1",
            "DB_PORT": str(pg_server.port),
            "DB_DATABASE": name,
            "DB_USER": "tokenguard",
        }
    finally:
        with psycopg.connect(pg_server.conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def _migrate_at_once(env: dict[str, str], times: int) -> list[subprocess.CompletedProcess[str]]:
    """``tokenguard db migrate`` started ``times`` times at once."""
    full = {**os.environ, **env}
    full["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), full.get("PYTHONPATH")]))
    argv = [sys.executable, "-m", "tokenguard", "db", "migrate"]
    processes = [
        subprocess.Popen(argv, env=full, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(times)
    ]
    done = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(argv, process.returncode, out, err))
    return done


@pytest.mark.pg
def test_concurrent_migrations_apply_each_step_once(database: dict[str, str], pg_server: PgServer) -> None:
    from tokenguard.stores.pg_schema import MIGRATIONS

    runs = _migrate_at_once(database, WORKERS)
    assert [r.returncode for r in runs] == [0] * WORKERS, [r.stderr for r in runs]
    conninfo = f"{pg_server.conninfo} dbname={database['DB_DATABASE']}"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        rows = conn.execute("SELECT version FROM tokenguard_migrations ORDER BY version").fetchall()
    assert [v for (v,) in rows] == [m.version for m in MIGRATIONS]


@pytest.mark.pg
def test_four_workers_boot_on_a_fresh_postgres_database(database: dict[str, str], tmp_path: Path) -> None:
    runs = _migrate_at_once(database, WORKERS)
    assert [r.returncode for r in runs] == [0] * WORKERS, [r.stderr for r in runs]
    # gunicorn: four Flask workers seed the administrator into the empty tables at once.
    first = tmp_path / "gunicorn"
    first.mkdir()
    _run(_example("flask", *GUNICORN_PIDS), database, first)
    # uvicorn: four workers of an ASGI app on the same database.
    second = tmp_path / "uvicorn"
    second.mkdir()
    uvicorn = [
        sys.executable, "-m", "uvicorn", "tests.e2e.auth_app:application",
        "--host", "127.0.0.1", "--port", "{port}", "--no-proxy-headers",
        *_uvicorn_pids(second),
    ]  # fmt: skip
    _run(uvicorn, database, second, me="/whoami")


@pytest.mark.pg
def test_the_starlette_example_boots_four_workers_on_a_fresh_postgres_database(
    database: dict[str, str], tmp_path: Path
) -> None:
    # The ASGI example's user store is an async PostgreSQL one: each worker seeds the
    # administrator in its lifespan, awaited (tokenguard.users.aseed_from_env), all at once.
    runs = _migrate_at_once(database, WORKERS)
    assert [r.returncode for r in runs] == [0] * WORKERS, [r.stderr for r in runs]
    _run(_example("starlette", *_uvicorn_pids(tmp_path)), database, tmp_path)


@pytest.mark.pg
def test_migrations_released_at_the_same_instant(database: dict[str, str], pg_server: PgServer) -> None:
    # Processes start a little apart; threads behind a barrier reach the database together,
    # which is when two migrators would both create the tables without the advisory lock.
    import threading

    from tokenguard.stores.pg_schema import MIGRATIONS, migrate

    conninfo = f"{pg_server.conninfo} dbname={database['DB_DATABASE']}"
    barrier = threading.Barrier(8)

    def one(_: int) -> int:
        barrier.wait()
        return len(migrate(conninfo))

    with ThreadPoolExecutor(8) as pool:
        applied = list(pool.map(one, range(8)))
    assert sum(applied) == len(MIGRATIONS)
