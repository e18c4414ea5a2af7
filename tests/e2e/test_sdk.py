"""The official ``@directus/sdk`` (pinned in ``tests/e2e/sdk/package.json``) against both
examples: login, readMe, refresh, readMe, logout in json, cookie and session modes, and a
static-token client. ``sdk/drive.mjs`` prints one JSON line per step; every step is asserted
here as well, so a lenient script cannot hide a regression."""

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
ADMIN_EMAIL = "sdk-admin@example.com"
ADMIN_PASSWORD = "sdk correct horse battery staple"
ADMIN_TOKEN = "sdk-admin-static-token-Qm3Vb8Nc1Xz6"
ENV = {
    "SECRET": SECRET,
    "ADMIN_EMAIL": ADMIN_EMAIL,
    "ADMIN_PASSWORD": ADMIN_PASSWORD,
    "ADMIN_TOKEN": ADMIN_TOKEN,
}
COMMANDS = {
    "starlette-uvicorn": [sys.executable, "-m", "examples.starlette_app.app"],
    "flask-werkzeug": [sys.executable, "-m", "examples.flask_app.app"],
    "django-gunicorn": [
        sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:{port}", "--threads", "4",
        "examples.django_app.wsgi:application",
    ],
}

REFRESH_COOKIE = {"name": "directus_refresh_token", "cleared": False, "http_only": True, "same_site": "lax", "path": "/"}
SESSION_COOKIE = {**REFRESH_COOKIE, "name": "directus_session_token"}
BAD = {"ok": False, "status": 401, "code": "INVALID_CREDENTIALS", "message": "Invalid user credentials."}
ME = {"ok": True, "email": ADMIN_EMAIL}


@pytest.fixture(params=sorted(COMMANDS), scope="module")
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(COMMANDS[request.param], ENV, tmp_path_factory.mktemp(request.param)) as srv:
        yield srv


def drive(node: str, mode: str, server: Server, password: str = ADMIN_PASSWORD) -> tuple[int, list[dict[str, Any]], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TG_")}
    env |= {"TG_EMAIL": ADMIN_EMAIL, "TG_PASSWORD": password, "TG_STATIC_TOKEN": ADMIN_TOKEN}
    done = subprocess.run(
        [node, "drive.mjs", mode, server.url], cwd=SDK_DIR, env=env, capture_output=True, text=True, timeout=120
    )
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert all(line["mode"] == mode for line in lines)
    return done.returncode, lines, done.stderr


def steps(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for line in lines:
        assert line["step"] not in out, f"step {line['step']} reported twice"
        out[line["step"]] = {k: v for k, v in line.items() if k not in ("mode", "step")}
    return out


def test_static_token(node: str, server: Server) -> None:
    code, lines, err = drive(node, "static", server)
    assert steps(lines) == {
        "read_me": {"pass": True, **ME},
        "read_me_wrong_token": {"pass": True, **BAD},
    }, server.output()
    assert code == 0, err


def test_json_mode(node: str, server: Server) -> None:
    code, lines, err = drive(node, "json", server)
    assert [line["step"] for line in lines] == [
        "login_wrong_password", "login", "read_me", "refresh", "read_me_after_refresh",
        "refresh_with_rotated_token", "logout", "read_me_after_logout", "refresh_after_logout",
    ], (lines, err, server.output())
    s = steps(lines)
    assert s["login_wrong_password"] == {"pass": True, **BAD}
    assert s["login"] == {
        "pass": True, "ok": True, "expires": 900000, "access_token": True, "refresh_token": True,
        "cookies": [], "jar": [],
    }
    assert s["read_me"] == s["read_me_after_refresh"] == {"pass": True, **ME}
    assert s["refresh"] == {
        "pass": True, "ok": True, "expires": 900000, "access_token": True,
        "refresh_token_rotated": True, "cookie_rotated": None, "cookies": [],
    }
    assert s["refresh_with_rotated_token"] == {"pass": True, **BAD}  # no grace in json mode
    assert s["logout"] == {"pass": True, "ok": True, "cookies": [], "jar": []}
    assert s["read_me_after_logout"] == {"pass": True, **BAD}
    assert s["refresh_after_logout"] == {"pass": True, **BAD}
    assert code == 0, err


def test_cookie_mode(node: str, server: Server) -> None:
    code, lines, err = drive(node, "cookie", server)
    assert [line["step"] for line in lines] == [
        "login_wrong_password", "login", "read_me", "refresh", "read_me_after_refresh",
        "refresh_with_rotated_token", "logout", "read_me_after_logout", "refresh_after_logout",
    ], (lines, err, server.output())
    s = steps(lines)
    assert s["login_wrong_password"] == {"pass": True, **BAD}
    assert s["login"] == {
        "pass": True, "ok": True, "expires": 900000, "access_token": True, "refresh_token": False,
        "cookies": [REFRESH_COOKIE], "jar": ["directus_refresh_token"],
    }
    assert s["read_me"] == s["read_me_after_refresh"] == {"pass": True, **ME}
    assert s["refresh"] == {
        "pass": True, "ok": True, "expires": 900000, "access_token": True,
        "refresh_token_rotated": None, "cookie_rotated": True, "cookies": [REFRESH_COOKIE],
    }
    assert s["refresh_with_rotated_token"] == {"pass": True, **BAD}
    assert s["logout"] == {"pass": True, "ok": True, "cookies": [{**REFRESH_COOKIE, "cleared": True}], "jar": []}
    assert s["read_me_after_logout"] == {"pass": True, **BAD}
    assert s["refresh_after_logout"] == {"pass": True, **BAD}
    assert code == 0, err


def test_session_mode(node: str, server: Server) -> None:
    code, lines, err = drive(node, "session", server)
    assert [line["step"] for line in lines] == [
        "login_wrong_password", "login", "read_me", "refresh", "read_me_after_refresh",
        "logout", "read_me_after_logout", "read_me_with_logged_out_session",
    ], (lines, err, server.output())
    s = steps(lines)
    assert s["login_wrong_password"] == {"pass": True, **BAD}
    # Session mode: no token in the body at all, only the HttpOnly cookie.
    assert s["login"] == {
        "pass": True, "ok": True, "expires": 86400000, "access_token": False, "refresh_token": False,
        "cookies": [SESSION_COOKIE], "jar": ["directus_session_token"],
    }
    assert s["read_me"] == s["read_me_after_refresh"] == {"pass": True, **ME}
    assert s["refresh"] == {
        "pass": True, "ok": True, "expires": 86400000, "access_token": False,
        "refresh_token_rotated": None, "cookie_rotated": True, "cookies": [SESSION_COOKIE],
    }
    assert s["logout"] == {"pass": True, "ok": True, "cookies": [{**SESSION_COOKIE, "cleared": True}], "jar": []}
    assert s["read_me_after_logout"] == {"pass": True, **BAD}
    # The cookie held before logout is dead server-side, and the 401 clears it.
    assert s["read_me_with_logged_out_session"] == {
        "pass": True, **BAD, "cookies": [{**SESSION_COOKIE, "cleared": True}],
    }
    assert code == 0, err


def test_the_driver_reports_failures(node: str, server: Server) -> None:
    """The harness itself can fail: a wrong password makes `login` fail and the exit code 1."""
    code, lines, _ = drive(node, "cookie", server, password="not the password")
    s = steps(lines)
    assert s["login"] == {"pass": False, **BAD}
    assert "read_me" not in s
    assert code == 1
