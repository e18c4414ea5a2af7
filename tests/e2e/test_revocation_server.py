"""End to end: revoked access tokens are refused by every worker of real servers (uvicorn
with two workers, gunicorn with two) sharing a private Redis, whatever revoked them: a
json-mode logout or the ``tokenguard`` command (suspend, set-password, revoke-sessions,
set-role --no-admin); and with Redis paused, a revoked token is never accepted. Open
WebSockets on both workers end with a revocation made by either."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.auth import SECRET
from tests.helpers.redis_server import RedisServer
from tests.helpers.servers import ROOT, Server, serve

pytestmark = [pytest.mark.e2e]

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "another horse battery staple"
SERVERS = {
    "uvicorn": [
        sys.executable, "-m", "uvicorn", "tests.e2e.apps.revocation_app:asgi",
        "--host", "127.0.0.1", "--port", "{port}", "--log-level", "warning", "--workers", "2",
    ],
    "gunicorn": [
        sys.executable, "-m", "gunicorn", "tests.e2e.apps.revocation_app:wsgi",
        "-b", "127.0.0.1:{port}", "-w", "2", "--log-level", "warning",
    ],
}  # fmt: skip
#: How long every worker may take to refuse a revoked token.
BOUND_S = 2.0


@pytest.fixture
def env(private_redis: RedisServer, tmp_path: Path) -> Iterator[dict[str, str]]:
    yield {
        "SECRET": SECRET,
        "LOGIN_STALL_TIME": "0",
        "DB_FILENAME": str(tmp_path / "users.db"),
        "REDIS": private_redis.url,
    }


def cli(env: dict[str, str], *argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    # This checkout's code, as the servers run it (not whatever an installed script imports).
    path = os.pathsep.join(filter(None, [str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", "tokenguard", *argv], input=stdin, cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": path, **env},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done


def whoami(server: Server, token: str) -> httpx.Response:
    # A connection per request: the kernel spreads them over the workers.
    with httpx.Client(base_url=server.url, timeout=10) as own:
        return own.get("/whoami", headers={"authorization": f"Bearer {token}"})


def login(server: Server, password: str = PASSWORD) -> dict[str, str]:
    with httpx.Client(base_url=server.url, timeout=10) as own:
        reply = own.post("/auth/login", json={"email": "ada@example.com", "password": password})
    assert reply.status_code == 200, reply.text
    data: dict[str, str] = reply.json()["data"]
    return data


def served_by_both(server: Server, token: str) -> set[str]:
    """The workers (PIDs) that accepted ``token``: both, or the test cannot tell anything."""
    pids: set[str] = set()
    for _ in range(200):
        reply = whoami(server, token)
        assert reply.status_code == 200, reply.text
        pids.add(reply.text.rsplit("pid=", 1)[1])
        if len(pids) == 2:
            return pids
    raise AssertionError(f"only {pids} answered")


def refused_everywhere(server: Server, token: str) -> float:
    """Seconds until 20 requests in a row (over both workers) refuse ``token`` with Directus's
    401; fails if that takes longer than BOUND_S."""
    start = time.monotonic()
    streak = 0
    while streak < 20:
        reply = whoami(server, token)
        if reply.status_code == 401 and reply.json() == {
            "errors": [
                {"message": "Invalid user credentials.",
                 "extensions": {"code": "INVALID_CREDENTIALS"}}
            ]
        }:  # fmt: skip
            streak += 1
        else:
            assert reply.status_code == 200, reply.text
            streak = 0
            assert time.monotonic() - start < BOUND_S, "still accepted after the bound"
    return time.monotonic() - start


@pytest.mark.parametrize("kind", sorted(SERVERS))
def test_every_worker_refuses_a_revoked_token(
    kind: str, env: dict[str, str], tmp_path: Path
) -> None:
    created = cli(env, "users", "create", "ada@example.com", "--admin", "--password-stdin",
                  stdin=PASSWORD + "\n")  # fmt: skip
    user_id = created.stdout.strip()
    with serve(SERVERS[kind], env, tmp_path, ready_path="/", timeout=30) as server:
        # A json-mode logout.
        tokens = login(server)
        served_by_both(server, tokens["access_token"])
        with httpx.Client(base_url=server.url, timeout=10) as http:
            out = http.post("/auth/logout", json={"refresh_token": tokens["refresh_token"], "mode": "json"})  # fmt: skip
            assert out.status_code == 204, out.text
        refused_everywhere(server, tokens["access_token"])

        # The command line, from another process: suspend.
        tokens = login(server)
        served_by_both(server, tokens["access_token"])
        cli(env, "users", "suspend", "ada@example.com")
        refused_everywhere(server, tokens["access_token"])
        cli(env, "users", "activate", "ada@example.com")

        # set-password
        tokens = login(server)
        served_by_both(server, tokens["access_token"])
        cli(env, "users", "set-password", "ada@example.com", "--password-stdin",
            stdin=NEW_PASSWORD + "\n")  # fmt: skip
        refused_everywhere(server, tokens["access_token"])

        # revoke-sessions
        tokens = login(server, NEW_PASSWORD)
        served_by_both(server, tokens["access_token"])
        cli(env, "users", "revoke-sessions", "ada@example.com")
        refused_everywhere(server, tokens["access_token"])

        # set-role --no-admin: refused, and the refresh carries the new access.
        tokens = login(server, NEW_PASSWORD)
        assert whoami(server, tokens["access_token"]).text.startswith(f"user={user_id} admin=True")
        cli(env, "users", "set-role", "ada@example.com", "editor", "--no-admin")
        refused_everywhere(server, tokens["access_token"])
        time.sleep(0.01)  # past the revocation's millisecond
        with httpx.Client(base_url=server.url, timeout=10) as http:
            again = http.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"], "mode": "json"})  # fmt: skip
        assert again.status_code == 200, again.text
        fresh = again.json()["data"]["access_token"]
        for _ in range(10):
            assert whoami(server, fresh).text.startswith(f"user={user_id} admin=False")


def test_a_paused_redis_never_lets_a_revoked_token_through(
    env: dict[str, str], private_redis: RedisServer, tmp_path: Path
) -> None:
    cli(env, "users", "create", "ada@example.com", "--password-stdin", stdin=PASSWORD + "\n")
    with serve(SERVERS["uvicorn"], env, tmp_path, ready_path="/", timeout=30) as server:
        kept = login(server)
        gone = login(server)
        served_by_both(server, kept["access_token"])
        served_by_both(server, gone["access_token"])
        with httpx.Client(base_url=server.url, timeout=10) as http:
            out = http.post("/auth/logout", json={"refresh_token": gone["refresh_token"], "mode": "json"})  # fmt: skip
            assert out.status_code == 204
        refused_everywhere(server, gone["access_token"])
        private_redis.pause()
        try:
            seen = {"kept": set(), "gone": set()}  # type: ignore[var-annotated]
            deadline = time.monotonic() + 12  # past the subscriber's health check and timeouts
            while time.monotonic() < deadline:
                for name, token in (("kept", kept), ("gone", gone)):
                    status = whoami(server, token["access_token"]).status_code
                    seen[name].add(status)
            # The revoked token: refused, or 503 once the list cannot be trusted; never 200.
            assert seen["gone"] <= {401, 503}, seen
            assert seen["kept"] <= {200, 503}, seen
            assert 503 in seen["kept"], seen  # the workers noticed and stopped trusting
        finally:
            private_redis.resume()
        # Back: caught up from the window, the kept token works and the other stays refused.
        deadline = time.monotonic() + 15
        while whoami(server, kept["access_token"]).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        served_by_both(server, kept["access_token"])
        refused_everywhere(server, gone["access_token"])


def test_ending_another_session_refuses_its_tokens_at_once_everywhere(
    env: dict[str, str], tmp_path: Path
) -> None:
    """A user's own sessions over real uvicorn workers: ``DELETE /auth/sessions/{id}`` from
    one session ends another (its access token refused by every worker within the bound, its
    refresh token refused), the caller's keeps working; ``DELETE /auth/sessions`` ends the
    rest; the Python client and the command line do the same."""
    from tokenguard.client import Client, Forbidden, MemoryStorage

    cli(env, "users", "create", "ada@example.com", "--password-stdin", stdin=PASSWORD + "\n")
    with serve(SERVERS["uvicorn"], env, tmp_path, ready_path="/", timeout=30) as server:
        mine, other, third = login(server), login(server), login(server)
        for tokens in (mine, other, third):
            served_by_both(server, tokens["access_token"])
        auth = {"authorization": f"Bearer {mine['access_token']}"}
        with httpx.Client(base_url=server.url, timeout=10) as http:
            listed = http.get("/auth/sessions", headers=auth).json()["data"]
            assert len(listed) == 3 and sum(s["current"] for s in listed) == 1
            ids = {s["id"] for s in listed if not s["current"]}
            # Which listed id is `other`'s: the one whose end refuses `other`'s token.
            target = next(iter(ids))
            gone = http.delete(f"/auth/sessions/{target}", headers=auth)
            assert (gone.status_code, gone.content) == (204, b"")
        ended, kept = (
            (other, third) if whoami(server, other["access_token"]).status_code == 401
            else (third, other)
        )
        refused_everywhere(server, ended["access_token"])
        served_by_both(server, mine["access_token"])
        served_by_both(server, kept["access_token"])
        with httpx.Client(base_url=server.url, timeout=10) as http:
            dead = http.post("/auth/refresh", json={"refresh_token": ended["refresh_token"]})
            assert dead.status_code == 401, dead.text
            again = http.delete(f"/auth/sessions/{target}", headers=auth)
            assert again.status_code == 403
            assert again.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"

        # The Python client: list, end one that is not its own, end the others.
        with Client(server.url, storage=MemoryStorage()) as api:
            api.login("ada@example.com", PASSWORD)
            sessions = api.sessions()
            assert len(sessions) == 3
            assert [s["current"] for s in sessions] == [True, False, False]
            with pytest.raises(Forbidden):
                api.revoke_session("0" * 32)
            api.revoke_session(next(s["id"] for s in sessions if not s["current"]))
            assert len(api.sessions()) == 2
            api.revoke_other_sessions()
            assert [s["current"] for s in api.sessions()] == [True]
            # Whichever of `mine` and `kept` survived the one-by-one end, both are gone now.
            refused_everywhere(server, mine["access_token"])
            refused_everywhere(server, kept["access_token"])
            assert api.get("/whoami").status_code == 200

            # The command line, from another process, ends the client's session.
            (only,) = api.sessions()
            listed_by_cli = cli(env, "users", "sessions", "ada@example.com", "--json")
            assert only["id"] in listed_by_cli.stdout
            cli(env, "users", "revoke-session", "ada@example.com", only["id"])
            token = api.get_token()
            assert token is not None
            refused_everywhere(server, token)


def test_open_sockets_on_every_worker_end_with_a_revocation(
    env: dict[str, str], tmp_path: Path
) -> None:
    import asyncio
    import json

    from websockets.asyncio.client import ClientConnection, connect
    from websockets.exceptions import ConnectionClosed

    cli(env, "users", "create", "ada@example.com", "--password-stdin", stdin=PASSWORD + "\n")
    ws_env = {
        **env,
        "WEBSOCKETS_ENABLED": "true",
        "WEBSOCKETS_HEARTBEAT_ENABLED": "false",
        "WEBSOCKETS_REST_AUTH_TIMEOUT": "1",
    }
    with serve(SERVERS["uvicorn"], ws_env, tmp_path, ready_path="/", timeout=30) as server:
        tokens = login(server)
        query = f"access_token={tokens['access_token']}"

        async def one_per_worker(path: str) -> dict[str, ClientConnection]:
            """A socket on each worker (new connections spread over them)."""
            kept: dict[str, ClientConnection] = {}
            for _ in range(60):
                ws = await connect(f"ws://127.0.0.1:{server.port}{path}?{query}")
                await ws.send('{"type":"who"}')  # JSON: the realtime path parses frames
                pid = str(await asyncio.wait_for(ws.recv(), 5)).rsplit("pid=", 1)[1]
                if pid in kept:
                    await ws.close()
                else:
                    kept[pid] = ws
                if len(kept) == 2:
                    return kept
            raise AssertionError(f"only {set(kept)} answered")

        async def go() -> None:
            realtime = await one_per_worker("/websocket")
            chat = await one_per_worker("/chat")
            started = time.monotonic()
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
                out = await http.post("/auth/logout", json={"refresh_token": tokens["refresh_token"], "mode": "json"})  # fmt: skip
                assert out.status_code == 204, out.text
            # Whichever worker logged out, both workers' sockets hear of it.
            for ws in realtime.values():
                told = json.loads(await asyncio.wait_for(ws.recv(), BOUND_S))
                assert told["error"]["code"] == "TOKEN_EXPIRED"
            for ws in chat.values():
                try:
                    await asyncio.wait_for(ws.recv(), BOUND_S)
                    raise AssertionError("a frame instead of the close")
                except ConnectionClosed:
                    assert (ws.close_code, ws.close_reason) == (4403, "Token revoked.")
            assert time.monotonic() - started < BOUND_S
            for ws in realtime.values():
                await ws.close()

        asyncio.run(asyncio.wait_for(go(), 60))
