"""The ``tokenguard`` command line: secrets, users, static tokens, two-factor, the audit
trail and the PostgreSQL schema (``tokenguard db migrate``).

It works on the SQLite file named by ``DB_FILENAME`` (as the app does), or ``--db FILE``;
with ``DB_CLIENT=pg`` (and no ``--db``) on the PostgreSQL database of the ``DB_*`` settings.
Passwords are never taken as arguments, where they would land in shell history and in
``ps``: they are read from standard input (``--password-stdin``) or prompted for without
echo (``--password-prompt``). Static tokens are printed once, alone on standard output, so
that ``TOKEN=$(tokenguard tokens set admin@example.com)`` works; only their hash is stored.

Exit codes: 0 success, 1 a failure the command could not get past (no such user, e-mail
taken, database unreadable…), 2 a usage error, 130 interrupted.

With an audit store that keeps events (``TOKENGUARD_AUDIT_STORE`` sqlite, redis or pg), the
commands that change a user's credentials or access, or end its sessions, record a
``user_change`` event there, its user agent ``tokenguard-cli`` (see docs/security/audit.md).
"""

from __future__ import annotations

import argparse
import datetime
import getpass
import json
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from . import __version__
from .config import Settings, generate_secret
from .errors import ConfigError, MissingExtra
from .logs.audit import EVENTS, Audit, AuditStore
from .stores import select
from .stores.base import SessionInfo, SessionStore, StoreUnavailable, User, UserStore
from .stores.pg_schema import SchemaNotMigrated
from .stores.sqlite import SchemaTooNew
from .users import (
    create_user,
    find_user,
    set_password,
    set_role,
    set_static_token,
    set_status,
)

__all__ = ["CommandError", "main"]

#: Builds the user store from a database file name, instead of the one the settings choose
#: (for embedding and tests).
StoreFactory = Callable[[str], UserStore]
#: Builds the session store from the database file name and the environment, instead of the
#: one the settings choose.
SessionFactory = Callable[[str, Mapping[str, str]], SessionStore]


#: The user agent of the events the command line records: no address, no origin.
CLI_USER_AGENT = "tokenguard-cli"


@dataclass(frozen=True, slots=True)
class _CommandLine:
    """The client of the command line's audit events (a :class:`~tokenguard.logs.audit.
    ClientLike`): the field an administrator filters on to tell them from a request's."""

    ip: str | None = None
    user_agent: str | None = CLI_USER_AGENT
    origin: str | None = None


class CommandError(Exception):
    """A failure to report in one line, without a traceback. ``code`` is the exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """Raises instead of exiting, so that :func:`main` returns its status when embedded."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        raise CommandError(f"{message} (see `{self.prog} --help`)", 2)


# --------------------------------------------------------------------------- context


class _Context:
    """What a command needs: the parsed arguments, the streams, and (lazily) the settings and
    the stores they choose (:mod:`tokenguard.stores.select`, as the app chooses them)."""

    def __init__(
        self,
        args: argparse.Namespace,
        environ: Mapping[str, str],
        store_factory: StoreFactory | None,
        session_factory: SessionFactory | None,
        stdin: TextIO,
        stdout: TextIO,
        stderr: TextIO,
    ) -> None:
        self.args = args
        self.environ = environ
        self.store_factory = store_factory
        self.session_factory = session_factory
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self._settings: Settings | None = None
        self._stores: tuple[UserStore, SessionStore] | None = None
        self._audit: Audit | None = None
        #: Everything made here, closed by close() in this order.
        self._made: list[Any] = []

    def settings(self) -> Settings:
        """The app's settings as far as stores go: ``--db`` and ``--store`` win over the
        environment. No SECRET is needed to reach a store (commands that sign something read
        the real one, see :func:`_settings`), so a throw-away one stands in for it."""
        if self._settings is None:
            overrides: dict[str, Any] = {"secret": generate_secret()}
            db = getattr(self.args, "db", None)
            if db:
                # --db names a SQLite file: it wins over DB_CLIENT=pg as over DB_FILENAME.
                overrides.update(db_filename=db, db_client="sqlite3")
            store = getattr(self.args, "store", None)
            if store:
                overrides["audit_store"] = store
            try:
                self._settings = Settings.from_env(self.environ, **overrides)
            except ConfigError as exc:
                raise CommandError(str(exc), 2) from None
        return self._settings

    @property
    def db(self) -> str:
        db = self.settings().db_filename
        if not db:
            raise CommandError("no database: set DB_FILENAME or pass --db FILE", 2)
        if "\0" in db:
            raise CommandError("the database file name contains a NUL character", 2)
        return db

    @property
    def postgres(self) -> str | None:
        """The PostgreSQL connection string when the app uses one (``DB_CLIENT=pg``) and no
        ``--db FILE`` says otherwise."""
        settings = self.settings()
        if settings.db_client != "pg":
            return None
        from .stores.postgres import conninfo_from_settings

        return conninfo_from_settings(settings)

    def _pair(self, *, create: bool) -> tuple[UserStore, SessionStore]:
        if self._stores is None:
            settings = self.settings()
            if settings.db_client != "pg":
                db = self.db
                if not create and db != ":memory:" and not os.path.exists(db):
                    raise CommandError(f"no database at {db!r} (create a user first)")
            users, sessions = select.stores(settings, "sync")
            if self.store_factory is not None:
                select.release_unused(users)
                users = self.store_factory(self.db)
            if self.session_factory is not None:
                select.release_unused(sessions)
                sessions = self.session_factory(self.db, self.environ)
            self._made += (users, sessions)
            self._stores = (users, sessions)
        return self._stores

    def store(self, *, create: bool = False) -> UserStore:
        """The user store; only commands that add users may create a missing file, so that
        a typo in ``--db`` is reported instead of silently making an empty database."""
        return self._pair(create=create)[0]

    def sessions(self) -> SessionStore:
        return self._pair(create=True)[1]

    def audit(self) -> Audit:
        """Where the commands' events go: the app's audit store when it keeps events another
        process can read (a memory store would die with this process: only the log then)."""
        if self._audit is None:
            settings = self.settings()
            store: AuditStore | None = None
            if settings.audit_store in ("sqlite", "redis", "pg"):
                # On PostgreSQL the trail shares the user store's pool, as for `audit list`.
                shared = self.store() if settings.audit_store == "pg" else None
                store = self.made(select.audit_store(settings, "sync", shared))
            self._audit = Audit(store)
        return self._audit

    def made(self, resource: Any) -> Any:
        """Close ``resource`` with the stores (before them: it may share their connection)."""
        self._made.insert(0, resource)
        return resource

    def close(self) -> None:
        for store in self._made:
            close = getattr(store, "close", None)
            if callable(close):
                close()

    def out(self, text: str) -> None:
        print(text, file=self.stdout)

    def note(self, text: str) -> None:
        print(text, file=self.stderr)

    def user(self, email_or_id: str) -> User:
        try:
            return find_user(self.store(), email_or_id)
        except LookupError:
            raise CommandError(f"no such user: {email_or_id}") from None


# --------------------------------------------------------------------------- passwords


def _read_password(ctx: _Context) -> str | None:
    """The password chosen by ``--password-stdin``/``--password-prompt``, or ``None``."""
    args = ctx.args
    if getattr(args, "password_stdin", False):
        # One line: the trailing newline that `echo` or a here-string adds is not part of it.
        password = ctx.stdin.readline().rstrip("\r\n")
        if not password:
            raise CommandError("no password on standard input")
        return password
    if getattr(args, "password_prompt", False):
        password = getpass.getpass("Password: ")
        if not password:
            raise CommandError("the password is empty")
        if getpass.getpass("Repeat password: ") != password:
            raise CommandError("the passwords do not match")
        return password
    return None


class _RefusePlainPassword(argparse.Action):
    def __call__(self, *args: object, **kwargs: object) -> None:
        raise CommandError(
            "a password is never taken as an argument (it would be kept in shell history and "
            "shown by ps): use --password-stdin or --password-prompt",
            2,
        )


def _add_password_options(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument("--password", action=_RefusePlainPassword, help=argparse.SUPPRESS)
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input",
    )
    group.add_argument(
        "--password-prompt",
        action="store_true",
        help="prompt for the password (not echoed), twice",
    )


# --------------------------------------------------------------------------- commands


def _cmd_secret(ctx: _Context) -> int:
    ctx.out(generate_secret())
    return 0


def _describe(user: User) -> dict[str, object]:
    # Never the password hash, the static token's hash or the TFA secret: only whether set.
    return {
        "id": user.id,
        "email": user.email,
        "role": user.role,
        "status": user.status,
        "admin_access": user.admin_access,
        "app_access": user.app_access,
        "password": user.password_hash is not None,
        "static_token": user.token_hash is not None,
        "provider": user.provider,
        "external_identifier": user.external_identifier,
    }


def _cmd_users_create(ctx: _Context) -> int:
    args = ctx.args
    password = _read_password(ctx)
    store = ctx.store(create=True)
    try:
        user = create_user(
            store,
            args.email,
            password=password,
            role=args.role,
            admin_access=args.admin,
            app_access=args.app,
        )
    except ValueError as exc:
        if store.get_by_email(args.email) is not None:
            raise CommandError(f"a user with e-mail {args.email} already exists") from None
        raise CommandError(str(exc)) from None
    ctx.out(user.id)
    ctx.note(f"created {user.email} (role {user.role or '-'})")
    if password is None:
        ctx.note("it has no password: set one with `users set-password` or give it a token")
    return 0


def _yes_no(value: bool) -> str:
    return "yes" if value else "no"


def _cmd_users_list(ctx: _Context) -> int:
    users = sorted(ctx.store().list_users(), key=lambda u: u.email.lower())
    rows = [_describe(u) for u in users]
    if ctx.args.json:
        ctx.out(json.dumps(rows))
        return 0
    header = ("EMAIL", "ROLE", "STATUS", "ADMIN", "APP", "PASSWORD", "TOKEN", "ID")
    table = [header] + [
        (
            str(r["email"]),
            str(r["role"] or "-"),
            str(r["status"]),
            _yes_no(bool(r["admin_access"])),
            _yes_no(bool(r["app_access"])),
            _yes_no(bool(r["password"])),
            _yes_no(bool(r["static_token"])),
            str(r["id"]),
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        ctx.out("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _cmd_users_set_role(ctx: _Context) -> int:
    args = ctx.args
    user = ctx.user(args.email)
    role = None if args.role.lower() in ("", "none", "null") else args.role
    app = args.app
    if args.admin and app is None:
        app = True  # as at creation: admin access without app access makes no sense
    updated = set_role(ctx.store(), user.id, role, admin_access=args.admin, app_access=app)
    # Tokens issued before a change are refused; the client refreshes into the new role.
    # The decision is the one every path makes (tokenguard.guard.revocation.revoking_change).
    reason = _change(user, updated)
    if reason is not None:
        _revoke_tokens(ctx, user)
        _audit(ctx, user, reason)
    ctx.note(
        f"{updated.email}: role {updated.role or '-'}, admin {_yes_no(updated.admin_access)}, "
        f"app {_yes_no(updated.app_access)}"
    )
    return 0


def _cmd_users_set_password(ctx: _Context) -> int:
    user = ctx.user(ctx.args.email)
    password = _read_password(ctx)
    assert password is not None  # the option group is required
    updated = set_password(ctx.store(), user.id, password)
    _revoke_tokens(ctx, user)
    _audit(ctx, user, _change(user, updated) or "password_hash")
    ctx.note(f"password of {user.email} changed")
    return 0


def _change(before: User, after: User | None) -> str | None:
    """Why ``before``'s change voids its access tokens, or ``None`` (the guard's one rule,
    :func:`~tokenguard.guard.revocation.revoking_change`; imported here, not at the top:
    the guard package is heavy for a command line)."""
    from .guard.revocation import revoking_change

    return revoking_change(before, after)


def _audit(ctx: _Context, user: User, reason: str) -> None:
    """Record the command's change of ``user`` in the audit trail, as the app records one
    (``user_change``; the command line as its client). A store that fails is reported on
    standard error by the audit logger, and fails nothing: the change is made already."""
    from .flow import run_sync

    run_sync(
        ctx.audit().emit(
            "user_change", "success", _CommandLine(), user_id=user.id,
            provider=user.provider, reason=reason,
        )
    )


def _revoke_tokens(ctx: _Context, user: User) -> None:
    """Void the user's access tokens issued until now in every running process: announced
    through the session store when it can (Redis, PostgreSQL, a SQLite file: its window of
    revocations, see tokenguard.guard.feed); memory stores have no way to reach the servers."""
    from .guard.revocation import Entry, encode_entries

    record = getattr(ctx.sessions(), "record_revocations", None)
    if record is None:
        return
    entry = Entry("u", user.id, -int(-time.time() * 1000 // 1))
    try:
        record([(entry.member, entry.at_ms)], encode_entries([entry]))
    except Exception as exc:
        raise CommandError(
            f"could not revoke the access tokens of {user.email}: {type(exc).__name__}: {exc}"
        ) from None


def _revoke_sessions(ctx: _Context, user: User) -> int:
    try:
        count = ctx.sessions().revoke_user(user.id)
    except Exception as exc:  # Redis or the file being down must not hide what was done
        raise CommandError(
            f"could not revoke the sessions of {user.email}: {type(exc).__name__}: {exc}"
        ) from None
    _revoke_tokens(ctx, user)
    ctx.note(f"revoked {count} session{'' if count == 1 else 's'} of {user.email}")
    return count


def _set_status(ctx: _Context, status: str) -> int:
    user = ctx.user(ctx.args.email)
    updated = set_status(ctx.store(), user.id, status)  # type: ignore[arg-type]
    ctx.note(f"{user.email} is now {status}")
    reason = _change(user, updated)
    if status != "active":
        # A session-mode cookie is checked against its session on every request, so revoking
        # the sessions shuts the user out now rather than when the cookie expires.
        _revoke_sessions(ctx, user)
        ctx.note("it can no longer log in, refresh or use its static token or access tokens")
        # Suspended again: no status changed, but its sessions were ended all the same.
        _audit(ctx, user, reason or "sessions")
    elif reason is not None:
        # Reactivated: nothing it held was valid anyway; what a token of the suspension
        # window might claim is voided all the same, as for any change of status.
        _revoke_tokens(ctx, user)
        _audit(ctx, user, reason)
    return 0


def _cmd_users_revoke_sessions(ctx: _Context) -> int:
    user = ctx.user(ctx.args.email)
    _revoke_sessions(ctx, user)
    # Not session_end_others: those events are a user ending its own sessions.
    _audit(ctx, user, "sessions")
    return 0


def _session_rows(ctx: _Context, user: User) -> list[SessionInfo]:
    try:
        return list(ctx.sessions().sessions(user.id, int(time.time() * 1000)))
    except Exception as exc:
        raise CommandError(
            f"could not read the sessions of {user.email}: {type(exc).__name__}: {exc}"
        ) from None


def _iso_ms(ms: int) -> str:
    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _cmd_users_sessions(ctx: _Context) -> int:
    user = ctx.user(ctx.args.email)
    # The public id (a hash of the family, see tokenguard.stores.base.session_id), as the
    # user sees it in GET /auth/sessions: never the family, a refresh-token prefix.
    rows = [
        {
            "id": s.id,
            "created_on": _iso_ms(s.created_at_ms),
            "last_used_on": _iso_ms(s.last_used_at_ms),
            "expires": _iso_ms(s.expires_at_ms),
            "ip": s.ip,
            "user_agent": s.user_agent,
            "origin": s.origin,
        }
        for s in _session_rows(ctx, user)
    ]
    if ctx.args.json:
        ctx.out(json.dumps(rows))
        return 0
    if not rows:
        ctx.note(f"{user.email} has no live session")
        return 0
    header = ("ID", "CREATED", "LAST USED", "IP", "USER AGENT")
    table = [header] + [
        (
            str(r["id"]),
            str(r["created_on"]),
            str(r["last_used_on"]),
            str(r["ip"] or "-"),
            # One line per session whatever the client sent.
            repr(r["user_agent"])[1:-1][:60] if r["user_agent"] else "-",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        ctx.out("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _cmd_users_revoke_session(ctx: _Context) -> int:
    from .guard.revocation import Entry, encode_entries

    user = ctx.user(ctx.args.email)
    wanted = ctx.args.id
    found = [s for s in _session_rows(ctx, user) if s.id == wanted]
    if not found:
        raise CommandError(f"{user.email} has no live session {wanted!r}")
    family = found[0].family
    store = ctx.sessions()
    try:
        ended = store.revoke_session(user.id, family)
        # Its access tokens in every running process, as for a logout (Redis only: other
        # stores have no way to reach the servers; a Redis store has announced it already,
        # and twice revokes nothing more).
        record = getattr(store, "record_revocations", None)
        if ended and record is not None:
            entry = Entry("s", family, int(time.time() * 1000))
            record([(entry.member, entry.at_ms)], encode_entries([entry]))
    except Exception as exc:
        raise CommandError(
            f"could not revoke the session of {user.email}: {type(exc).__name__}: {exc}"
        ) from None
    if not ended:
        raise CommandError(f"{user.email} has no live session {wanted!r}")
    ctx.note(f"revoked session {wanted} of {user.email}")
    # Not session_end, a user ending its own session; no session id: no field holds one.
    _audit(ctx, user, "session")
    return 0


def _cmd_users_suspend(ctx: _Context) -> int:
    return _set_status(ctx, "suspended")


def _cmd_users_activate(ctx: _Context) -> int:
    return _set_status(ctx, "active")


def _print_token(ctx: _Context, user: User, verb: str) -> int:
    token = set_static_token(ctx.store(), user.id)
    ctx.out(token)
    ctx.note(f"static token {verb} for {user.email}; it is shown once and cannot be read back")
    # After it is printed: shown once, it must not be lost to a trail that cannot be reached.
    _audit(ctx, user, "token_hash")
    return 0


def _cmd_tokens_set(ctx: _Context) -> int:
    user = ctx.user(ctx.args.email)
    if user.token_hash is not None:
        raise CommandError(
            f"{user.email} already has a static token: use `tokens rotate` to replace it"
        )
    return _print_token(ctx, user, "set")


def _cmd_tokens_rotate(ctx: _Context) -> int:
    user = ctx.user(ctx.args.email)
    if user.token_hash is None:
        raise CommandError(f"{user.email} has no static token: use `tokens set`")
    return _print_token(ctx, user, "rotated (the old one no longer works)")


def _cmd_tokens_revoke(ctx: _Context) -> int:
    user = ctx.user(ctx.args.email)
    if user.token_hash is None:
        ctx.note(f"{user.email} had no static token")
        return 0
    set_static_token(ctx.store(), user.id, "")
    _audit(ctx, user, "token_hash")
    ctx.note(f"static token of {user.email} revoked")
    return 0


# --------------------------------------------------------------------------- two-factor, reset


def _settings(ctx: _Context) -> Settings:
    # SECRET keys the TOTP encryption and the reset tokens: the app's own settings are needed.
    try:
        return Settings.from_env(ctx.environ)
    except ConfigError as exc:
        raise CommandError(f"settings: {exc}", 2) from None


def _enrol(ctx: _Context, user: User, verb: str) -> int:
    from .auth.totp import SecretBox, otpauth_url

    try:
        import pyotp
    except ImportError:
        raise CommandError(str(MissingExtra("two-factor", "pyotp", "totp"))) from None
    settings = _settings(ctx)
    secret = pyotp.random_base32()
    sealed = SecretBox(settings.secret_bytes).seal(user.id, secret)
    ctx.store().update(user.id, tfa_secret=sealed)
    issuer = getattr(ctx.args, "issuer", None) or settings.totp_issuer
    ctx.out(otpauth_url(secret, user.email, issuer))
    ctx.note(
        f"two-factor {verb} for {user.email}: give them the otpauth URL above (or its secret "
        f"{secret}) for their authenticator app; it is shown once"
    )
    return 0


def _cmd_tfa_enable(ctx: _Context) -> int:
    user = ctx.user(ctx.args.email)
    if user.tfa_secret:
        raise CommandError(f"{user.email} already has two-factor: use `tfa reset` to replace it")
    return _enrol(ctx, user, "enabled")


def _cmd_tfa_reset(ctx: _Context) -> int:
    user = ctx.user(ctx.args.email)
    return _enrol(ctx, user, "reset (the old authenticator entry no longer works)")


def _cmd_tfa_disable(ctx: _Context) -> int:
    user = ctx.user(ctx.args.email)
    if not user.tfa_secret:
        ctx.note(f"{user.email} had no two-factor")
        return 0
    updated = ctx.store().update(user.id, tfa_secret=None)
    _revoke_tokens(ctx, user)
    _audit(ctx, user, _change(user, updated) or "tfa_secret")
    ctx.note(f"two-factor of {user.email} disabled")
    return 0


def _cmd_users_send_reset(ctx: _Context) -> int:
    from .auth.mail import mailer_from_settings
    from .auth.reset import PasswordReset, is_url_allowed
    from .auth.service import AuthService
    from .flow import run_sync

    settings = _settings(ctx)
    user = ctx.user(ctx.args.email)
    reset_url = ctx.args.reset_url
    if reset_url and not is_url_allowed(reset_url, settings.password_reset_url_allow_list):
        raise CommandError(f"{reset_url} is not in PASSWORD_RESET_URL_ALLOW_LIST", 2)
    if not reset_url and not settings.public_url:
        raise CommandError("set PUBLIC_URL or pass --reset-url to say where the link leads", 2)
    try:
        mailer = mailer_from_settings(settings)
    except ConfigError as exc:
        raise CommandError(f"settings: {exc}", 2) from None
    service = AuthService(settings, ctx.store(), ctx.sessions())
    once = ctx.made(select.once_store(ctx.settings(), service.sessions))
    reset = PasswordReset(service, once, mailer)
    try:
        sent = run_sync(reset.send_link(user.email, reset_url))
    except OSError as exc:  # smtplib errors are OSErrors; say which, never the message
        raise CommandError(f"the mail could not be sent: {type(exc).__name__}") from None
    if not sent:
        raise CommandError(f"{user.email} cannot reset a password (not active, or SSO user)")
    ctx.note(f"password reset link sent to {user.email}")
    return 0


# --------------------------------------------------------------------------- audit


def _audit_store(ctx: _Context) -> AuditStore:
    """The store the app writes events to (``TOKENGUARD_AUDIT_STORE``, or ``--store``)."""
    settings = ctx.settings()
    kind = settings.audit_store
    if kind not in ("sqlite", "redis", "pg"):
        raise CommandError(
            f"TOKENGUARD_AUDIT_STORE is {'not set' if kind == 'none' else kind}: only a sqlite,"
            " redis or pg audit store keeps events another process can read (or pass --store "
            "sqlite|redis|pg)",
            2,
        )
    if kind == "sqlite":
        db = ctx.db
        if db != ":memory:" and not os.path.exists(db):
            raise CommandError(f"no database at {db!r}")
    # On PostgreSQL the trail shares the user store's pool (its schema checked once).
    store = select.audit_store(settings, "sync", ctx.store() if kind == "pg" else None)
    assert store is not None  # the settings named a store that keeps events
    return store


def _printable(text: str | None) -> str:
    # A user agent is the client's choice: no terminal escape of theirs reaches the screen.
    if not text:
        return "-"
    return "".join(c if c.isprintable() else "?" for c in text)


def _cmd_audit_list(ctx: _Context) -> int:
    args = ctx.args
    if args.limit < 1:
        raise CommandError("--limit must be at least 1", 2)
    store = _audit_store(ctx)
    try:
        events = store.recent(args.limit, user_id=args.user, event=args.event)
    finally:
        close = getattr(store, "close", None)
        if callable(close):
            close()
    if args.json:
        for event in events:
            ctx.out(event.to_json())
        return 0
    for e in events:
        cells = (e.timestamp, e.event, e.outcome, e.user_id, e.ip, e.provider, e.reason)
        tail = f"  ua={_printable(e.user_agent)}  origin={_printable(e.origin)}"
        ctx.out("  ".join(_printable(c) for c in cells) + tail)
    return 0


# --------------------------------------------------------------------------- database


def _cmd_db_migrate(ctx: _Context) -> int:
    conninfo = ctx.postgres
    if conninfo is None:
        raise CommandError(
            "`db migrate` prepares a PostgreSQL database: set DB_CLIENT=pg and "
            "DB_CONNECTION_STRING (or DB_HOST, DB_PORT, DB_DATABASE, DB_USER, DB_PASSWORD); "
            "a SQLite file (DB_FILENAME) migrates itself",
            2,
        )
    import psycopg

    from .stores.pg_schema import SCHEMA_VERSION, migrate

    try:
        applied = migrate(conninfo)
    except psycopg.Error as exc:
        # The class name only: libpq's messages may quote the connection string.
        raise CommandError(f"the database is unavailable: {type(exc).__name__}") from None
    for migration in applied:
        ctx.note(f"applied migration {migration.version}: {migration.name}")
    if not applied:
        ctx.note(f"the schema is up to date (version {SCHEMA_VERSION})")
    ctx.out(str(SCHEMA_VERSION))
    return 0


def _cmd_db_status(ctx: _Context) -> int:
    conninfo = ctx.postgres
    if conninfo is None:
        raise CommandError("`db status` reads a PostgreSQL database: set DB_CLIENT=pg", 2)
    import psycopg

    from .stores.pg_schema import SCHEMA_VERSION, applied_versions

    try:
        applied = applied_versions(conninfo)
    except psycopg.Error as exc:
        raise CommandError(f"the database is unavailable: {type(exc).__name__}") from None
    for version, name in applied:
        ctx.out(f"{version}  {name}")
    current = max((v for v, _ in applied), default=0)
    if current < SCHEMA_VERSION:
        ctx.note(
            f"the schema is at version {current}, this tokenguard needs {SCHEMA_VERSION}:"
            " run `tokenguard db migrate`"
        )
        return 1
    ctx.note(f"the schema is up to date (version {current})")
    return 0


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation tools)."""
    # --db is accepted before or after the command; SUPPRESS keeps a later one from
    # resetting an earlier one to None.
    db_parent = _Parser(add_help=False)
    db_parent.add_argument(
        "--db",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="SQLite database file (default: $DB_FILENAME)",
    )

    parser = _Parser(
        prog="tokenguard",
        description="Manage tokenguard's secret, users and static tokens.",
        parents=[db_parent],
    )
    parser.add_argument("--version", action="version", version=f"tokenguard {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    secret = commands.add_parser("secret", help="print a new strong SECRET")
    secret.set_defaults(func=_cmd_secret)

    users = commands.add_parser("users", help="create, list and change users")
    user_cmds = users.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    user_cmds.required = True

    create = user_cmds.add_parser("create", parents=[db_parent], help="create a user")
    create.add_argument("email", metavar="EMAIL")
    create.add_argument("--role", help="role name (e.g. administrator, editor)")
    create.add_argument("--admin", action="store_true", help="grant admin access (implies --app)")
    create.add_argument("--app", action="store_true", help="grant app access")
    _add_password_options(create, required=False)
    create.set_defaults(func=_cmd_users_create)

    listing = user_cmds.add_parser("list", parents=[db_parent], help="list users (no secrets)")
    listing.add_argument("--json", action="store_true", help="print one JSON array")
    listing.set_defaults(func=_cmd_users_list)

    set_role_p = user_cmds.add_parser(
        "set-role", parents=[db_parent], help="change a user's role and access flags"
    )
    set_role_p.add_argument("email", metavar="EMAIL", help="e-mail or id")
    set_role_p.add_argument("role", metavar="ROLE", help='role name, or "none"')
    set_role_p.add_argument(
        "--admin", action=argparse.BooleanOptionalAction, default=None, help="admin access"
    )
    set_role_p.add_argument(
        "--app", action=argparse.BooleanOptionalAction, default=None, help="app access"
    )
    set_role_p.set_defaults(func=_cmd_users_set_role)

    set_pw = user_cmds.add_parser(
        "set-password", parents=[db_parent], help="change a user's password"
    )
    set_pw.add_argument("email", metavar="EMAIL", help="e-mail or id")
    _add_password_options(set_pw, required=True)
    set_pw.set_defaults(func=_cmd_users_set_password)

    for name, func, text in (
        ("suspend", _cmd_users_suspend, "stop a user from logging in or using its token"),
        ("activate", _cmd_users_activate, "let a suspended user in again"),
        ("revoke-sessions", _cmd_users_revoke_sessions, "log a user out everywhere"),
    ):
        p = user_cmds.add_parser(name, parents=[db_parent], help=text)
        p.add_argument("email", metavar="EMAIL", help="e-mail or id")
        p.set_defaults(func=func)

    user_sessions = user_cmds.add_parser(
        "sessions", parents=[db_parent], help="list a user's live sessions, newest use first"
    )
    user_sessions.add_argument("email", metavar="EMAIL", help="e-mail or id")
    user_sessions.add_argument("--json", action="store_true", help="print one JSON array")
    user_sessions.set_defaults(func=_cmd_users_sessions)

    revoke_one = user_cmds.add_parser(
        "revoke-session", parents=[db_parent], help="log a user out of one session"
    )
    revoke_one.add_argument("email", metavar="EMAIL", help="e-mail or id")
    revoke_one.add_argument("id", metavar="ID", help="a session id from `users sessions`")
    revoke_one.set_defaults(func=_cmd_users_revoke_session)

    send_reset = user_cmds.add_parser(
        "send-reset", parents=[db_parent], help="mail a user a password reset link"
    )
    send_reset.add_argument("email", metavar="EMAIL", help="e-mail or id")
    send_reset.add_argument(
        "--reset-url", metavar="URL", help="page the link opens (in the allow list)"
    )
    send_reset.set_defaults(func=_cmd_users_send_reset)

    tfa = commands.add_parser("tfa", help="two-factor (TOTP) of a user")
    tfa_cmds = tfa.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    tfa_cmds.required = True
    for name, func, text in (
        ("enable", _cmd_tfa_enable, "enrol a user: store a new secret, print its otpauth URL"),
        ("reset", _cmd_tfa_reset, "replace a user's secret (lost phone), print the new URL"),
        ("disable", _cmd_tfa_disable, "remove a user's two-factor"),
    ):
        p = tfa_cmds.add_parser(name, parents=[db_parent], help=text)
        p.add_argument("email", metavar="EMAIL", help="e-mail or id")
        if name != "disable":
            p.add_argument("--issuer", help="name shown in the app (TOKENGUARD_TOTP_ISSUER)")
        p.set_defaults(func=func)

    audit = commands.add_parser("audit", help="the audit trail of authentication events")
    audit_cmds = audit.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    audit_cmds.required = True
    audit_list = audit_cmds.add_parser(
        "list", parents=[db_parent], help="print recent events, newest first"
    )
    audit_list.add_argument("--limit", type=int, default=50, metavar="N", help="at most N")
    audit_list.add_argument("--user", metavar="ID", help="only this user id's events")
    audit_list.add_argument("--event", metavar="E", choices=sorted(EVENTS), help="only event E")
    audit_list.add_argument(
        "--store", choices=("sqlite", "redis", "pg"), help="default: $TOKENGUARD_AUDIT_STORE"
    )
    audit_list.add_argument("--json", action="store_true", help="one JSON object per line")
    audit_list.set_defaults(func=_cmd_audit_list)

    database = commands.add_parser("db", help="the PostgreSQL schema (DB_CLIENT=pg)")
    db_cmds = database.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    db_cmds.required = True
    migrate_p = db_cmds.add_parser(
        "migrate", help="create or update tokenguard's tables (idempotent, never drops)"
    )
    migrate_p.set_defaults(func=_cmd_db_migrate)
    status_p = db_cmds.add_parser(
        "status", help="list the applied migrations; exit 1 if the schema is behind"
    )
    status_p.set_defaults(func=_cmd_db_status)

    tokens = commands.add_parser("tokens", help="static tokens")
    token_cmds = tokens.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    token_cmds.required = True
    for name, func, text in (
        ("set", _cmd_tokens_set, "give a user a new static token and print it once"),
        ("rotate", _cmd_tokens_rotate, "replace a user's static token and print the new one"),
        ("revoke", _cmd_tokens_revoke, "remove a user's static token"),
    ):
        p = token_cmds.add_parser(name, parents=[db_parent], help=text)
        p.add_argument("email", metavar="EMAIL", help="e-mail or id")
        p.set_defaults(func=func)
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    store_factory: StoreFactory | None = None,
    session_factory: SessionFactory | None = None,
) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit status.

    Stores are the ones the settings choose (:mod:`tokenguard.stores.select`), unless
    ``store_factory`` or ``session_factory`` builds them."""
    stdin, stdout, stderr = sys.stdin, sys.stdout, sys.stderr
    ctx: _Context | None = None
    try:
        args = build_parser().parse_args(argv)
        ctx = _Context(
            args,
            os.environ if environ is None else environ,
            store_factory,
            session_factory,
            stdin,
            stdout,
            stderr,
        )
        status: int = args.func(ctx)
        return status
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else 0
    except CommandError as exc:
        print(f"tokenguard: error: {exc}", file=stderr)
        return exc.code
    except StoreUnavailable as exc:
        cause = exc.__cause__ or exc.reason
        print(f"tokenguard: error: the database is unavailable: {cause}", file=stderr)
        return 1
    except (SchemaTooNew, SchemaNotMigrated) as exc:
        print(f"tokenguard: error: {exc}", file=stderr)
        return 1
    except sqlite3.DatabaseError as exc:
        print(f"tokenguard: error: cannot use the database: {exc}", file=stderr)
        return 1
    except EOFError:
        print("tokenguard: error: no password given", file=stderr)
        return 1
    except KeyboardInterrupt:
        print("", file=stderr)
        return 130
    finally:
        if ctx is not None:
            ctx.close()
