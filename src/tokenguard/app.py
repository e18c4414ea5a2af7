"""The assembled core: settings, stores, the guard and the auth routes, built once.

Both shells (:mod:`tokenguard.shells.asgi`, :mod:`tokenguard.shells.wsgi`) wrap one
:class:`TokenGuard`.
Building it yourself lets several apps, the command line and your own code share stores.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from .auth.hashing import shared_pool
from .auth.mail import Mailer
from .auth.passwords import Passwords
from .auth.service import AuthService
from .closing import Resources
from .config import Settings, warn_unknown_settings
from .flow import run_async, run_sync
from .guard.decide import Guard
from .guard.feed import Feed
from .guard.feeds import revocation_feed_for
from .guard.invalidation import invalidation_for
from .guard.limits import Limits
from .guard.pipeline import RequestPipeline
from .http.cookies import clear_cookie
from .http.extras import build_extras
from .http.routes import AuthRouter
from .logs.audit import AsyncAuditStore, Audit, AuditStore
from .logs.filter import install_log_redaction
from .logs.redact import Redactor
from .stores import select
from .stores.base import (
    AsyncOnceStore,
    AsyncSessionStore,
    AsyncUserStore,
    OnceStore,
    SessionStore,
    UserStore,
)
from .stores.select import Flavour

__all__ = ["TokenGuard"]


def _passwords(settings: Settings) -> Passwords:
    # The process's hashing pool for these limits (tokenguard.auth.hashing): every guard of
    # the process configured alike shares it, so the bound holds per process.
    pool = shared_pool(
        settings.hash_concurrency, queue=settings.hash_queue, wait=settings.hash_wait_ms / 1000
    )
    return Passwords(pool=pool)


class TokenGuard:
    """Settings + stores + guard (+ the ``/auth`` routes), shared by the shells.

    ``TokenGuard()`` reads everything from the environment; keyword arguments that are not
    ``users``/``sessions``/``clock``/``passwords``/``once``/``mailer``/``audit`` (an audit
    store, see :mod:`tokenguard.stores.audit`) are settings (see
    :class:`~tokenguard.config.Settings`).

    :meth:`close` (or ``await`` :meth:`aclose`, or ``with`` / ``async with``) stops its
    background threads and closes the connections and files of what it made itself; stores
    and mailers passed in are left to their owner.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        users: UserStore | AsyncUserStore | None = None,
        sessions: SessionStore | AsyncSessionStore | None = None,
        flavour: Flavour = "sync",
        clock: Callable[[], float] = time.time,
        passwords: Passwords | None = None,
        once: OnceStore | AsyncOnceStore | None = None,
        mailer: Mailer | None = None,
        audit: AuditStore | AsyncAuditStore | None = None,
        **setting_overrides: Any,
    ) -> None:
        if settings is None:
            settings = Settings.from_env(**setting_overrides)
            warn_unknown_settings()  # a misspelt variable would otherwise go unnoticed
        elif setting_overrides:
            settings = settings.with_changes(**setting_overrides)
        self.settings = settings
        install_log_redaction(settings)
        #: What this object made and close() releases, in this order.
        self._resources = Resources()
        made: list[Any] = []
        if users is None or sessions is None:
            default_users, default_sessions = select.stores(settings, flavour)
            # A default store not used (the caller gave that one) is released at once.
            for default, given in ((default_users, users), (default_sessions, sessions)):
                if given is None:
                    made.append(default)
                else:
                    select.release_unused(default)
            users = users if users is not None else default_users
            sessions = sessions if sessions is not None else default_sessions
        self.users = users
        self.sessions = sessions
        self.clock = clock
        self.guard = Guard(settings, users, sessions, clock=clock)
        #: Session checks cached per process and invalidated over Redis pub/sub (Redis
        #: session stores only; see tokenguard.guard.invalidation), or None.
        self.invalidation = invalidation_for(settings, sessions, self.guard.cache)
        self.guard.invalidation = self.invalidation
        #: The thread bringing this process the revocations made by the others: the Redis
        #: subscriber above, PostgreSQL's LISTEN or the SQLite file's poller
        #: (tokenguard.guard.feeds); None for memory (one process).
        self.feed: Feed | None = self.invalidation or revocation_feed_for(sessions)
        if self.feed is not None:
            # Fail closed until it has caught up: see tokenguard.guard.revocation.
            self.feed.attach(self.guard.revocations, sessions)
            self._resources.add(self.feed)  # first: its thread reads the store
        #: login / refresh / logout, and the ``/auth`` routes that serve them.
        #: Rate limits and the login lockout, counted where RATE_LIMITER_STORE says.
        counter = select.counter(settings, flavour)
        made.append(counter)
        self.limits = Limits(settings, counter, clock=clock)
        #: Whether the shells count every request (RATE_LIMITER_ENABLED / _GLOBAL_ENABLED).
        self.throttles = self.limits.per_request
        if audit is None:
            audit = select.audit_store(settings, flavour, sessions)
            if audit is not None:
                made.append(audit)
        #: Authentication events: the "tokenguard.audit" log, and TOKENGUARD_AUDIT_STORE.
        self.audit = Audit(audit, clock=clock, redactor=Redactor.from_settings(settings))
        self.auth = AuthService(
            settings,
            users,
            sessions,
            clock=clock,
            passwords=passwords if passwords is not None else _passwords(settings),
            limits=self.limits,
            audit=self.audit,
            revocations=self.guard.revocations,
        )
        #: Password reset, two-factor (plugged into ``auth``'s login) and single sign-on.
        self.extras = build_extras(self.auth, sessions, once=once, mailer=mailer)
        if self.extras.sso is not None:
            self._resources.add(self.extras.sso.sso)  # the HTTP client it made, if any
        if mailer is None:
            self._resources.add(self.extras.mailer)  # sends what is queued, then stops
        if once is None:
            made.append(self.extras.once)
        self.router = AuthRouter(
            self.auth,
            settings,
            self.guard.verifier,
            extractor=self.guard.extractor,
            max_payload_bytes=settings.max_payload_bytes,
            account=self.extras.account,
            sso=self.extras.sso,
            providers=self.extras.providers,
            ldap=dict(self.extras.ldap),
            saml=self.extras.saml,
        )
        if settings.graphql_enabled or settings.graphql_auth_service_path:
            from .http.graphql import GraphQLRoutes  # needs the `graphql` extra

            self.router.add_graphql(GraphQLRoutes(self.router))
        #: The request path, one decision per request: what the shells call.
        self.pipeline = RequestPipeline(
            settings,
            self.guard,
            self.limits,
            self.audit,
            self.router,
            clear_session_cookie=clear_cookie(settings.session_cookie),
        )
        for resource in made:  # the stores last: everything above may still use them
            self._resources.add(resource)

    # -- revocation ----------------------------------------------------------------------

    def revoke_user(self, user_id: str) -> None:
        """Void every access token of ``user_id`` issued until now, in this process at once
        and, with a Redis, PostgreSQL or SQLite-file session store, in every process (for
        apps that change users in their own tables: a role, a password, a suspension).
        Blocking; raises :class:`~tokenguard.errors.AuthError` (503) when the other
        processes cannot be told.
        Sessions stay: the client refreshes into what the user now is (end them with the
        session store's ``revoke_user`` too to log the user out)."""
        run_sync(self.auth.revoke_user(user_id))

    def revoke_session(self, sid: str) -> None:
        """Void every access token of the session ``sid`` (:attr:`Principal.sid
        <tokenguard.principal.Principal.sid>`), here and, with a shared store, in every process.
        Blocking, like :meth:`revoke_user`. The session itself is ended by the store."""
        rv = self.guard.revocations
        entry = rv.revoke_session(sid)
        run_sync(self.auth.announce([entry]))

    async def arevoke_user(self, user_id: str) -> None:
        """:meth:`revoke_user` for an ``async``-flavour guard (its stores are awaited)."""
        await run_async(self.auth.revoke_user(user_id))

    async def arevoke_session(self, sid: str) -> None:
        """:meth:`revoke_session` for an ``async``-flavour guard."""
        await run_async(self.auth.announce([self.guard.revocations.revoke_session(sid)]))

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` or :meth:`aclose` has run."""
        return self._resources.closed

    def close(self) -> None:
        """Stop the background threads and close the connections and files this object
        made (idempotent).

        An ``async``-flavour guard on Redis holds asyncio connections, which only the event
        loop that opened them can close: ``await`` :meth:`aclose` there (this raises
        ``RuntimeError`` inside a running loop; outside one it tries a fresh loop and logs
        what it could not close). A request served afterwards still works (connections are
        opened again, session checks are no longer cached), but should not happen.
        """
        self._resources.close()

    async def aclose(self) -> None:
        """:meth:`close` for event loops: blocking steps run in a worker thread."""
        await self._resources.aclose()

    def __enter__(self) -> TokenGuard:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> TokenGuard:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
