"""What the core asks of storage: users, static tokens and refresh sessions.

Each protocol comes in a sync and an async flavour with the *same method names*; the core's
flows (see :mod:`tokenguard.flow`) are written once and driven by either. Secrets never reach
a store in clear: static tokens and refresh tokens arrive as SHA-256 hex digests.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = [
    "AsyncOnceStore",
    "AsyncSessionStore",
    "AsyncUserStore",
    "OnceStore",
    "RotateOutcome",
    "SessionInfo",
    "SessionRecord",
    "SessionStore",
    "StoreUnavailable",
    "User",
    "UserStore",
    "family_of",
    "refresh_token_key",
    "session_id",
    "summarize_sessions",
]

#: Refresh tokens are 64 characters of ``A-Za-z0-9_-`` (like Directus's nanoid(64)); the
#: first ``FAMILY_LENGTH`` name the session family and stay the same across rotations, so
#: that a backend can keep a whole family under one key (one Redis hash slot).
REFRESH_TOKEN_LENGTH = 64
FAMILY_LENGTH = 22

#: How long a store keeps a revocation when the app has not said (see
#: :func:`~tokenguard.stores.select.set_revocation_windows`): Directus's default lifetimes
#: (``SESSION_COOKIE_TTL`` 1 day for a user, ``ACCESS_TOKEN_TTL`` 15 minutes for a session)
#: plus the largest leeway allowed, 5 minutes.
DEFAULT_REVOCATION_WINDOW_MS = 86_400_000 + 300_000
DEFAULT_SESSION_REVOCATION_WINDOW_MS = 900_000 + 300_000


def revocation_prune_bounds(
    newest_ms: int, window_ms: int, session_window_ms: int
) -> tuple[int, int, int]:
    """What a table of revocations (PostgreSQL, SQLite) prunes after writing rows up to
    ``newest_ms``: every row older than the first bound, and the sessions' rows (members
    ``s:…``) from the second bound to the third (their own, shorter window).

    The sessions' band is one session window wide, not open-ended: an index on ``at_ms``
    serves it, and it passes over the users' rows of that band only, never the whole day of
    them a session window would otherwise run into. A session's row the band missed (no
    write for longer than a session window) goes with the users' window; keeping a
    revocation longer is never wrong, only larger.
    """
    session_window_ms = min(session_window_ms, window_ms)  # a session never outlives a user
    session_cut = newest_ms - session_window_ms
    return newest_ms - window_ms, session_cut - session_window_ms, session_cut


def refresh_token_key(token: str) -> str:
    """The store key of a refresh token: ``<family>.<SHA-256 hex of the whole token>``.

    The family part is a random identifier, not a secret; the token itself is never stored.
    """
    digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{token[:FAMILY_LENGTH]}.{digest}"


def family_of(token_hash: str) -> str:
    """The family part of a key made by :func:`refresh_token_key`."""
    return token_hash.partition(".")[0]


def session_id(family: str) -> str:
    """The public id of the session ``family`` (what ``GET /auth/sessions`` lists and
    ``DELETE /auth/sessions/{id}`` takes): 32 hex digits of SHA-256.

    Why not the family itself: the family is the first 22 characters of every refresh token
    of the session. The rest of a token is 252 random or HMAC-derived bits, so the family
    alone forges nothing; but a list of sessions hands one user's *other* sessions to
    whoever holds any access token of that user, and those sessions' refresh-token prefixes
    have no business travelling that far (nor into screenshots, support tickets and logs).
    A one-way hash of a 132-bit random value cannot be turned back into it, needs no key (so
    it survives a rotation of ``SECRET`` and the CLI computes it without one), and is stable
    for the life of the session. Hex, so that an id never starts with ``-`` (a command
    line would read it as an option) and needs no escaping in a URL.
    """
    data = b"tokenguard session id\x00" + family.encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()[:32]


UserStatus = Literal["active", "suspended", "invited", "draft", "archived"]


class StoreUnavailable(Exception):
    """A backend could not answer (down, timing out, answering errors).

    The core turns it into 503 ``SERVICE_UNAVAILABLE`` and never into an acceptance.
    ``service`` names the backend in that error ("redis", "database").
    """

    def __init__(self, service: str, reason: str = "Couldn't reach the store") -> None:
        super().__init__(f"{service}: {reason}")
        self.service = service
        self.reason = reason


@dataclass(frozen=True, slots=True)
class User:
    """A user as the core needs it. ``email`` is compared case-insensitively."""

    id: str
    email: str
    password_hash: str | None = None
    role: str | None = None
    status: UserStatus = "active"
    admin_access: bool = False
    app_access: bool = False
    provider: str = "default"
    first_name: str | None = None
    last_name: str | None = None
    #: SHA-256 hex of the user's static token, if any; the token itself is never stored.
    token_hash: str | None = None
    #: TOTP secret, encrypted at rest by the caller; ``None`` when two-factor is off.
    tfa_secret: str | None = None
    #: Who the user is at their provider (an OpenID ``sub``, an LDAP DN, a SAML NameID):
    #: single sign-on finds users by this, never by e-mail alone. Unique, compared
    #: case-insensitively, as Directus's ``external_identifier`` column.
    external_identifier: str | None = None


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """One refresh token (or session-mode session), stored under
    ``token_hash = refresh_token_key(token)``; ``family == family_of(token_hash)``.

    ``family`` is the same for every token a login rotated into; presenting a token that was
    rotated away (after its grace) revokes the whole family. ``next_hash`` and
    ``live_until_ms`` are set when the token was rotated: until ``live_until_ms`` it still
    authenticates (session mode's grace period) and a repeated refresh converges on
    ``next_hash``; afterwards it is only kept as a tombstone to detect reuse.
    """

    token_hash: str
    family: str
    user_id: str
    expires_at_ms: int
    created_at_ms: int = 0
    ip: str | None = None
    user_agent: str | None = None
    origin: str | None = None
    next_hash: str | None = None
    live_until_ms: int | None = None

    def is_live(self, now_ms: int) -> bool:
        """Whether this token still authenticates at ``now_ms``."""
        if self.expires_at_ms < now_ms:
            return False
        return self.next_hash is None or (
            self.live_until_ms is not None and now_ms < self.live_until_ms
        )


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """One live session of a user, as listed to that user (see :func:`summarize_sessions`).

    ``created_at_ms`` is the session's first login as far as the store still remembers it
    (the oldest record of the family it holds; rotated-away records are kept until they
    expire); ``last_used_at_ms`` is when its newest token was issued (the last login or
    refresh). The client data (``ip``, ``user_agent``, ``origin``) are the newest token's.
    """

    #: The refresh-token family (kept out of the repr: see :func:`session_id`).
    family: str = field(repr=False)
    user_id: str
    created_at_ms: int
    last_used_at_ms: int
    expires_at_ms: int
    ip: str | None = None
    user_agent: str | None = None
    origin: str | None = None

    @property
    def id(self) -> str:
        """The public id (:func:`session_id` of the family)."""
        return session_id(self.family)


def summarize_sessions(
    records: Iterable[SessionRecord], user_id: str, now_ms: int
) -> list[SessionInfo]:
    """The live sessions of ``user_id`` among ``records`` (any records of its families, live
    or not), newest use first: one entry per family that still has a live token.

    Written once for every store: a store only gathers the records of the user's families.
    """
    families: dict[str, list[SessionRecord]] = {}
    for rec in records:
        families.setdefault(rec.family, []).append(rec)
    out: list[SessionInfo] = []
    for family, recs in families.items():
        if any(r.user_id != user_id for r in recs if r.user_id):
            continue  # never another user's (a family has one user; be strict all the same)
        live = [r for r in recs if r.user_id == user_id and r.is_live(now_ms)]
        if not live:
            continue
        # The newest token: the latest issued; among equals, the one not rotated away.
        newest = max(live, key=lambda r: (r.created_at_ms, r.next_hash is None))
        known = [r.created_at_ms for r in recs if r.created_at_ms]
        out.append(
            SessionInfo(
                family=family,
                user_id=user_id,
                created_at_ms=min(known) if known else newest.created_at_ms,
                last_used_at_ms=newest.created_at_ms,
                expires_at_ms=max(r.expires_at_ms for r in live),
                ip=newest.ip,
                user_agent=newest.user_agent,
                origin=newest.origin,
            )
        )
    out.sort(key=lambda s: (-s.last_used_at_ms, s.id))
    return out


RotateStatus = Literal["rotated", "grace", "reused", "missing"]


@dataclass(frozen=True, slots=True)
class RotateOutcome:
    """What :meth:`SessionStore.rotate` did.

    - ``rotated``: the old token now points at the new record (returned as ``record``).
    - ``grace``: the old token had already been rotated to the same new hash within the grace
      period; the new record's expiry was extended and it is returned.
    - ``reused``: the old token had been rotated away earlier (or to another hash): the whole
      family was revoked. The caller answers 401 and the client must log in again.
    - ``missing``: no such token (unknown, logged out or expired).
    """

    status: RotateStatus
    record: SessionRecord | None = None


@runtime_checkable
class UserStore(Protocol):
    """Synchronous user storage."""

    def get_by_id(self, user_id: str) -> User | None: ...

    def get_by_email(self, email: str) -> User | None:
        """Case-insensitive e-mail lookup."""
        ...

    def get_by_token_hash(self, token_hash: str) -> User | None:
        """The user whose static token hashes to ``token_hash`` (any status)."""
        ...

    def get_by_external_identifier(self, identifier: str) -> User | None:
        """The user whose ``external_identifier`` equals ``identifier`` case-insensitively
        (any status, any provider). Single sign-on needs it; other flows do not."""
        ...

    def create(self, user: User) -> User:
        """Insert a user; raises ``ValueError`` if the id, the e-mail or the external
        identifier (both case-insensitive) exists."""
        ...

    def update(self, user_id: str, **changes: Any) -> User | None:
        """Change fields of a user; returns the new value, or ``None`` if there is no such user."""
        ...

    def delete(self, user_id: str) -> bool: ...

    def list_users(self) -> list[User]: ...

    def close(self) -> None:
        """Release connections and files (idempotent). :meth:`TokenGuard.close
        <tokenguard.app.TokenGuard.close>` calls it on the stores it made; a store with
        nothing to release implements it as a no-op."""
        ...


@runtime_checkable
class AsyncUserStore(Protocol):
    """The asynchronous twin of :class:`UserStore` (same names, awaitable results)."""

    async def get_by_id(self, user_id: str) -> User | None: ...
    async def get_by_email(self, email: str) -> User | None: ...
    async def get_by_token_hash(self, token_hash: str) -> User | None: ...
    async def get_by_external_identifier(self, identifier: str) -> User | None: ...
    async def create(self, user: User) -> User: ...
    async def update(self, user_id: str, **changes: Any) -> User | None: ...
    async def delete(self, user_id: str) -> bool: ...
    async def list_users(self) -> list[User]: ...

    async def aclose(self) -> None:
        """The asynchronous :meth:`UserStore.close` (idempotent)."""
        ...


@runtime_checkable
class SessionStore(Protocol):
    """Synchronous refresh-session storage. Every method is atomic on its own."""

    def create(self, record: SessionRecord) -> None: ...

    def get(self, token_hash: str, now_ms: int) -> SessionRecord | None:
        """The record if its token is live at ``now_ms`` (see :meth:`SessionRecord.is_live`)."""
        ...

    def rotate(
        self, token_hash: str, new: SessionRecord, *, now_ms: int, grace_ms: int
    ) -> RotateOutcome:
        """Replace ``token_hash`` by ``new`` atomically (``new.family`` is ignored: the old
        record's family is kept). ``grace_ms`` is how long the old token keeps working; 0 in
        json/cookie mode. See :class:`RotateOutcome` for the four results."""
        ...

    def revoke(self, token_hash: str) -> SessionRecord | None:
        """Revoke the family ``token_hash`` belongs to (logout); returns the record if any."""
        ...

    def revoke_user(self, user_id: str, *, except_family: str | None = None) -> int:
        """Revoke every session of a user; returns how many families went."""
        ...

    def sessions(self, user_id: str, now_ms: int) -> list[SessionInfo]:
        """The user's live sessions at ``now_ms``, newest use first (see
        :func:`summarize_sessions`)."""
        ...

    def revoke_session(self, user_id: str, family: str) -> bool:
        """Revoke the session ``family`` if it is ``user_id``'s (never another user's);
        whether it was. Callers map a public :func:`session_id` to its family through
        :meth:`sessions` first."""
        ...

    def close(self) -> None:
        """Release connections and files (idempotent; see :meth:`UserStore.close`)."""
        ...


@runtime_checkable
class AsyncSessionStore(Protocol):
    """The asynchronous twin of :class:`SessionStore`."""

    async def create(self, record: SessionRecord) -> None: ...
    async def get(self, token_hash: str, now_ms: int) -> SessionRecord | None: ...
    async def rotate(
        self, token_hash: str, new: SessionRecord, *, now_ms: int, grace_ms: int
    ) -> RotateOutcome: ...
    async def revoke(self, token_hash: str) -> SessionRecord | None: ...
    async def revoke_user(self, user_id: str, *, except_family: str | None = None) -> int: ...
    async def sessions(self, user_id: str, now_ms: int) -> list[SessionInfo]: ...
    async def revoke_session(self, user_id: str, family: str) -> bool: ...

    async def aclose(self) -> None:
        """Release connections (idempotent; see :meth:`UserStore.close`)."""
        ...


@runtime_checkable
class OnceStore(Protocol):
    """Synchronous "seen before?" memory: one-time codes and one-time tokens.

    Kept apart from :class:`SessionStore` so that backends can add it without touching their
    session code (implementations: :mod:`tokenguard.stores.once`).
    """

    def claim(self, key: str, ttl_ms: int, now_ms: int) -> bool:
        """Remember ``key`` for ``ttl_ms`` from ``now_ms``. ``True`` the first time (atomic:
        of two concurrent claims exactly one wins), ``False`` while it is remembered."""
        ...

    def close(self) -> None:
        """Release connections and files (idempotent; a store sharing the session store's
        client leaves it to the session store)."""
        ...


@runtime_checkable
class AsyncOnceStore(Protocol):
    """The asynchronous twin of :class:`OnceStore`."""

    async def claim(self, key: str, ttl_ms: int, now_ms: int) -> bool: ...

    async def aclose(self) -> None:
        """Release connections (idempotent; see :meth:`OnceStore.close`)."""
        ...

