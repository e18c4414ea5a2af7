"""End to end: uvicorn with two worker processes configured from the environment
(``DB_CLIENT=pg`` and Directus's ``DB_*`` names), on the tests' own PostgreSQL cluster; the
schema made and the user created by the ``tokenguard`` command."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.helpers.auth import SECRET
from tests.helpers.pg_server import PgServer
from tests.helpers.servers import serve

pytestmark = [pytest.mark.e2e, pytest.mark.pg]

UVICORN = [
    sys.executable, "-m", "uvicorn", "tests.e2e.auth_app:application",
    "--host", "127.0.0.1", "--port", "{port}", "--log-level", "warning", "--workers", "2",
]
PASSWORD = "correct horse battery staple"
TOKENGUARD = str(Path(sys.executable).parent / "tokenguard")


@pytest.fixture
def database(pg_server: PgServer) -> Iterator[dict[str, str]]:
    """A new database in the test cluster, and the environment naming it."""
    name = f"tg_e2e_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {
            "SECRET": SECRET,
            "LOGIN_STALL_TIME": "0",
            "DB_CLIENT": "pg",
            "DB_HOST": "127.0.0.1",
            "DB_PORT": str(pg_server.port),
            "DB_DATABASE": name,
            "DB_USER": "tokenguard",
        }
    finally:
        with psycopg.connect(pg_server.conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def cli(env: dict[str, str], *argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TOKENGUARD, *argv], input=stdin, env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True, text=True, timeout=60,
    )


def test_the_server_refuses_to_start_before_the_migration(
    database: dict[str, str], tmp_path: Path
) -> None:
    one_worker = UVICORN[: UVICORN.index("--workers")]  # a lone worker's failure ends uvicorn
    with pytest.raises(RuntimeError) as info, serve(one_worker, database, tmp_path, timeout=30):
        pass
    assert "server exited early" in str(info.value)
    assert "run `tokenguard db migrate`" in str(info.value)


def test_two_workers_share_the_database_and_one_refresh_wins(
    database: dict[str, str], tmp_path: Path
) -> None:
    migrated = cli(database, "db", "migrate")
    assert migrated.returncode == 0, migrated.stderr
    created = cli(database, "users", "create", "ada@example.com", "--app", "--password-stdin",
                  stdin=PASSWORD + "\n")
    assert created.returncode == 0, created.stderr
    user_id = created.stdout.strip()

    with serve(UVICORN, database, tmp_path, ready_path="/auth", timeout=30) as server, \
            httpx.Client(base_url=server.url, timeout=10) as http:
        login = http.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
        assert login.status_code == 200, login.text
        access = login.json()["data"]["access_token"]
        assert http.get("/whoami", headers={"authorization": f"Bearer {access}"}).text == (
            f"user={user_id}"
        )
        refresh_token = login.json()["data"]["refresh_token"]

        def refresh(_: int) -> httpx.Response:
            with httpx.Client(base_url=server.url, timeout=30) as own:
                return own.post("/auth/refresh", json={"refresh_token": refresh_token})

        # 24 clients on their own connections, spread over both worker processes
        with ThreadPoolExecutor(24) as pool:
            replies = list(pool.map(refresh, range(24)))
        statuses = sorted(r.status_code for r in replies)
        assert statuses == [200] + [401] * 23, [r.text for r in replies if r.status_code != 401]
        winner = next(r for r in replies if r.status_code == 200).json()["data"]
        # the losers presented a rotated-away token: the whole session is gone, the
        # winner's new refresh token with it
        again = http.post("/auth/refresh", json={"refresh_token": winner["refresh_token"]})
        assert again.status_code == 401

        # the command line sees what the server wrote: log out everywhere
        relogin = http.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
        token = relogin.json()["data"]["refresh_token"]
        revoked = cli(database, "users", "revoke-sessions", "ada@example.com")
        assert revoked.returncode == 0, revoked.stderr
        assert http.post("/auth/refresh", json={"refresh_token": token}).status_code == 401
    assert PASSWORD not in server.output()
