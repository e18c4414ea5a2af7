"""End to end, without Redis: revoked access tokens are refused by both workers of a real
uvicorn (``--workers 2``) whose sessions live in PostgreSQL (``LISTEN``/``NOTIFY``) or in one
SQLite file (a 50 ms poller), whatever revoked them: a json-mode logout through one worker,
or the ``tokenguard`` command from another process (suspend)."""

from __future__ import annotations

import sys
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
)
from tests.helpers.auth import SECRET
from tests.helpers.servers import serve

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
