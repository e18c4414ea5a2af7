"""The official ``@directus/sdk`` ``realtime()`` client against the Starlette example under
uvicorn: the acceptance check for realtime authentication. ``sdk/realtime_check.mjs`` prints
one JSON line per step; every step is asserted here as well."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.servers import Server, serve
from tests.helpers.tokens import SECRET

pytestmark = [pytest.mark.e2e, pytest.mark.node]

SDK_DIR = Path(__file__).resolve().parent / "sdk"
EMAIL = "sdk-rt-admin@example.com"
PASSWORD = "sdk realtime correct horse battery"
ENV = {
    "SECRET": SECRET,
    "ADMIN_EMAIL": EMAIL,
    "ADMIN_PASSWORD": PASSWORD,
    "LOGIN_STALL_TIME": "5",
    "WEBSOCKETS_ENABLED": "true",
    "WEBSOCKETS_REST_AUTH_TIMEOUT": "2",
}
SERVERS = {
    "handshake": {},
    "strict": {"WEBSOCKETS_REST_AUTH": "strict"},
    "public": {"WEBSOCKETS_REST_AUTH": "public"},
    "expiry": {"ACCESS_TOKEN_TTL": "3s", "TOKENGUARD_JWT_LEEWAY": "0"},
}


@pytest.fixture(params=sorted(SERVERS), scope="module")
def scenario(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Server]]:
    name = request.param
    command = [sys.executable, "-m", "examples.starlette_app.app"]
    with serve(command, {**ENV, **SERVERS[name]}, tmp_path_factory.mktemp(name)) as server:
        yield name, server


def check(node: str, name: str, server: Server) -> tuple[int, dict[str, dict[str, Any]], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TG_")}
    env |= {"TG_EMAIL": EMAIL, "TG_PASSWORD": PASSWORD}
    done = subprocess.run(
        [node, "realtime_check.mjs", name, server.url],
        cwd=SDK_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    steps: dict[str, dict[str, Any]] = {}
    for line in done.stdout.splitlines():
        if line.strip():
            record = json.loads(line)
            assert record.pop("scenario") == name
            step = record.pop("step")
            assert step not in steps, f"step {step} reported twice"
            steps[step] = record
    return done.returncode, steps, done.stderr


ECHO_JWT = {"pass": True, "type": "echo", "via": "jwt", "user": True}
EXPECTED: dict[str, dict[str, dict[str, Any]]] = {
    "handshake": {
        "connect_with_token": {"pass": True},
        "echo_after_handshake": ECHO_JWT,
        "ping": {"pass": True, "type": "pong", "uid": True},
        "auth_message_login": {"pass": True, "status": "ok", "refresh_token": True},
        "echo_after_auth_message": ECHO_JWT,
        "wrong_password_closes": {"pass": True, "closed": True, "delivered": 0},
    },
    "strict": {
        "connect_strict": {"pass": True},
        "echo_strict": ECHO_JWT,
        "strict_without_token_refused": {"pass": True},
    },
    "public": {
        "echo_public": {"pass": True, "type": "echo", "via": "public", "user": False},
        "upgrade_by_auth_message": {"pass": True, "status": "ok"},
        "echo_after_upgrade": ECHO_JWT,
    },
    "expiry": {
        "echo_before_expiry": ECHO_JWT,
        "reauthenticated_after_expiry": {"pass": True},
        "echo_after_reauth": ECHO_JWT,
        "still_open": {"pass": True},
    },
}


def test_sdk_realtime(node: str, scenario: tuple[str, Server]) -> None:
    name, server = scenario
    code, steps, err = check(node, name, server)
    assert steps == EXPECTED[name], (steps, err, server.output())
    assert code == 0, err
    assert PASSWORD not in server.output()
