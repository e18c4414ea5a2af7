"""``tokenguard audit list``: events an app wrote to its SQLite or Redis audit store, read
back by the command line (another process's view), with filters and usage errors."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
from werkzeug.test import Client

from tests.helpers.auth import (
    EMAIL,
    FAST,
    PASSWORD,
    SECRET,
    USER_ID,
    Clock,
    make_user,
    plain_wsgi_app,
)
from tokenguard import TokenGuard, TokenGuardWSGI, cli
from tokenguard.stores.memory import MemorySessionStore, MemoryUserStore
from tokenguard.stores.sqlite import SQLiteUserStore

AGENT = "cli-test/2.0"


def _app(**settings: object) -> Client:
    users = MemoryUserStore()
    users.create(make_user())
    core = TokenGuard(
        secret=SECRET, users=users, sessions=MemorySessionStore(), passwords=FAST, clock=Clock(),
        login_stall_ms=0, **settings,
    )
    return Client(TokenGuardWSGI(plain_wsgi_app, guard=core))


def _traffic(client: Client) -> None:
    kw = {"headers": {"user-agent": AGENT}, "environ_base": {"REMOTE_ADDR": "127.0.0.1"}}
    ok = client.post("/auth/login", json={"email": EMAIL, "password": PASSWORD}, **kw)
    assert ok.status_code == 200
    bad = client.post("/auth/login", json={"email": EMAIL, "password": "nope"}, **kw)
    assert bad.status_code == 401
    token = ok.json["data"]["refresh_token"]
    assert client.post("/auth/refresh", json={"refresh_token": token}, **kw).status_code == 200


def _run(argv: list[str], env: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    capsys.readouterr()
    code = cli.main(argv, environ=env)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_list_from_sqlite(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    db = str(tmp_path / "app.db")
    SQLiteUserStore(db).close()
    _traffic(_app(db_filename=db, audit_store="sqlite"))
    env = {"DB_FILENAME": db, "TOKENGUARD_AUDIT_STORE": "sqlite"}
    code, out, err = _run(["audit", "list"], env, capsys, monkeypatch)
    assert (code, err) == (0, "")
    stamp = "2027-01-15T08:00:00.000Z"
    assert out.splitlines() == [
        f"{stamp}  refresh  success  {USER_ID}  127.0.0.1  -  -  ua={AGENT}  origin=-",
        f"{stamp}  login  failure  {USER_ID}  127.0.0.1  default  INVALID_CREDENTIALS  ua={AGENT}  origin=-",
        f"{stamp}  login  success  {USER_ID}  127.0.0.1  default  -  ua={AGENT}  origin=-",
    ]
    code, out, _ = _run(["audit", "list", "--event", "login", "--limit", "1", "--json"], env, capsys, monkeypatch)
    assert code == 0
    assert [json.loads(line) for line in out.splitlines()] == [
        {"event": "login", "outcome": "failure", "timestamp": stamp, "user_id": USER_ID, "ip": "127.0.0.1",
         "user_agent": AGENT, "origin": None, "provider": "default", "reason": "INVALID_CREDENTIALS"}
    ]
    code, out, _ = _run(["--db", db, "audit", "list", "--user", "someone-else", "--store", "sqlite"], {}, capsys, monkeypatch)
    assert (code, out) == (0, "")


def test_list_from_redis(redis_url: str, redis_prefix: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    _traffic(_app(redis_url=redis_url, redis_prefix=redis_prefix, audit_store="redis"))
    env = {"REDIS": redis_url, "TOKENGUARD_REDIS_PREFIX": redis_prefix, "TOKENGUARD_AUDIT_STORE": "redis"}
    code, out, err = _run(["audit", "list", "--json", "--event", "refresh"], env, capsys, monkeypatch)
    assert (code, err) == (0, "")
    [line] = out.splitlines()
    assert json.loads(line)["event"] == "refresh" and json.loads(line)["user_id"] == USER_ID


def test_a_command_line_change_lands_in_a_redis_trail(tmp_path: Path, redis_url: str, redis_prefix: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The command line writes its events where the app does (here Redis, beside a SQLite
    user file), so the app's processes and `audit list` see them."""
    db = str(tmp_path / "app.db")
    env = {"DB_FILENAME": db, "REDIS": redis_url, "TOKENGUARD_REDIS_PREFIX": redis_prefix,
           "TOKENGUARD_AUDIT_STORE": "redis"}
    code, out, err = _run(["users", "create", "ada@example.com", "--role", "editor"], env, capsys, monkeypatch)
    assert code == 0, err
    user_id = out.strip()
    code, _, err = _run(["users", "suspend", "ada@example.com"], env, capsys, monkeypatch)
    assert code == 0, err
    code, out, err = _run(["audit", "list", "--json"], env, capsys, monkeypatch)
    assert (code, err) == (0, "")
    [line] = out.splitlines()  # the creation voids nothing: not recorded
    event = json.loads(line)
    del event["timestamp"]
    assert event == {"event": "user_change", "outcome": "success", "user_id": user_id, "ip": None,
                     "user_agent": "tokenguard-cli", "origin": None, "provider": "default",
                     "reason": "status"}


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["audit", "list"], {}, "TOKENGUARD_AUDIT_STORE is not set"),
        (["audit", "list"], {"TOKENGUARD_AUDIT_STORE": "memory"}, "TOKENGUARD_AUDIT_STORE is memory"),
        (["audit", "list", "--store", "redis"], {}, "needs REDIS"),
        (["audit", "list", "--limit", "0", "--store", "sqlite"], {}, "--limit must be at least 1"),
        (["audit", "list", "--event", "nonsense"], {}, "invalid choice"),
    ],
)
def test_usage_errors(argv: list[str], env: dict[str, str], message: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = _run(argv, env, capsys, monkeypatch)
    assert code == 2 and out == ""
    assert message in err


def test_control_characters_of_a_user_agent_do_not_reach_the_terminal(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    db = str(tmp_path / "app.db")
    client = _app(db_filename=db, audit_store="sqlite")
    client.post("/auth/login", json={"email": EMAIL, "password": PASSWORD}, headers={"user-agent": "x\x1b[2Jy"})
    code, out, _ = _run(["audit", "list", "--db", db, "--store", "sqlite"], {}, capsys, monkeypatch)
    assert code == 0 and "\x1b" not in out and "ua=x?[2Jy" in out
