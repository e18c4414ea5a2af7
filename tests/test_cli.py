"""The ``tokenguard`` command line, in-process on a temporary SQLite file and as the installed
script; static tokens it prints are checked through the real guard."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import GeneratorType

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.helpers.tokens import SECRET, mint
from tokenguard import cli
from tokenguard.auth.passwords import verify_password
from tokenguard.config import Settings
from tokenguard.flow import run_sync
from tokenguard.guard.decide import Guard, Refusal
from tokenguard.principal import Principal
from tokenguard.stores.base import SessionRecord, SessionStore, refresh_token_key, session_id
from tokenguard.stores.redis import RedisSessionStore
from tokenguard.stores.sqlite import SQLiteSessionStore, SQLiteUserStore

PASSWORD = "correct horse battery staple"


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "users.db"


@pytest.fixture
def run(db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    """``run(*argv, stdin="")`` → Result, with ``--db`` pointing at the temp file."""

    def _run(*argv: str, stdin: str = "", env: dict[str, str] | None = None, with_db: bool = True) -> Result:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        capsys.readouterr()
        args = ["--db", str(db), *argv] if with_db else list(argv)
        code = cli.main(args, environ=env or {})
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return _run


def users_in(db: Path) -> SQLiteUserStore:
    return SQLiteUserStore(db)


@pytest.fixture
def guard(db: Path) -> Iterator[Guard]:
    users, sessions = SQLiteUserStore(db), SQLiteSessionStore(db)
    yield Guard(Settings(secret=SECRET), users, sessions)
    users.close()
    sessions.close()


def open_session(sessions: SessionStore, user_id: str, family: str) -> str:
    """A live session-mode login of ``user_id``; returns its session-mode access token."""
    import time

    token = (family * 64)[:22] + "s" * 42
    now_ms = int(time.time() * 1000)
    sessions.create(SessionRecord(refresh_token_key(token), token[:22], user_id, now_ms + 60_000, now_ms))
    return mint(id=user_id, role="editor", session=token)


def authenticate(guard: Guard, token: str) -> Principal | Refusal:
    outcome = guard.authenticate(f"Bearer {token}", "", None)
    if isinstance(outcome, GeneratorType):
        outcome = run_sync(outcome)
    assert isinstance(outcome, (Principal, Refusal))
    return outcome


def make_user(run, email: str = "ada@example.com", *extra: str) -> str:
    r = run("users", "create", email, "--role", "editor", "--password-stdin", *extra, stdin=PASSWORD + "\n")
    assert r.code == 0, r.err
    return r.out.strip()


# --------------------------------------------------------------------------- secret


def test_secret_is_strong_and_fresh(run) -> None:
    first, second = run("secret", with_db=False), run("secret", with_db=False)
    assert first.code == second.code == 0
    secret = first.out.strip()
    assert len(secret) == 64 and first.out == secret + "\n"
    assert secret != second.out.strip()
    Settings(secret=secret)  # accepted by the settings' own strength check


# --------------------------------------------------------------------------- database choice


def test_no_database_is_a_usage_error(run) -> None:
    r = run("users", "list", with_db=False)
    assert (r.code, r.out) == (2, "")
    assert r.err == "tokenguard: error: no database: set DB_FILENAME or pass --db FILE\n"


def test_missing_file_is_not_created_by_a_read(run, db: Path) -> None:
    r = run("users", "list")
    assert r.code == 1 and "no database at" in r.err and str(db) in r.err
    assert not db.exists()


def test_db_from_environment_and_flag_positions(run, db: Path, tmp_path: Path) -> None:
    make_user(run)
    env = {"DB_FILENAME": str(db)}
    assert "ada@example.com" in run("users", "list", env=env, with_db=False).out
    # --db after the command works too, and wins over the environment
    other = tmp_path / "other.db"
    r = run("users", "create", "bob@example.com", "--db", str(other), env=env, with_db=False)
    assert r.code == 0, r.err
    listed = run("users", "list", "--json", "--db", str(other), env=env, with_db=False)
    assert [u["email"] for u in json.loads(listed.out)] == ["bob@example.com"]
    assert [u["email"] for u in json.loads(run("users", "list", "--json").out)] == ["ada@example.com"]


@pytest.mark.parametrize("command", [["users", "list"], ["users", "create", "a@example.com"]])
def test_nul_in_database_name_is_a_usage_error(run, command: list[str]) -> None:
    r = run(*command, env={"DB_FILENAME": "a\x00b"}, with_db=False)
    assert (r.code, r.err) == (2, "tokenguard: error: the database file name contains a NUL character\n")


def test_garbage_database_file_is_an_error_not_a_traceback(run, db: Path) -> None:
    db.write_bytes(b"this is not a database" * 100)
    r = run("users", "list")
    assert r.code == 1
    assert r.err.startswith("tokenguard: error: ") and "Traceback" not in r.err


# --------------------------------------------------------------------------- users


def test_create_and_list_without_secrets(run, db: Path) -> None:
    user_id = make_user(run)
    r = run("users", "create", "root@example.com", "--admin")
    assert r.code == 0
    assert "has no password" in r.err
    listed = run("users", "list", "--json")
    assert listed.code == 0
    rows = json.loads(listed.out)
    assert rows == [
        {
            "id": user_id,
            "email": "ada@example.com",
            "role": "editor",
            "status": "active",
            "admin_access": False,
            "app_access": False,
            "password": True,
            "static_token": False,
            "provider": "default",
            "external_identifier": None,
        },
        {
            "id": r.out.strip(),
            "email": "root@example.com",
            "role": None,
            "status": "active",
            "admin_access": True,
            "app_access": True,  # admin implies app
            "password": False,
            "static_token": False,
            "provider": "default",
            "external_identifier": None,
        },
    ]
    table = run("users", "list")
    lines = table.out.splitlines()
    assert lines[0].split() == ["EMAIL", "ROLE", "STATUS", "ADMIN", "APP", "PASSWORD", "TOKEN", "ID"]
    assert lines[1].split() == ["ada@example.com", "editor", "active", "no", "no", "yes", "no", user_id]
    stored = users_in(db).get_by_id(user_id)
    assert stored is not None and stored.password_hash is not None
    assert verify_password(stored.password_hash, PASSWORD)
    for output in (table.out, listed.out):
        assert stored.password_hash not in output and "argon2" not in output and PASSWORD not in output


def test_create_refusals(run) -> None:
    make_user(run)
    dup = run("users", "create", "ADA@example.com")
    assert (dup.code, dup.out) == (1, "")
    assert dup.err == "tokenguard: error: a user with e-mail ADA@example.com already exists\n"
    bad = run("users", "create", "not-an-email")
    assert (bad.code, bad.err) == (1, "tokenguard: error: 'not-an-email' is not an e-mail address\n")
    empty = run("users", "create", "x@example.com", "--password-stdin", stdin="\n")
    assert (empty.code, empty.err) == (1, "tokenguard: error: no password on standard input\n")
    both = run("users", "create", "x@example.com", "--password-stdin", "--password-prompt")
    assert both.code == 2 and "not allowed with argument" in both.err
    assert [u["email"] for u in json.loads(run("users", "list", "--json").out)] == ["ada@example.com"]


@pytest.mark.parametrize("form", [["--password", "hunter2-secret"], ["--password=hunter2-secret"]])
def test_password_argument_is_refused(run, db: Path, form: list[str]) -> None:
    r = run("users", "create", "x@example.com", *form)
    assert r.code == 2
    assert "never taken as an argument" in r.err and "hunter2-secret" not in r.err + r.out
    assert not db.exists()
    make_user(run)
    r = run("users", "set-password", "ada@example.com", *form)
    assert r.code == 2 and "never taken as an argument" in r.err


def test_password_prompt(run, db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter(["s3cret-Prompted", "s3cret-Prompted", "one", "two"])
    prompts: list[str] = []

    def fake_getpass(prompt: str = "") -> str:
        prompts.append(prompt)
        return next(answers)

    monkeypatch.setattr(cli.getpass, "getpass", fake_getpass)
    r = run("users", "create", "p@example.com", "--password-prompt")
    assert r.code == 0, r.err
    assert prompts == ["Password: ", "Repeat password: "]
    stored = users_in(db).get_by_email("p@example.com")
    assert stored is not None and verify_password(stored.password_hash, "s3cret-Prompted")
    mismatch = run("users", "set-password", "p@example.com", "--password-prompt")
    assert (mismatch.code, mismatch.err) == (1, "tokenguard: error: the passwords do not match\n")
    assert verify_password(users_in(db).get_by_email("p@example.com").password_hash, "s3cret-Prompted")  # type: ignore[union-attr]

    def eof(prompt: str = "") -> str:
        raise EOFError

    monkeypatch.setattr(cli.getpass, "getpass", eof)
    r = run("users", "set-password", "p@example.com", "--password-prompt")
    assert (r.code, r.err) == (1, "tokenguard: error: no password given\n")


def test_set_password(run, db: Path) -> None:
    make_user(run)
    assert run("users", "set-password", "ada@example.com").code == 2  # one of the two options is required
    r = run("users", "set-password", "ada@example.com", "--password-stdin", stdin="new pass  \r\n")
    assert r.code == 0 and r.out == ""
    stored = users_in(db).get_by_email("ada@example.com")
    assert stored is not None
    assert verify_password(stored.password_hash, "new pass  ")  # inner/trailing spaces kept
    assert not verify_password(stored.password_hash, PASSWORD)


def test_set_role_and_flags(run, db: Path) -> None:
    user_id = make_user(run)

    def flags() -> tuple[str | None, bool, bool]:
        u = users_in(db).get_by_id(user_id)
        assert u is not None
        return u.role, u.admin_access, u.app_access

    assert run("users", "set-role", "ada@example.com", "reviewer").code == 0
    assert flags() == ("reviewer", False, False)
    assert run("users", "set-role", user_id, "administrator", "--admin").code == 0  # by id too
    assert flags() == ("administrator", True, True)
    assert run("users", "set-role", "ada@example.com", "robot", "--no-admin", "--no-app").code == 0
    assert flags() == ("robot", False, False)
    assert run("users", "set-role", "ada@example.com", "robot", "--app").code == 0
    assert flags() == ("robot", False, True)
    assert run("users", "set-role", "ada@example.com", "none").code == 0
    assert flags() == (None, False, True)


@pytest.mark.parametrize(
    "argv",
    [
        ["users", "set-role", "ghost@example.com", "editor"],
        ["users", "set-password", "ghost@example.com", "--password-stdin"],
        ["users", "suspend", "ghost@example.com"],
        ["users", "activate", "ghost@example.com"],
        ["tokens", "set", "ghost@example.com"],
        ["tokens", "rotate", "ghost@example.com"],
        ["tokens", "revoke", "ghost@example.com"],
    ],
)
def test_no_such_user(run, argv: list[str]) -> None:
    make_user(run)
    r = run(*argv, stdin="whatever\n")
    assert (r.code, r.out, r.err) == (1, "", "tokenguard: error: no such user: ghost@example.com\n")


@pytest.mark.parametrize(
    "argv",
    [[], ["users"], ["tokens"], ["users", "create"], ["tokens", "set"], ["frobnicate"], ["users", "list", "--bogus"]],
)
def test_usage_errors_exit_2(run, argv: list[str]) -> None:
    r = run(*argv)
    assert r.code == 2 and r.out == ""
    assert "usage: tokenguard" in r.err and "tokenguard: error:" in r.err and "Traceback" not in r.err


def test_help_and_version(run) -> None:
    r = run("--help", with_db=False)
    assert r.code == 0 and "users" in r.out and "tokens" in r.out and "secret" in r.out
    r = run("--version", with_db=False)
    assert (r.code, r.out) == (0, "tokenguard 0.1.0\n")


# --------------------------------------------------------------------------- tokens through the guard


def test_token_lifecycle_through_the_guard(run, db: Path, guard: Guard) -> None:
    user_id = make_user(run)
    r = run("tokens", "set", "ada@example.com")
    assert r.code == 0
    token = r.out.strip()
    assert r.out == token + "\n" and len(token) == 43
    assert token not in r.err and "shown once" in r.err
    assert token.encode() not in b"".join(p.read_bytes() for p in db.parent.iterdir())  # only its hash is kept
    principal = authenticate(guard, token)
    assert isinstance(principal, Principal)
    assert (principal.user, principal.role, principal.via) == (user_id, "editor", "static")
    assert json.loads(run("users", "list", "--json").out)[0]["static_token"] is True

    again = run("tokens", "set", "ada@example.com")
    assert again.code == 1 and "use `tokens rotate`" in again.err and again.out == ""
    assert isinstance(authenticate(guard, token), Principal)  # a refused set changes nothing

    rotated = run("tokens", "rotate", "ada@example.com")
    assert rotated.code == 0
    new = rotated.out.strip()
    assert new != token and len(new) == 43
    assert isinstance(authenticate(guard, new), Principal)
    refused = authenticate(guard, token)
    assert isinstance(refused, Refusal) and refused.error.code == "INVALID_CREDENTIALS"

    revoked = run("tokens", "revoke", "ada@example.com")
    assert (revoked.code, revoked.out) == (0, "")
    assert isinstance(authenticate(guard, new), Refusal)
    assert json.loads(run("users", "list", "--json").out)[0]["static_token"] is False
    twice = run("tokens", "revoke", "ada@example.com")
    assert twice.code == 0 and "had no static token" in twice.err
    rotate_none = run("tokens", "rotate", "ada@example.com")
    assert rotate_none.code == 1 and "use `tokens set`" in rotate_none.err


def test_suspend_and_activate(run, db: Path, guard: Guard) -> None:
    user_id = make_user(run)
    other_id = make_user(run, "bob@example.com")
    token = run("tokens", "set", "ada@example.com").out.strip()
    ada_sessions = [open_session(guard.sessions, user_id, f) for f in "AB"]  # type: ignore[arg-type]
    bob_session = open_session(guard.sessions, other_id, "C")  # type: ignore[arg-type]
    assert all(isinstance(authenticate(guard, t), Principal) for t in [*ada_sessions, bob_session])
    r = run("users", "suspend", "ada@example.com")
    assert r.code == 0 and "is now suspended" in r.err and "revoked 2 sessions of ada@example.com" in r.err
    assert users_in(db).get_by_email("ada@example.com").status == "suspended"  # type: ignore[union-attr]
    assert isinstance(authenticate(guard, token), Refusal)
    # session-mode logins are cut at once; another user's are not touched
    assert all(isinstance(authenticate(guard, t), Refusal) for t in ada_sessions)
    assert isinstance(authenticate(guard, bob_session), Principal)
    assert run("users", "activate", "ada@example.com").code == 0
    assert users_in(db).get_by_email("ada@example.com").status == "active"  # type: ignore[union-attr]
    assert isinstance(authenticate(guard, token), Principal)


def test_revoke_sessions(run, guard: Guard) -> None:
    user_id = make_user(run)
    session = open_session(guard.sessions, user_id, "D")  # type: ignore[arg-type]
    r = run("users", "revoke-sessions", "ada@example.com")
    assert (r.code, r.out, r.err) == (0, "", "revoked 1 session of ada@example.com\n")
    assert isinstance(authenticate(guard, session), Refusal)
    assert run("users", "revoke-sessions", "ada@example.com").err == "revoked 0 sessions of ada@example.com\n"


def test_list_and_revoke_one_session(run, guard: Guard) -> None:
    user_id = make_user(run)
    other_id = make_user(run, "bob@example.com")
    first = open_session(guard.sessions, user_id, "F")  # type: ignore[arg-type]
    second = open_session(guard.sessions, user_id, "G")  # type: ignore[arg-type]
    bobs = open_session(guard.sessions, other_id, "H")  # type: ignore[arg-type]
    listed = json.loads(run("users", "sessions", "ada@example.com", "--json").out)
    ids = {row["id"] for row in listed}
    assert ids == {session_id("F" * 22), session_id("G" * 22)}
    assert set(listed[0]) == {"id", "created_on", "last_used_on", "expires", "ip", "user_agent",
                              "origin"}
    table = run("users", "sessions", "ada@example.com")
    assert table.code == 0 and table.out.splitlines()[0].split() == [
        "ID", "CREATED", "LAST", "USED", "IP", "USER", "AGENT"
    ]
    assert len(table.out.splitlines()) == 3 and "F" * 22 not in table.out
    # Bob's session id is not Ada's to end: the same answer as an unknown id.
    bob_id = session_id("H" * 22)
    for wrong in (bob_id, "F" * 22, "nope"):
        refused = run("users", "revoke-session", "ada@example.com", wrong)
        assert (refused.code, refused.out) == (1, "")
        assert refused.err == f"tokenguard: error: ada@example.com has no live session {wrong!r}\n"
    assert isinstance(authenticate(guard, bobs), Principal)
    done = run("users", "revoke-session", "ada@example.com", session_id("F" * 22))
    assert (done.code, done.out, done.err) == (
        0, "", f"revoked session {session_id('F' * 22)} of ada@example.com\n"
    )
    assert isinstance(authenticate(guard, first), Refusal)
    assert isinstance(authenticate(guard, second), Principal)
    assert [r["id"] for r in json.loads(run("users", "sessions", "ada@example.com", "--json").out)] == [
        session_id("G" * 22)
    ]
    none = run("users", "sessions", "bob@example.com", "--json")
    assert len(json.loads(none.out)) == 1
    run("users", "revoke-sessions", "bob@example.com")
    empty = run("users", "sessions", "bob@example.com")
    assert (empty.code, empty.out, empty.err) == (0, "", "bob@example.com has no live session\n")


@pytest.mark.redis
def test_revoke_sessions_in_redis(run, redis_url: str, redis_prefix: str) -> None:
    user_id = make_user(run)
    sessions = RedisSessionStore.from_url(redis_url, prefix=redis_prefix)
    try:
        open_session(sessions, user_id, "E")
        env = {"REDIS": redis_url, "TOKENGUARD_REDIS_PREFIX": redis_prefix}
        r = run("users", "suspend", "ada@example.com", env=env)
        assert r.code == 0 and "revoked 1 session of ada@example.com" in r.err
        token = "E" * 22 + "s" * 42
        assert sessions.get(refresh_token_key(token), 0) is None
    finally:
        sessions.close()


def test_unreachable_session_store_is_reported(run) -> None:
    make_user(run)
    env = {"REDIS": "redis://127.0.0.1:1/0"}  # nothing listens on port 1
    r = run("users", "revoke-sessions", "ada@example.com", env=env)
    assert r.code == 1 and r.out == ""
    assert r.err.startswith("tokenguard: error: could not revoke the sessions of ada@example.com: ")
    assert "Traceback" not in r.err


# --------------------------------------------------------------------------- hypothesis


_WORDS = st.sampled_from(
    ["users", "tokens", "secret", "create", "list", "set-role", "set-password", "suspend", "activate",
     "set", "rotate", "revoke", "--role", "--admin", "--no-admin", "--app", "--no-app", "--json",
     "--password-stdin", "--password-prompt", "--password", "--db", "-h", "a@example.com", "none", "--",
     "x\x00y", "."]
)


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=st.lists(st.one_of(_WORDS, st.text(max_size=12)), max_size=6), stdin=st.text(max_size=20))
def test_any_argv_gives_an_exit_status_never_a_traceback(
    argv: list[str], stdin: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    monkeypatch.setattr(cli.getpass, "getpass", lambda prompt="": "prompted-password")
    monkeypatch.chdir(tmp_path)  # a random `--db NAME` lands here
    code = cli.main(argv, environ={"DB_FILENAME": str(tmp_path / "fuzz.db")})
    assert code in (0, 1, 2)
    err = capsys.readouterr().err
    assert "Traceback" not in err


@hsettings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(password=st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"), min_size=1, max_size=40))
def test_any_stdin_password_round_trips(password: str, run, db: Path) -> None:
    if not db.exists():
        make_user(run, "rt@example.com")
    r = run("users", "set-password", "rt@example.com", "--password-stdin", stdin=password + "\n")
    assert r.code == 0, r.err
    stored = users_in(db).get_by_email("rt@example.com")
    assert stored is not None and verify_password(stored.password_hash, password)
    assert r.out == "" and r.err == "password of rt@example.com changed\n"


# --------------------------------------------------------------------------- the installed script


def _script() -> str:
    path = Path(sys.executable).parent / ("tokenguard.exe" if os.name == "nt" else "tokenguard")
    if not path.exists():
        pytest.fail(f"the `tokenguard` script is not installed next to {sys.executable}: pip install -e .")
    return str(path)


def test_installed_script_and_python_m(db: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DB_FILENAME"} | {"DB_FILENAME": str(db)}
    created = subprocess.run(
        [_script(), "users", "create", "ops@example.com", "--role", "robot", "--password-stdin"],
        input=PASSWORD + "\n", capture_output=True, text=True, env=env, timeout=60,
    )
    assert created.returncode == 0, created.stderr
    token = subprocess.run(
        [sys.executable, "-m", "tokenguard", "tokens", "set", "ops@example.com"],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert token.returncode == 0, token.stderr
    missing = subprocess.run(
        [_script(), "tokens", "set", "nobody@example.com"], capture_output=True, text=True, env=env, timeout=60
    )
    assert (missing.returncode, missing.stdout) == (1, "")
    assert missing.stderr == "tokenguard: error: no such user: nobody@example.com\n"
    usage = subprocess.run([_script(), "users"], capture_output=True, text=True, env=env, timeout=60)
    assert usage.returncode == 2 and "Traceback" not in usage.stderr

    users, sessions = SQLiteUserStore(db), SQLiteSessionStore(db)
    try:
        principal = authenticate(Guard(Settings(secret=SECRET), users, sessions), token.stdout.strip())
        assert isinstance(principal, Principal) and principal.role == "robot"
    finally:
        users.close()
        sessions.close()


# --------------------------------------------------------------------------- audit trail


def test_changes_and_ended_sessions_are_recorded_in_the_audit_trail(run, guard: Guard) -> None:
    """With an audit store that keeps events, each command that voids something of a user's
    records one user_change event: the reason says what, the user agent says the command line."""
    audited = {"TOKENGUARD_AUDIT_STORE": "sqlite"}
    user_id = make_user(run)
    open_session(guard.sessions, user_id, "J")  # type: ignore[arg-type]
    open_session(guard.sessions, user_id, "K")  # type: ignore[arg-type]
    # No audit store named: the change is made, and only logged.
    assert run("users", "set-role", "ada@example.com", "author").code == 0
    steps: list[tuple[tuple[str, ...], str]] = [
        (("users", "set-role", "ada@example.com", "author"), ""),  # no change: no event
        (("users", "set-role", "ada@example.com", "viewer"), ""),
        (("users", "set-role", "ada@example.com", "viewer", "--admin"), ""),
        (("users", "set-password", "ada@example.com", "--password-stdin"), "another long password\n"),
        (("users", "revoke-session", "ada@example.com", session_id("J" * 22)), ""),
        (("users", "revoke-sessions", "ada@example.com"), ""),
        (("users", "suspend", "ada@example.com"), ""),
        (("users", "suspend", "ada@example.com"), ""),  # suspended already: sessions ended again
        (("users", "activate", "ada@example.com"), ""),
        (("tokens", "set", "ada@example.com"), ""),
        (("tokens", "revoke", "ada@example.com"), ""),
        (("users", "sessions", "ada@example.com"), ""),  # a read: no event
    ]
    for argv, stdin in steps:
        r = run(*argv, stdin=stdin, env=audited)
        assert r.code == 0, (argv, r.err)
    listed = run("audit", "list", "--json", env=audited)
    assert listed.code == 0, listed.err
    events = [json.loads(line) for line in listed.out.splitlines()]
    for event in events:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", event.pop("timestamp"))
    cli_change = {"event": "user_change", "outcome": "success", "user_id": user_id, "ip": None,
                  "user_agent": "tokenguard-cli", "origin": None, "provider": "default"}
    assert events == [  # newest first
        {**cli_change, "reason": reason}
        for reason in [
            "token_hash", "token_hash", "status", "sessions", "status", "sessions", "session",
            "password_hash", "admin_access", "role",
        ]
    ]
    only = run("audit", "list", "--event", "user_change", "--user", user_id, "--limit", "1", env=audited)
    assert only.out.endswith("  user_change  success  " + user_id + "  -  default  token_hash"
                             "  ua=tokenguard-cli  origin=-\n")
