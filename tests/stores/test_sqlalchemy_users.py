"""The SQLAlchemy bridge on tables of the app's own (the shared contract runs in
test_user_stores.py): integer keys, unmapped fields, case clashes, logins through both shells
that upgrade foreign hashes to argon2id, and a database that cannot be reached."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker
from werkzeug.security import generate_password_hash

from tests.helpers.sqla_models import ACCOUNT_COLUMNS, Account, Base, Member
from tests.security.harness import SECRET, Shell
from tokenguard.app import TokenGuard
from tokenguard.errors import ConfigError
from tokenguard.stores.base import StoreUnavailable, User
from tokenguard.stores.memory import MemorySessionStore
from tokenguard.stores.sqlalchemy import (
    AsyncSQLAlchemyUserStore,
    SQLAlchemyUserStore,
    sqlalchemy_users,
)

MEMBER_COLUMNS: dict[str, Any] = {"password_hash": "pw_hash"}
PASSWORD = "correct horse battery staple"
INVALID_CREDENTIALS = (
    b'{"errors":[{"message":"Invalid user credentials.","extensions":{"code":"INVALID_CREDENTIALS"}}]}'
)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    Base.metadata.create_all(eng)
    yield eng
    eng.dispose()


def members(engine: Engine) -> SQLAlchemyUserStore:
    store = sqlalchemy_users(Member, engine, **MEMBER_COLUMNS)
    assert isinstance(store, SQLAlchemyUserStore)
    return store


def add_member(engine: Engine, email: str, pw_hash: str | None, role: str | None = "editor") -> int:
    with sessionmaker(engine)() as s:
        row = Member(email=email, pw_hash=pw_hash, role=role)
        s.add(row)
        s.commit()
        return int(row.id)


def stored_hash(engine: Engine, member_id: int) -> str | None:
    with sessionmaker(engine)() as s:
        return s.execute(select(Member.pw_hash).where(Member.id == member_id)).scalar_one()


# -- the store on its own ------------------------------------------------------------------------


def test_integer_keys_both_ways(engine: Engine) -> None:
    store = members(engine)
    member_id = add_member(engine, "Ann@Example.com", None)
    found = store.get_by_id(str(member_id))
    assert found == User(id=str(member_id), email="Ann@Example.com", role="editor")
    assert store.get_by_email("ann@example.COM") == found
    for not_an_id in ("abc", "", "1.0", "٣", "-1 OR 1=1", "9" * 40):
        assert store.get_by_id(not_an_id) is None
    # A user tokenguard makes (single sign-on) gets the id the database assigns.
    created = store.create(User(id="7c1f8a36-uuid-from-tokenguard", email="new@example.com", role="viewer"))
    assert created.id.isdigit() and created.id != str(member_id)
    assert store.get_by_id(created.id) == created
    assert store.list_users() == [found, created]


def test_unmapped_fields_are_refused_not_dropped(engine: Engine) -> None:
    store = members(engine)
    member_id = str(add_member(engine, "ann@example.com", None))
    for change in ({"tfa_secret": "JBSWY3DPEHPK3PXP"}, {"status": "suspended"}, {"token_hash": "a" * 64}):
        with pytest.raises(ValueError, match="have no column in Member"):
            store.update(member_id, **change)
    with pytest.raises(ValueError, match="external_identifier"):
        store.create(User(id="x", email="sso@example.com", provider="idp", external_identifier="sub-1"))
    # Writing a default to an unmapped field loses nothing, so it is allowed.
    assert store.update(member_id, status="active", tfa_secret=None) is not None
    # Looking up by an unmapped field finds nobody.
    assert store.get_by_token_hash("a" * 64) is None
    assert store.get_by_external_identifier("sub-1") is None


def test_rows_that_differ_only_by_case_are_never_guessed(engine: Engine) -> None:
    store = members(engine)
    lower = add_member(engine, "bob@example.com", None)
    add_member(engine, "Bob@example.com", None)
    assert store.get_by_email("bob@example.com").id == str(lower)  # type: ignore[union-attr]
    assert store.get_by_email("BOB@example.com") is None  # two candidates: neither


def test_clashes_are_value_errors(engine: Engine) -> None:
    store = members(engine)
    first = str(add_member(engine, "a@example.com", None))
    second = str(add_member(engine, "b@example.com", None))
    with pytest.raises(ValueError):
        store.create(User(id=first, email="c@example.com"))
    with pytest.raises(ValueError):
        store.create(User(id="n", email="A@EXAMPLE.COM"))
    with pytest.raises(ValueError):
        store.update(second, email="a@Example.com")
    assert store.get_by_id(second).email == "b@example.com"  # type: ignore[union-attr]


def test_configuration_errors_say_what_is_wrong(engine: Engine) -> None:
    with pytest.raises(ConfigError) as caught:
        sqlalchemy_users(Member, engine, email="mail", password_hash="pw_hash", role="rank")
    assert str(caught.value) == "Member has no attribute(s) mail, rank (it has: email, id, pw_hash, role)"
    with pytest.raises(ConfigError, match="user fields are"):
        sqlalchemy_users(Member, engine, mail="email")
    with pytest.raises(ConfigError, match="not a mapped SQLAlchemy class"):
        sqlalchemy_users(dict, engine)
    with pytest.raises(ConfigError, match="needs an Engine"):
        sqlalchemy_users(Member, "sqlite://")


def test_an_unreachable_database_is_store_unavailable(tmp_path: Path) -> None:
    gone = create_engine(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")
    store = sqlalchemy_users(Member, gone, **MEMBER_COLUMNS)
    with pytest.raises(StoreUnavailable) as caught:
        store.get_by_email("a@example.com")
    assert caught.value.service == "users"


@given(email=st.emails(), noise=st.sampled_from([str.upper, str.lower, str.title]))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_e_mail_is_found_whatever_its_ascii_case(engine: Engine, email: str, noise: Any) -> None:
    store = sqlalchemy_users(Account, engine, **ACCOUNT_COLUMNS)
    user = User(id=f"id-{abs(hash(email))}", email=email)
    existing = store.get_by_email(email)
    if existing is None:
        store.create(user)
        user_id = user.id
    else:
        user_id = existing.id
    assert store.get_by_email(noise(email)).id == user_id  # type: ignore[union-attr]


# -- logins through both shells ---------------------------------------------------------------

HASHES = {
    "werkzeug-pbkdf2": lambda: generate_password_hash(PASSWORD, "pbkdf2:sha256:1000"),
    "werkzeug-scrypt": lambda: generate_password_hash(PASSWORD, "scrypt:1024:8:1"),
    "bcrypt": lambda: bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode(),
    "django-pbkdf2": lambda: "pbkdf2_sha256$1000$seasalt$"
    + __import__("base64").b64encode(
        __import__("hashlib").pbkdf2_hmac("sha256", PASSWORD.encode(), b"seasalt", 1000)
    ).decode(),
}


def _shell(kind: str, engine: Engine, url: str) -> Shell:
    if kind == "asgi":
        from sqlalchemy.ext.asyncio import create_async_engine

        users: Any = sqlalchemy_users(Member, create_async_engine(url.replace("sqlite:", "sqlite+aiosqlite:")), **MEMBER_COLUMNS)
        assert isinstance(users, AsyncSQLAlchemyUserStore)
    else:
        users = members(engine)
    guard = TokenGuard(
        users=users,
        sessions=MemorySessionStore(),
        flavour="async" if kind == "asgi" else "sync",
        secret=SECRET,
        login_stall_ms=0,
    )
    return Shell(kind, guard)


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
@pytest.mark.parametrize("scheme", sorted(HASHES))
def test_login_verifies_a_foreign_hash_and_upgrades_it(kind: str, scheme: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    try:
        member_id = add_member(engine, "ann@example.com", HASHES[scheme]())
        before = stored_hash(engine, member_id)
        shell = _shell(kind, engine, url)
        wrong = shell.request("POST", "/auth/login", json_body={"email": "ann@example.com", "password": "nope"})
        assert (wrong.status, wrong.body) == (401, INVALID_CREDENTIALS)
        assert stored_hash(engine, member_id) == before  # a failure changes nothing
        ok = shell.request("POST", "/auth/login", json_body={"email": "ANN@example.com", "password": PASSWORD})
        assert ok.status == 200, ok.body
        data = ok.json()["data"]
        me = shell.request("GET", "/items", headers={"Authorization": f"Bearer {data['access_token']}"})
        assert me.body == f"app {member_id} jwt".encode()
        after = stored_hash(engine, member_id)
        assert after is not None and after.startswith("$argon2id$") and after != before
        # The upgraded hash logs in too, and is not upgraded again.
        again = shell.request("POST", "/auth/login", json_body={"email": "ann@example.com", "password": PASSWORD})
        assert again.status == 200
        assert stored_hash(engine, member_id) == after
    finally:
        engine.dispose()


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_login_answers_503_when_the_table_cannot_be_reached(kind: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'missing' / 'app.db'}"
    engine = create_engine(url)
    try:
        shell = _shell(kind, engine, url)
        reply = shell.request("POST", "/auth/login", json_body={"email": "ann@example.com", "password": PASSWORD})
        assert reply.status == 503 and reply.code == "SERVICE_UNAVAILABLE"
        assert b"Traceback" not in reply.body
    finally:
        engine.dispose()


def test_a_sync_engine_needs_no_greenlet(tmp_path: Path) -> None:
    # SQLAlchemy 2.1 installs without greenlet, and its asyncio module refuses to import without
    # it: the bridge must serve a sync engine all the same, and name what an async one needs.
    import subprocess
    import sys

    code = f"""
import sys
sys.modules["greenlet"] = None  # as on a machine without it: `import greenlet` fails
from sqlalchemy import create_engine
from tests.helpers.sqla_models import ACCOUNT_COLUMNS, Account, Base
from tokenguard.stores.sqlalchemy import SQLAlchemyUserStore, sqlalchemy_users
engine = create_engine("sqlite:///{tmp_path / "users.db"}")
Base.metadata.create_all(engine)
store = sqlalchemy_users(Account, engine, **ACCOUNT_COLUMNS)
assert type(store) is SQLAlchemyUserStore, store
assert store.get_by_email("nobody@example.com") is None
# Nothing above imported SQLAlchemy's asyncio module: 2.1 refuses to import it without greenlet
# (2.0 imports it and fails at the first query instead).
if "sqlalchemy.ext.asyncio" in sys.modules:
    raise SystemExit("the sync path imported sqlalchemy.ext.asyncio")
try:
    sqlalchemy_users(Account, object(), **ACCOUNT_COLUMNS)
except Exception as exc:
    print(type(exc).__name__, exc)
"""
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == (
        "ConfigError sqlalchemy_users needs an Engine, AsyncEngine, sessionmaker or "
        "async_sessionmaker"
    )
