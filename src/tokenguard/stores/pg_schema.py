"""The PostgreSQL schema of tokenguard's tables, and the migrations that build it.

``tokenguard db migrate`` runs :func:`migrate`; the stores only *check* the schema (see
:func:`schema_check`) and refuse to work on a database that was never migrated or is behind.
Migrations are numbered, each applied once in its own transaction and recorded in
``tokenguard_migrations``; they only ever add (tables, columns, indexes), never drop, so an
older tokenguard keeps working on a database a newer one migrated (a rolling deploy).

Tables are prefixed ``tokenguard_`` so that they can live next to an application's own.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "SchemaNotMigrated", "migrate", "schema_check"]


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: ``version`` (1, 2, …), a short name, and its statements."""

    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "users, sessions, one-time claims and the audit trail",
        (
            # e-mails and external identifiers are unique casefolded (Python's str.casefold,
            # the same rule as the other backends), kept in *_key columns.
            """CREATE TABLE IF NOT EXISTS tokenguard_users (
                seq BIGSERIAL NOT NULL UNIQUE,
                id TEXT PRIMARY KEY,
                email TEXT NOT NULL,
                email_key TEXT NOT NULL UNIQUE,
                password_hash TEXT,
                role TEXT,
                status TEXT NOT NULL,
                admin_access BOOLEAN NOT NULL,
                app_access BOOLEAN NOT NULL,
                provider TEXT NOT NULL,
                first_name TEXT,
                last_name TEXT,
                token_hash TEXT UNIQUE,
                tfa_secret TEXT,
                external_identifier TEXT,
                external_key TEXT UNIQUE
            )""",
            """CREATE TABLE IF NOT EXISTS tokenguard_sessions (
                token_hash TEXT PRIMARY KEY,
                family TEXT NOT NULL,
                user_id TEXT NOT NULL,
                expires_at_ms BIGINT NOT NULL,
                created_at_ms BIGINT NOT NULL,
                ip TEXT,
                user_agent TEXT,
                origin TEXT,
                next_hash TEXT,
                live_until_ms BIGINT
            )""",
            "CREATE INDEX IF NOT EXISTS tokenguard_sessions_family ON tokenguard_sessions (family)",
            "CREATE INDEX IF NOT EXISTS tokenguard_sessions_user ON tokenguard_sessions (user_id)",
            "CREATE INDEX IF NOT EXISTS tokenguard_sessions_expiry"
            " ON tokenguard_sessions (expires_at_ms)",
            """CREATE TABLE IF NOT EXISTS tokenguard_once (
                key TEXT PRIMARY KEY,
                expires_at_ms BIGINT NOT NULL
            )""",
            "CREATE INDEX IF NOT EXISTS tokenguard_once_expiry ON tokenguard_once (expires_at_ms)",
            """CREATE TABLE IF NOT EXISTS tokenguard_audit (
                id BIGSERIAL PRIMARY KEY,
                event TEXT NOT NULL,
                outcome TEXT NOT NULL,
                timestamp TEXT NOT NULL,
                user_id TEXT,
                ip TEXT,
                user_agent TEXT,
                origin TEXT,
                provider TEXT,
                reason TEXT
            )""",
            "CREATE INDEX IF NOT EXISTS tokenguard_audit_user ON tokenguard_audit (user_id)",
        ),
    ),
    Migration(
        2,
        "the window of revocations (access tokens refused in every process)",
        (
            # Append-only: a revocation is a row (member ``s:<family>`` or ``u:<user id>``,
            # at_ms = when, or the user's not-before time), announced by NOTIFY in the
            # transaction that writes it; rows older than one token window are pruned.
            """CREATE TABLE IF NOT EXISTS tokenguard_revocations (
                seq BIGSERIAL PRIMARY KEY,
                member TEXT NOT NULL,
                at_ms BIGINT NOT NULL
            )""",
            "CREATE INDEX IF NOT EXISTS tokenguard_revocations_member"
            " ON tokenguard_revocations (member, at_ms)",
            "CREATE INDEX IF NOT EXISTS tokenguard_revocations_at"
            " ON tokenguard_revocations (at_ms)",
        ),
    ),
)

#: The version this tokenguard needs (the last migration's).
SCHEMA_VERSION = MIGRATIONS[-1].version

# An arbitrary constant: the transaction-scoped advisory lock that serializes migrators
# (two instances starting `tokenguard db migrate` at once apply each step once).
_MIGRATE_LOCK = 0x746B6E67_6D696772  # "tkngmigr"

_CREATE_TABLE = (
    "CREATE TABLE IF NOT EXISTS tokenguard_migrations ("
    " version INTEGER PRIMARY KEY,"
    " name TEXT NOT NULL,"
    " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
)
_HOW_TO = "run `tokenguard db migrate` (with the same DB_* settings) first"


class SchemaNotMigrated(ConfigError):
    """The database lacks tokenguard's tables, or has an older version of them."""


def _message(found: int | None) -> str:
    if found is None:
        return f"the PostgreSQL database has no tokenguard tables: {_HOW_TO}"
    return (
        f"the PostgreSQL database has tokenguard schema version {found}, this version "
        f"needs {SCHEMA_VERSION}: {_HOW_TO}"
    )


#: A step of :func:`schema_check`: run ``sql`` and send back its rows.
SchemaStep = tuple[str, tuple[Any, ...]]


def schema_check() -> Generator[SchemaStep, list[tuple[Any, ...]], None]:
    """The stores' start-up check, as steps for either driver; raises
    :class:`SchemaNotMigrated` when the schema is missing or behind."""
    rows = yield ("SELECT to_regclass('tokenguard_migrations') IS NOT NULL", ())
    if not rows or not rows[0][0]:
        raise SchemaNotMigrated(_message(None))
    rows = yield ("SELECT max(version) FROM tokenguard_migrations", ())
    found = rows[0][0] if rows else None
    if found is None or int(found) < SCHEMA_VERSION:
        raise SchemaNotMigrated(_message(None if found is None else int(found)))


def migrate(conninfo: str) -> list[Migration]:
    """Bring the database at ``conninfo`` to :data:`SCHEMA_VERSION`; returns the migrations
    applied now (none when it was up to date). Idempotent, and safe to run from several
    places at once."""
    import psycopg

    applied: list[Migration] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for migration in MIGRATIONS:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_LOCK,))
                conn.execute(_CREATE_TABLE)
                row = conn.execute(
                    "SELECT 1 FROM tokenguard_migrations WHERE version = %s",
                    (migration.version,),
                ).fetchone()
                if row is not None:
                    continue
                for statement in migration.statements:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO tokenguard_migrations (version, name) VALUES (%s, %s)",
                    (migration.version, migration.name),
                )
                applied.append(migration)
    return applied


def applied_versions(conninfo: str) -> list[tuple[int, str]]:
    """The migrations recorded in the database (version, name), oldest first."""
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass('tokenguard_migrations') IS NOT NULL").fetchone()
        if not exists or not exists[0]:
            return []
        rows = conn.execute(
            "SELECT version, name FROM tokenguard_migrations ORDER BY version"
        ).fetchall()
    return [(int(v), str(n)) for v, n in rows]
