"""End to end, without Redis: revoked access tokens are refused by both workers of a real
uvicorn (``--workers 2``) whose sessions live in PostgreSQL (``LISTEN``/``NOTIFY``) or in one
SQLite file (a 50 ms poller), whatever revoked them: a json-mode logout through one worker,
or the ``tokenguard`` command from another process (suspend); and with PostgreSQL frozen or
killed, a revoked token is never accepted."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_pg_server import database  # noqa: F401 (a fixture)
from tests.e2e.test_revocation_server import (
    PASSWORD,
    cli,
    login,
    refused_everywhere,
    served_by_both,
    whoami,
)
from tests.helpers.auth import SECRET
from tests.helpers.pg_server import PgServer
from tests.helpers.servers import Server, serve

pytestmark = [pytest.mark.e2e]

UVICORN = [
    sys.executable, "-m", "uvicorn", "tests.e2e.apps.revocation_app:asgi",
    "--host", "127.0.0.1", "--port", "{port}", "--log-level", "warning", "--workers", "2",
]  # fmt: skip


@pytest.fixture(params=["pg", "sqlite"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    if request.param == "pg":
        request.applymarker(pytest.mark.pg)
        environ: dict[str, str] = dict(request.getfixturevalue("database"))
        cli(environ, "db", "migrate")
        return environ
    return {"SECRET": SECRET, "LOGIN_STALL_TIME": "0", "DB_FILENAME": str(tmp_path / "users.db")}


def test_both_workers_refuse_a_revoked_token_without_redis(
    env: dict[str, str], tmp_path: Path
) -> None:
    cli(env, "users", "create", "ada@example.com", "--password-stdin", stdin=PASSWORD + "\n")
    with serve(UVICORN, env, tmp_path, ready_path="/", timeout=30) as server:
        # A json-mode logout, through whichever worker takes it.
        tokens = login(server)
        served_by_both(server, tokens["access_token"])
        kept = login(server)
        with httpx.Client(base_url=server.url, timeout=10) as http:
            out = http.post(
                "/auth/logout", json={"refresh_token": tokens["refresh_token"], "mode": "json"}
            )
            assert out.status_code == 204, out.text
        refused_everywhere(server, tokens["access_token"])
        served_by_both(server, kept["access_token"])  # the other session is untouched

        # The command line, from another process: suspend (the user's sessions and tokens).
        cli(env, "users", "suspend", "ada@example.com")
        refused_everywhere(server, kept["access_token"])
        cli(env, "users", "activate", "ada@example.com")


#: What :func:`status_of` says of a request that got no answer in time.
WAITED = 0


def status_of(server: Server, token: str) -> int:
    try:
        with httpx.Client(base_url=server.url, timeout=3) as own:
            return own.get("/whoami", headers={"authorization": f"Bearer {token}"}).status_code
    except httpx.TimeoutException:
        return WAITED


@pytest.mark.pg
def test_a_frozen_then_killed_postgresql_never_lets_a_revoked_token_through(
    own_pg: PgServer, tmp_path: Path
) -> None:
    env = {
        "SECRET": SECRET, "LOGIN_STALL_TIME": "0", "DB_CLIENT": "pg",
        "DB_CONNECTION_STRING": own_pg.conninfo,
    }  # fmt: skip
    cli(env, "users", "create", "ada@example.com", "--password-stdin", stdin=PASSWORD + "\n")
    with serve(UVICORN, env, tmp_path, ready_path="/", timeout=30) as server:
        kept, gone = login(server), login(server)
        served_by_both(server, kept["access_token"])
        with httpx.Client(base_url=server.url, timeout=10) as http:
            out = http.post(
                "/auth/logout", json={"refresh_token": gone["refresh_token"], "mode": "json"}
            )
            assert out.status_code == 204, out.text
        refused_everywhere(server, gone["access_token"])
        for outage in ("frozen", "killed"):
            if outage == "frozen":
                own_pg.pause()
            else:
                own_pg.stop()
            try:
                seen: dict[str, set[int]] = {"kept": set(), "gone": set()}
                deadline = time.monotonic() + 6  # past the listeners' 2 s bound
                while time.monotonic() < deadline:
                    for name, tokens in (("kept", kept), ("gone", gone)):
                        seen[name].add(status_of(server, tokens["access_token"]))
                # The revoked token: refused, or 503 (or no answer: a request waiting on a
                # frozen server's connection waits, see docs/stores/postgresql.md) once
                # nothing can vouch for it; never 200.
                assert seen["gone"] <= {401, 503, WAITED}, (outage, seen)
                assert seen["kept"] <= {200, 503, WAITED}, (outage, seen)
                if outage == "killed":
                    assert 503 in seen["kept"], seen  # the workers noticed and stopped trusting
            finally:
                if outage == "frozen":
                    own_pg.resume()
                else:
                    own_pg.start()
            # Back: caught up from the table, the kept token works, the other stays refused.
            deadline = time.monotonic() + 20
            while whoami(server, kept["access_token"]).status_code != 200:
                assert time.monotonic() < deadline, outage
                time.sleep(0.1)
            served_by_both(server, kept["access_token"])
            refused_everywhere(server, gone["access_token"])
