"""A private PostgreSQL cluster for the tests: ``initdb`` in a temp dir, ``postgres`` on
127.0.0.1 and a free port (never the machine's 5432), its socket in that dir, stopped by
``pg_ctl stop`` (and, failing that, by its PID) at the end.

PostgreSQL refuses to run as root: when the tests do, the cluster runs as the ``postgres``
OS user (``runuser``), in a directory given to that user. Each test gets its own schema
(:meth:`PgServer.fresh_schema`), reached through ``options=-csearch_path=<schema>`` in the
connection string, so tests never see each other's tables.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .redis_server import free_port

__all__ = ["PgServer", "own_pg", "pg_bindir", "pg_conninfo", "pg_empty", "pg_server"]

_USER = "tokenguard"


def pg_bindir() -> Path | None:
    """Where ``initdb``, ``pg_ctl`` and ``postgres`` are: on ``PATH``, ``pg_config
    --bindir``, or the newest ``/usr/lib/postgresql/<version>/bin`` (Debian's layout)."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl") and shutil.which("postgres"):
        return Path(os.path.realpath(found)).parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out and (Path(out) / "initdb").exists():
            return Path(out)
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0,
    )
    return Path(candidates[-1]).parent if candidates else None


class PgServer:
    """One PostgreSQL cluster of our own; :meth:`start`/:meth:`stop` may be repeated (same
    port, same data)."""

    def __init__(self) -> None:
        bindir = pg_bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL's initdb is not installed (run scripts/setup.sh)")
        self.bindir = bindir
        # Not under pytest's tmp_path: its parents are private to root, and the server may
        # run as another user.
        self.directory = Path(tempfile.mkdtemp(prefix="tokenguard-pg-"))
        self.data = self.directory / "data"
        self.socket_dir = self.directory / "socket"
        self.socket_dir.mkdir()
        self.log = self.directory / "postgres.log"
        self.port = free_port()
        while self.port == 5432:  # never the machine's own server's port
            self.port = free_port()
        self.pid: int | None = None
        #: The processes :meth:`pause` froze.
        self.paused: list[int] = []
        self._runas: list[str] = []
        if os.geteuid() == 0:
            # PostgreSQL will not run as root: Debian's package makes a `postgres` user.
            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                account = pwd.getpwnam("nobody")
            runuser = shutil.which("runuser") or "/usr/sbin/runuser"
            self._runas = [runuser, "-u", account.pw_name, "--"]
            for path in (self.directory, self.socket_dir):
                os.chown(path, account.pw_uid, account.pw_gid)
        self._initdb()
        # An interrupted test session still stops the server and removes its directory.
        atexit.register(self.cleanup)

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self._runas, *args], capture_output=True, text=True, timeout=timeout, check=False
        )

    def _initdb(self) -> None:
        done = self._run(
            str(self.bindir / "initdb"),
            "-D", str(self.data),
            "-U", _USER,
            "-A", "trust",
            "-E", "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr.strip()[-500:]}")

    @property
    def conninfo(self) -> str:
        """The cluster's ``postgres`` database over TCP on 127.0.0.1."""
        return f"host=127.0.0.1 port={self.port} user={_USER} dbname=postgres"

    def start(self, timeout: float = 30.0) -> None:
        """Start the server and wait until it accepts connections."""
        if self.pid is not None:
            raise RuntimeError("already running")
        options = " ".join(
            (
                f"-p {self.port}",
                "-c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories={self.socket_dir}",
                "-c max_connections=300",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c shared_buffers=32MB",
            )
        )
        done = self._run(
            str(self.bindir / "pg_ctl"),
            "start",
            "-D", str(self.data),
            "-l", str(self.log),
            "-o", options,
            "-w",
            "-t", str(int(timeout)),
            timeout=timeout + 10,
        )
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-1000:] if self.log.exists() else ""
            raise RuntimeError(f"PostgreSQL did not start: {done.stderr.strip()} {log}")
        self.pid = int((self.data / "postmaster.pid").read_text().split()[0])
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.conninfo, connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server this object started (``pg_ctl stop -m fast``; SIGKILL by PID if
        that fails), and wait until it is gone."""
        pid, self.pid = self.pid, None
        if pid is None:
            return
        done = self._run(
            str(self.bindir / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast", "-w",
            timeout=60,
        )
        if done.returncode != 0:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def processes(self) -> list[int]:
        """The postmaster and every process it started (backends, background workers)."""
        if self.pid is None:
            return []
        found = [self.pid]
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue  # gone meanwhile
            if int(stat.rsplit(")", 1)[1].split()[1]) == self.pid:  # its parent
                found.append(int(entry))
        return found

    def pause(self) -> list[int]:
        """Freeze the server (SIGSTOP to the postmaster and its children): the kernel still
        accepts connections and acknowledges bytes, nothing answers. Returns the PIDs."""
        self.paused = self.processes()
        for pid in self.paused:
            os.kill(pid, signal.SIGSTOP)
        return self.paused

    def resume(self) -> None:
        """Undo :meth:`pause` (SIGCONT)."""
        paused, self.paused = self.paused, []
        for pid in paused:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    def fresh_schema(self) -> str:
        """A new, empty schema; returns a connection string whose ``search_path`` is it."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {name}")
        return f"{self.conninfo} options='-csearch_path={name}'"

    def drop_schema(self, conninfo: str) -> None:
        """Drop a schema made by :meth:`fresh_schema` (best effort)."""
        import psycopg

        name = conninfo.rpartition("search_path=")[2].rstrip("'")
        try:
            with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=2) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        except psycopg.OperationalError:
            pass

    def cleanup(self) -> None:
        """Stop the server and remove its directory (idempotent)."""
        self.resume()  # a frozen server cannot stop
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
        atexit.unregister(self.cleanup)


# --------------------------------------------------------------------------- fixtures
# Imported by tests/conftest.py. A missing PostgreSQL is a failure, never a skip:
# scripts/setup.sh installs it.



@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """The tests' own PostgreSQL cluster, started once per test session."""
    server = PgServer()
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def own_pg() -> Iterator[PgServer]:
    """A migrated cluster for one test alone (it may stop, pause or kill it: the shared one
    must keep running)."""
    from tokenguard.stores.pg_schema import migrate

    server = PgServer()
    try:
        server.start()
        migrate(server.conninfo)
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def pg_empty(pg_server: PgServer) -> Iterator[str]:
    """A connection string to a new, empty schema (nothing migrated), dropped afterwards."""
    if pg_server.pid is None:  # a fault test stopped it and failed before restarting
        pg_server.start()
    conninfo = pg_server.fresh_schema()
    yield conninfo
    pg_server.drop_schema(conninfo)


@pytest.fixture
def pg_conninfo(pg_empty: str) -> str:
    """A connection string to a new schema that ``tokenguard db migrate`` has prepared."""
    from tokenguard.stores.pg_schema import migrate

    migrate(pg_empty)
    return pg_empty
