"""PostgreSQL on its own: ``tokenguard db migrate``, the stores' refusal of an unmigrated
schema, the ``DB_*`` settings, one-time claims, and what lands in the tables."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.helpers.auth import SECRET
from tests.helpers.pg_server import PgServer
from tokenguard import cli
from tokenguard.app import TokenGuard
from tokenguard.config import ConfigError, Settings
from tokenguard.stores import pg_schema
from tokenguard.stores.base import StoreUnavailable, User
from tokenguard.stores.pg_schema import SCHEMA_VERSION, SchemaNotMigrated, migrate
from tokenguard.stores.postgres import (
    AsyncPgOnceStore,
    AsyncPgSessionStore,
    AsyncPgUserStore,
    PgAuditStore,
    PgOnceStore,
    PgSessionStore,
    PgUserStore,
    conninfo_from_settings,
)

from .conftest import new_token, real_now_ms, record

pytestmark = pytest.mark.pg

TABLES = {
    "tokenguard_audit",
    "tokenguard_migrations",
    "tokenguard_once",
    "tokenguard_revocations",
    "tokenguard_sessions",
    "tokenguard_users",
}


def tables(conninfo: str) -> set[str]:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = current_schema()"
        ).fetchall()
    return {r[0] for r in rows}


def migrations(conninfo: str) -> list[tuple[int, str]]:
    with psycopg.connect(conninfo) as conn:
        return [
            (int(v), str(n))
            for v, n in conn.execute(
                "SELECT version, name FROM tokenguard_migrations ORDER BY version"
            ).fetchall()
        ]


def run_cli(*argv: str, env: dict[str, str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdout, sys.stderr, sys.stdin
    sys.stdout, sys.stderr, sys.stdin = out, err, io.StringIO("")
    try:
        code = cli.main(list(argv), environ=env)
    finally:
        sys.stdout, sys.stderr, sys.stdin = saved
    return code, out.getvalue(), err.getvalue()


# -- migrate ------------------------------------------------------------------------------


def test_migrate_builds_a_fresh_schema_once_and_records_its_version(pg_empty: str) -> None:
    assert tables(pg_empty) == set()
    applied = migrate(pg_empty)
    assert [m.version for m in applied] == [1, 2] and SCHEMA_VERSION == 2
    assert tables(pg_empty) == TABLES
    everything = [(m.version, m.name) for m in pg_schema.MIGRATIONS]
    assert migrations(pg_empty) == everything
    users = PgUserStore(pg_empty)
    users.create(User(id="u1", email="a@example.com"))
    # a re-run is a no-op: nothing applied, nothing recorded twice, the data kept
    assert migrate(pg_empty) == []
    assert migrations(pg_empty) == everything
    assert users.get_by_id("u1") == User(id="u1", email="a@example.com")
    users.close()


def test_concurrent_migrators_apply_each_step_once(pg_empty: str) -> None:
    results: list[list[Any]] = []

    def one() -> None:
        results.append(migrate(pg_empty))

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    # Each step applied exactly once, by whichever migrator got to it first.
    assert sorted(m.version for r in results for m in r) == [1, 2]
    assert migrations(pg_empty) == [(m.version, m.name) for m in pg_schema.MIGRATIONS]


def test_the_cli_migrates_with_a_connection_string(pg_empty: str) -> None:
    env = {"DB_CLIENT": "pg", "DB_CONNECTION_STRING": pg_empty}
    assert run_cli("db", "migrate", env=env) == (
        0,
        f"{SCHEMA_VERSION}\n",
        "".join(f"applied migration {m.version}: {m.name}\n" for m in pg_schema.MIGRATIONS),
    )
    assert run_cli("db", "migrate", env=env) == (
        0,
        f"{SCHEMA_VERSION}\n",
        f"the schema is up to date (version {SCHEMA_VERSION})\n",
    )
    assert tables(pg_empty) == TABLES


def test_the_cli_reports_the_schema_status(pg_empty: str) -> None:
    env = {"DB_CLIENT": "pg", "DB_CONNECTION_STRING": pg_empty}
    assert run_cli("db", "status", env=env) == (
        1,
        "",
        f"the schema is at version 0, this tokenguard needs {SCHEMA_VERSION}: run `tokenguard "
        "db migrate`\n",
    )
    run_cli("db", "migrate", env=env)
    assert run_cli("db", "status", env=env) == (
        0,
        "".join(f"{m.version}  {m.name}\n" for m in pg_schema.MIGRATIONS),
        f"the schema is up to date (version {SCHEMA_VERSION})\n",
    )
    assert run_cli("db", "status", env={})[0] == 2


def test_the_installed_script_migrates_with_the_directus_variables(
    pg_server: PgServer,
) -> None:
    name = f"tg_{new_token()[:12].lower().replace('-', '_')}"
    with psycopg.connect(pg_server.conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        env = {
            "PATH": "/usr/bin:/bin",
            "DB_CLIENT": "pg",
            "DB_HOST": "127.0.0.1",
            "DB_PORT": str(pg_server.port),
            "DB_DATABASE": name,
            "DB_USER": "tokenguard",
            "DB_PASSWORD": "unused-with-trust",
        }
        script = Path(sys.executable).parent / "tokenguard"
        done = subprocess.run(
            [str(script), "db", "migrate"], env=env, capture_output=True, text=True, timeout=60
        )
        assert (done.returncode, done.stdout) == (0, f"{SCHEMA_VERSION}\n"), done.stderr
        assert "applied migration 1" in done.stderr
        database = f"{pg_server.conninfo.replace('dbname=postgres', f'dbname={name}')}"
        assert tables(database) == TABLES
        # and the user commands work on that database too
        created = subprocess.run(
            [str(script), "users", "create", "ops@example.com", "--admin"],
            env=env, capture_output=True, text=True, timeout=60,
        )
        assert created.returncode == 0, created.stderr
        listed = subprocess.run(
            [str(script), "users", "list", "--json"],
            env=env, capture_output=True, text=True, timeout=60,
        )
        assert '"email": "ops@example.com"' in listed.stdout
        assert "unused-with-trust" not in done.stderr + created.stderr + listed.stderr
    finally:
        with psycopg.connect(pg_server.conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_the_cli_says_what_to_set_without_pg_and_when_unreachable() -> None:
    code, out, err = run_cli("db", "migrate", env={})
    assert (code, out) == (2, "")
    assert "set DB_CLIENT=pg" in err
    from tests.helpers.redis_server import free_port

    env = {
        "DB_CLIENT": "pg",
        "DB_CONNECTION_STRING": f"host=127.0.0.1 port={free_port()} user=x password=hunter2"
        " connect_timeout=2",
    }
    code, out, err = run_cli("db", "migrate", env=env)
    assert (code, out) == (1, "")
    assert err == "tokenguard: error: the database is unavailable: OperationalError\n"


# -- the stores refuse an unmigrated schema -------------------------------------------------


def test_stores_refuse_an_unmigrated_schema_and_say_how_to_fix_it(
    pg_empty: str, caplog: pytest.LogCaptureFixture
) -> None:
    users = PgUserStore(pg_empty)
    with pytest.raises(SchemaNotMigrated, match=r"run `tokenguard db migrate`"):
        users.db.check_schema()
    # on the request path: 503 (never a guess), and the reason in the log
    with pytest.raises(StoreUnavailable) as info:
        users.get_by_email("a@example.com")
    assert info.value.service == "database"
    assert "tokenguard db migrate" in info.value.reason
    assert any("no tokenguard tables" in r.getMessage() for r in caplog.records)
    # the CLI prints the same advice in one line
    env = {"DB_CLIENT": "pg", "DB_CONNECTION_STRING": pg_empty}
    code, out, err = run_cli("users", "list", env=env)
    assert (code, out) == (1, "")
    assert err.startswith("tokenguard: error: the PostgreSQL database has no tokenguard tables")
    assert "`tokenguard db migrate`" in err
    # and once migrated, the same store works without a restart
    migrate(pg_empty)
    assert users.get_by_email("a@example.com") is None
    users.close()


def test_an_older_schema_is_refused(pg_conninfo: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pg_schema, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    sessions = PgSessionStore(pg_conninfo)
    with pytest.raises(SchemaNotMigrated) as info:
        sessions.db.check_schema()
    assert str(info.value) == (
        f"the PostgreSQL database has tokenguard schema version {SCHEMA_VERSION}, this "
        f"version needs {SCHEMA_VERSION + 1}: run `tokenguard db migrate` (with the same DB_* "
        "settings) first"
    )
    sessions.close()


def test_the_async_stores_refuse_it_too(pg_empty: str) -> None:
    async def main() -> None:
        sessions = AsyncPgSessionStore(pg_empty)
        with pytest.raises(SchemaNotMigrated):
            await sessions.db.check_schema()
        with pytest.raises(StoreUnavailable):
            await sessions.get("x.y", 0)
        await sessions.aclose()

    anyio.run(main)


# -- settings -------------------------------------------------------------------------------


def test_directus_variables_make_the_connection_string() -> None:
    s = Settings.from_env(
        {
            "SECRET": SECRET,
            "DB_CLIENT": "pg",
            "DB_HOST": "db.internal",
            "DB_PORT": "6432",
            "DB_DATABASE": "directus",
            "DB_USER": "app",
            "DB_PASSWORD": "p w'd",
        }
    )
    assert (s.db_client, s.db_host, s.db_port, s.db_database, s.db_user) == (
        "pg", "db.internal", 6432, "directus", "app",
    )
    assert psycopg.conninfo.conninfo_to_dict(conninfo_from_settings(s)) == {
        "host": "db.internal",
        "port": "6432",
        "dbname": "directus",
        "user": "app",
        "password": "p w'd",
    }
    assert "p w'd" not in repr(s)
    url = "postgresql://app:secret@db.internal:5433/directus?sslmode=require"
    s = Settings.from_env({"SECRET": SECRET, "DB_CLIENT": "Postgres", "DB_CONNECTION_STRING": url})
    assert s.db_client == "pg"  # Directus's other name for it
    assert conninfo_from_settings(s) == url
    assert "secret@" not in repr(s)


def test_bad_database_settings_are_refused() -> None:
    for bad, message in (
        ({"db_client": "mysql"}, r"DB_CLIENT must be pg \(or postgres\) or sqlite3"),
        ({"db_client": "pg"}, "DB_CLIENT=pg needs DB_CONNECTION_STRING"),
        ({"db_client": "pg", "db_host": "h", "db_port": 0}, "DB_PORT must be a TCP port"),
        ({"audit_store": "pg"}, "TOKENGUARD_AUDIT_STORE=pg needs DB_CLIENT=pg"),
    ):
        with pytest.raises(ConfigError, match=message):
            Settings(secret=SECRET, **bad)


@pytest.fixture
def pg_guard_settings(pg_conninfo: str) -> Settings:
    return Settings(
        secret=SECRET,
        db_client="pg",
        db_connection_string=pg_conninfo,
        audit_store="pg",
        db_filename="ignored-when-pg.db",
    )


def test_db_client_pg_puts_every_store_on_one_pool(pg_guard_settings: Settings) -> None:
    core = TokenGuard(pg_guard_settings)
    try:
        assert isinstance(core.users, PgUserStore)
        assert isinstance(core.sessions, PgSessionStore)
        assert isinstance(core.extras.once, PgOnceStore)
        store = core.audit.store
        assert isinstance(store, PgAuditStore)
        assert core.users.db is core.sessions.db is core.extras.once.db is store.db
        core.users.create(User(id="u1", email="a@example.com"))
        assert core.users.get_by_email("A@example.com") is not None
    finally:
        core.close()
    assert core.users.db._pool is None  # closed with the last store
    assert not Path("ignored-when-pg.db").exists()


def test_the_async_flavour_gets_the_async_stores(pg_guard_settings: Settings) -> None:
    async def main() -> None:
        core = TokenGuard(pg_guard_settings, flavour="async")
        try:
            assert isinstance(core.users, AsyncPgUserStore)
            assert isinstance(core.sessions, AsyncPgSessionStore)
            assert isinstance(core.extras.once, AsyncPgOnceStore)
            await core.users.create(User(id="u1", email="a@example.com"))
            assert await core.users.get_by_id("u1") == User(id="u1", email="a@example.com")
        finally:
            await core.aclose()

    anyio.run(main)


# -- one-time claims and what is stored ----------------------------------------------------


@pytest.fixture(params=["pg", "pg-async"])
def once(request: pytest.FixtureRequest, pg_conninfo: str) -> Iterator[Any]:
    from contextlib import ExitStack

    from .conftest import open_pg_store

    with ExitStack() as stack:
        yield open_pg_store(request.param, stack, PgOnceStore, AsyncPgOnceStore, pg_conninfo)


def test_once_store_claims(once: Any, pg_conninfo: str) -> None:
    assert once.claim("k", 1000, 0) is True
    assert once.claim("k", 1000, 999) is False
    assert once.claim("other", 1000, 999) is True
    assert once.claim("k", 1000, 1000) is True  # forgotten once its time is over
    with psycopg.connect(pg_conninfo) as conn:
        keys = [r[0] for r in conn.execute("SELECT key FROM tokenguard_once").fetchall()]
    assert len(keys) == 2 and all(len(k) == 64 and k != "k" for k in keys)  # hashed


def test_of_concurrent_claims_exactly_one_wins(pg_conninfo: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    store = PgOnceStore(pg_conninfo)
    barrier = threading.Barrier(16)

    def one(_: int) -> bool:
        barrier.wait()
        return store.claim("totp:u1:123456", 30_000, 5_000)

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(16)))
    assert results.count(True) == 1
    store.close()


def test_no_token_is_stored_in_clear_and_nul_bytes_round_trip(pg_conninfo: str) -> None:
    sessions = PgSessionStore(pg_conninfo)
    now = real_now_ms()
    token = new_token()
    odd = "\x01already-escaped? \x00 \x01\x02"
    rec = record(token, expires_at_ms=now + 60_000, user_agent=odd, ip="\x00")
    sessions.create(rec)
    assert sessions.get(rec.token_hash, now) == rec
    with psycopg.connect(pg_conninfo) as conn:
        dump = str(conn.execute("SELECT * FROM tokenguard_sessions").fetchall())
    assert token not in dump and token[22:] not in dump
    sessions.close()


def test_values_postgres_cannot_hold_are_a_value_error(pg_conninfo: str) -> None:
    users = PgUserStore(pg_conninfo)
    with pytest.raises(ValueError):
        users.create(User(id="1", email="nul\x00@example.com"))
    with pytest.raises(ValueError):
        users.create(User(id="\ud800", email="surrogate@example.com"))
    assert users.list_users() == []
    users.close()


def test_the_guard_refuses_to_start_on_an_unmigrated_database(pg_empty: str) -> None:
    settings = Settings(secret=SECRET, db_client="pg", db_connection_string=pg_empty)
    for flavour in ("sync", "async"):
        with pytest.raises(SchemaNotMigrated, match=r"run `tokenguard db migrate`"):
            TokenGuard(settings, flavour=flavour)  # type: ignore[arg-type]
    migrate(pg_empty)
    TokenGuard(settings).close()


def test_an_unreachable_database_at_start_up_is_a_503_later_not_a_crash(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from tests.helpers.redis_server import free_port

    settings = Settings(
        secret=SECRET,
        db_client="pg",
        db_host="127.0.0.1",
        db_port=free_port(),
        db_user="nobody",
        db_password="hunter2",
    )
    core = TokenGuard(settings)
    try:
        assert any("unreachable at start-up" in r.getMessage() for r in caplog.records)
        with pytest.raises(StoreUnavailable):
            core.users.get_by_id("u1")  # type: ignore[union-attr]
        assert "hunter2" not in caplog.text
    finally:
        core.close()


def test_many_coroutines_may_open_the_async_pool_at_once(pg_conninfo: str) -> None:
    import asyncio

    async def main() -> None:
        sessions = AsyncPgSessionStore(pg_conninfo)
        now = real_now_ms()
        rec = record(new_token(), expires_at_ms=now + 60_000)
        try:
            results = await asyncio.gather(
                sessions.create(rec), *(sessions.get(rec.token_hash, now) for _ in range(30))
            )
            assert all(r in (None, rec) for r in results[1:])
            assert await sessions.get(rec.token_hash, now) == rec
        finally:
            await sessions.aclose()

    asyncio.run(main())


def test_our_connection_defaults_never_override_the_users() -> None:
    from psycopg.conninfo import conninfo_to_dict

    from tokenguard.stores.pg_driver import with_options

    mine = conninfo_to_dict(
        with_options("postgresql://app@db/x?keepalives_idle=99&options=-csearch_path%3Dauth", 1000)
    )
    assert mine["keepalives_idle"] == "99"
    assert mine["tcp_user_timeout"] == "10000"
    assert mine["options"] == "-c statement_timeout=1000 -csearch_path=auth"
    assert (mine["host"], mine["user"], mine["dbname"]) == ("db", "app", "x")


def test_pool_sizes_come_from_directus_names(pg_conninfo: str) -> None:
    s = Settings.from_env(
        {
            "SECRET": SECRET,
            "DB_CLIENT": "pg",
            "DB_CONNECTION_STRING": pg_conninfo,
            "DB_POOL__MIN": "0",
            "DB_POOL__MAX": "3",
        }
    )
    core = TokenGuard(s)
    try:
        core.users.get_by_id("x")  # type: ignore[union-attr]
        pool = core.users.db._pool  # type: ignore[union-attr]
        assert (pool.min_size, pool.max_size) == (0, 3)
    finally:
        core.close()
    with pytest.raises(ConfigError, match="DB_POOL__MIN"):
        Settings(secret=SECRET, db_pool_min=4, db_pool_max=3)


def test_lookups_with_a_nul_find_nothing_instead_of_failing(pg_conninfo: str) -> None:
    """PostgreSQL's text cannot hold NUL, so nothing stored has one: a client-chosen value
    with one (an e-mail in a reset request, a forged token) is simply not found."""
    users = PgUserStore(pg_conninfo)
    sessions = PgSessionStore(pg_conninfo)
    audit = PgAuditStore(pg_conninfo)
    now = real_now_ms()
    kept = record(new_token(), expires_at_ms=now + 60_000)
    sessions.create(kept)
    for nul in ("a\x00b", "a\ud800b"):  # a NUL; a lone surrogate (no UTF-8 for it)
        assert users.get_by_email(nul) is None
        assert users.get_by_id(nul) is None
        assert users.get_by_token_hash(nul) is None
        assert users.get_by_external_identifier(nul) is None
        assert sessions.get(nul + "." + "0" * 64, now) is None
        assert sessions.rotate(nul, kept, now_ms=now, grace_ms=0).status == "missing"
        assert sessions.revoke(nul) is None
        assert sessions.revoke_user(nul) == 0
        assert sessions.revoke_user("nobody", except_family=nul) == 0
        assert audit.recent(5, user_id=nul) == []
    assert sessions.get(kept.token_hash, now) == kept
    for store in (users, sessions, audit):
        store.close()


def test_a_reset_request_for_an_e_mail_with_a_nul_is_answered_as_for_anyone(
    pg_conninfo: str,
) -> None:
    import json

    from werkzeug.test import Client

    from tests.helpers.auth import FAST, make_user, plain_wsgi_app
    from tokenguard.shells.wsgi import TokenGuardWSGI

    seed = PgUserStore(pg_conninfo)
    seed.create(make_user())
    seed.close()
    core = TokenGuard(
        secret=SECRET, db_client="pg", db_connection_string=pg_conninfo, login_stall_ms=0,
        passwords=FAST,
    )
    client = Client(TokenGuardWSGI(plain_wsgi_app, guard=core))
    try:
        for email in ("a\u0000@example.com", "nobody@example.com"):
            reply = client.post(
                "/auth/password/request",
                data=json.dumps({"email": email}),
                headers={"content-type": "application/json"},
            )
            assert (reply.status_code, reply.get_data()) == (204, b"")
    finally:
        core.close()


def test_a_default_store_the_caller_replaced_does_not_keep_the_pool_open(
    pg_guard_settings: Settings,
) -> None:
    from tokenguard.stores.memory import MemoryUserStore

    async def main() -> None:
        core = TokenGuard(pg_guard_settings, flavour="async", users=MemoryUserStore())
        assert isinstance(core.sessions, AsyncPgSessionStore)
        database = core.sessions.db
        assert await core.sessions.get("x.y", 0) is None  # opens the pool
        await core.aclose()
        assert database._pool is None

    anyio.run(main)


def test_the_cli_revokes_sessions_and_lists_the_audit_trail_in_postgres(pg_conninfo: str) -> None:
    from tests.helpers.auth import make_user
    from tokenguard.logs.audit import AuditEvent

    users = PgUserStore(pg_conninfo)
    user = users.create(make_user())
    sessions = PgSessionStore(pg_conninfo)
    now = real_now_ms()
    rec = record(new_token(), user_id=user.id, expires_at_ms=now + 60_000)
    sessions.create(rec)
    audit = PgAuditStore(pg_conninfo)
    audit.append(
        AuditEvent(event="login", outcome="success", timestamp="2027-01-15T08:00:00.000Z",
                   user_id=user.id, ip="203.0.113.7", user_agent="ua\x1b[31m", origin=None,
                   provider="default", reason=None)
    )
    env = {"DB_CLIENT": "pg", "DB_CONNECTION_STRING": pg_conninfo}
    code, out, err = run_cli("users", "revoke-sessions", user.email, env=env)
    assert code == 0, err
    assert sessions.get(rec.token_hash, now) is None
    code, out, err = run_cli("audit", "list", "--store", "pg", env=env)
    assert (code, err) == (0, "")
    assert out == (
        f"2027-01-15T08:00:00.000Z  login  success  {user.id}  203.0.113.7  default  -"
        "  ua=ua?[31m  origin=-\n"
    )
    code, _, err = run_cli("audit", "list", "--store", "pg", env={})
    assert (code, err) == (2, "tokenguard: error: TOKENGUARD_AUDIT_STORE=pg needs DB_CLIENT=pg\n")
    for store in (users, sessions, audit):
        store.close()


_text = st.text(max_size=40)


def test_any_user_round_trips_or_is_refused_as_a_value_error(pg_conninfo: str) -> None:
    """E-mails, names and identifiers are whatever an admin or an identity provider sends:
    every one PostgreSQL can hold round-trips; the rest (a NUL, a lone surrogate) is a
    ValueError, never a 503 and never a half-written user."""
    users = PgUserStore(pg_conninfo)
    counter = iter(range(10**9))

    @hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(email=_text.filter(bool), first=st.none() | _text, external=st.none() | _text)
    def check(email: str, first: str | None, external: str | None) -> None:
        user = User(
            id=f"u{next(counter)}", email=email, first_name=first, external_identifier=external
        )
        storable = all(
            v is None or ("\x00" not in v and not any(0xD800 <= ord(c) < 0xE000 for c in v))
            for v in (email, first, external)
        )
        try:
            users.create(user)
        except ValueError:
            if storable:  # only a clash with an earlier example may refuse it
                clash = users.get_by_email(email) or (
                    external is not None and users.get_by_external_identifier(external)
                )
                assert clash
                return
            assert users.get_by_id(user.id) is None
            return
        assert storable
        assert users.get_by_id(user.id) == user
        assert users.get_by_email(email.casefold()) == user

    check()
    users.close()


def test_rotations_purge_whole_expired_families_only(pg_conninfo: str) -> None:
    sessions = PgSessionStore(pg_conninfo)
    now = real_now_ms()
    gone = record(new_token(), expires_at_ms=now + 1_000)
    old_half = record(new_token(), expires_at_ms=now + 1_000)
    live_half = record(new_token(old_half.family), expires_at_ms=now + 3_600_000)
    active = record(new_token(), expires_at_ms=now + 3_600_000)
    for rec in (gone, old_half, live_half, active):
        sessions.create(rec)
    later = now + 120_000  # past the purge interval, and past the short records' expiry
    nxt = record(new_token(active.family), expires_at_ms=later + 3_600_000)
    assert sessions.rotate(active.token_hash, nxt, now_ms=later, grace_ms=0).status == "rotated"
    with psycopg.connect(pg_conninfo) as conn:
        left = {r[0] for r in conn.execute("SELECT token_hash FROM tokenguard_sessions")}
    # the fully expired family went; the half-expired one stays whole (a logout with its
    # expired token must still find and revoke the live one)
    assert left == {old_half.token_hash, live_half.token_hash, active.token_hash, nxt.token_hash}
    assert sessions.revoke(old_half.token_hash) == old_half
    assert sessions.get(live_half.token_hash, later) is None
    sessions.close()
