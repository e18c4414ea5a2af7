"""Login, refresh and logout as flows over the stores, written once for WSGI and ASGI.

Each operation is a generator (see :mod:`tokenguard.flow`): it yields the store calls and
the argon2 work it needs and either returns its result or raises an
:class:`~tokenguard.errors.AuthError` with Directus's status, code and message. A store that
cannot answer (:class:`~tokenguard.stores.base.StoreUnavailable`, or any other failure of a
store call) becomes 503 ``SERVICE_UNAVAILABLE``: a token that cannot be checked is never
accepted, and a login whose session cannot be recorded hands out nothing.

The processing order is Directus's (spec §5.2): the user is looked up, refused when unknown,
not active or from another provider; then the password; then the one-time password; then the
session is recorded and the tokens issued. Every outcome of a login, success included, is
stalled to at least ``LOGIN_STALL_TIME`` from the start of the request, so that neither
"unknown user" nor "wrong password" can be told apart by timing. An unknown user also costs
one argon2 verification of a dummy hash.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

from ..config import Settings, token_policy
from ..errors import (
    AuthError,
    invalid_credentials,
    invalid_otp,
    service_unavailable,
    user_suspended,
)
from ..flow import Call, Flow, Sleep
from ..guard.limits import Limits, TooManyRequests
from ..guard.revocation import Entry, Revocations, revoking_change
from ..jose.tokens import issue_access_token
from ..logs.audit import Audit, ClientLike
from ..stores.base import (
    FAMILY_LENGTH,
    AsyncSessionStore,
    AsyncUserStore,
    RotateOutcome,
    SessionInfo,
    SessionRecord,
    SessionStore,
    StoreUnavailable,
    User,
    UserStore,
    refresh_token_key,
)
from .hashing import Overloaded
from .passwords import Passwords
from .refresh_tokens import RefreshTokens, is_refresh_token

__all__ = [
    "AuthService",
    "ClientInfo",
    "Credentials",
    "Mode",
    "OtpVerifier",
    "PasswordProvider",
    "Tokens",
]

log = logging.getLogger("tokenguard.auth")

Mode = Literal["json", "cookie", "session"]
OtpVerifier = Callable[[User, str], bool]


class PasswordProvider(Protocol):
    """A provider that checks the password itself (:class:`tokenguard.auth.drivers.ldap.LdapLogin`):
    it finds the user (``found``: appended once known, for the audit trail) and checks the
    password with :meth:`AuthService.check_password` and :meth:`AuthService.check_otp`."""

    @property
    def name(self) -> str: ...

    def authenticate(
        self,
        service: AuthService,
        credentials: Credentials,
        client: ClientInfo,
        found: list[User],
    ) -> Flow[User]: ...

    def still_valid(self, user: User) -> Flow[bool]:
        """Whether ``user``'s account still may sign in (checked at each refresh)."""
        ...

    def verify_password(self, user: User, password: str) -> Flow[bool]:
        """Whether ``password`` is ``user``'s (for the two-factor enrolment)."""
        ...


class OtpCheck(Protocol):
    """A one-time-password check that may use stores (a flow), e.g.
    :class:`tokenguard.auth.totp.TwoFactor`."""

    def check(self, user: User, code: str) -> Flow[bool]: ...


#: Directus truncates the stored user agent to this many characters.
USER_AGENT_LIMIT = 1024


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """Where a login or refresh came from, recorded on the session."""

    ip: str | None = None
    user_agent: str | None = None
    origin: str | None = None


@dataclass(frozen=True, slots=True)
class Credentials:
    """A validated login payload. ``email`` is the provider's identifier for a
    :class:`PasswordProvider` (an LDAP user name)."""

    email: str
    password: str
    otp: str | None = None

    def __repr__(self) -> str:  # never show the password or the code
        return "Credentials(<redacted>)"


@dataclass(frozen=True, slots=True)
class Tokens:
    """What a login or refresh hands out.

    ``access_token`` is the JWT (in session mode: the session cookie's value, carrying the
    ``session`` claim); ``expires_ms`` is its lifetime in milliseconds, as Directus reports it.
    """

    access_token: str
    refresh_token: str
    expires_ms: int
    mode: Mode

    def __repr__(self) -> str:
        return f"Tokens(mode={self.mode!r}, expires_ms={self.expires_ms}, <redacted>)"


def default_otp_verifier(user: User, otp: str) -> bool:
    """Check a TOTP code against ``user.tfa_secret`` with pyotp (SHA-1, 6 digits, 30 s, no
    drift window, as Directus's otplib). Without pyotp, or with a secret pyotp cannot read,
    every code is refused: two-factor users can then not log in, which fails safe."""
    try:
        import pyotp
    except ImportError:
        return False
    secret = user.tfa_secret
    if not secret or not otp.isdigit() or len(otp) != 6:
        return False
    try:
        return bool(pyotp.TOTP(secret).verify(otp, valid_window=0))
    except Exception:  # an unreadable secret is a refusal, not a crash
        return False


class AuthService:
    """The three Directus operations over a user store and a session store.

    Thread-safe and shared by every request; nothing per-request is kept on it.
    """

    def __init__(
        self,
        settings: Settings,
        users: UserStore | AsyncUserStore,
        sessions: SessionStore | AsyncSessionStore,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        passwords: Passwords | None = None,
        otp_verifier: OtpVerifier | None = None,
        two_factor: OtpCheck | None = None,
        limits: Limits | None = None,
        audit: Audit | None = None,
        revocations: Revocations | None = None,
    ) -> None:
        self.settings = settings
        #: This process's revoked sessions and users (the guard's): what ends a session or
        #: changes a user here voids its access tokens at once (tokenguard.guard.revocation).
        self.revocations = revocations
        #: How access tokens are signed (tokenguard.jose.policy), built once from settings.
        self.token_policy = token_policy(settings)
        self.users = users
        self.sessions = sessions
        self.clock = clock
        self.monotonic = monotonic
        self.passwords = passwords if passwords is not None else Passwords()
        self.otp_verifier = otp_verifier if otp_verifier is not None else default_otp_verifier
        #: The TOTP check with decryption and replay protection (tokenguard.auth.totp);
        #: when set it replaces ``otp_verifier``.
        self.two_factor = two_factor
        self.refresh_tokens = RefreshTokens(settings.secret_bytes)
        #: Rate limits and the lockout (in-process counters unless the core passes Redis).
        self.limits = limits if limits is not None else Limits(settings, clock=clock)
        self._stall_s = settings.login_stall_ms / 1000
        #: Where authentication events go (tokenguard.audit): the log, and a store if any.
        self.audit = audit if audit is not None else Audit(clock=clock)
        #: Provider name -> a check each refresh of that provider's users goes through
        #: (:meth:`PasswordProvider.still_valid`: an LDAP account disabled or removed since
        #: the login ends its sessions at their next refresh, as in Directus).
        self.password_providers: dict[str, PasswordProvider] = {}

    # -- helpers ---------------------------------------------------------------------------

    def stall(self, started: float, *, tarpit: bool = False) -> Flow[None]:
        """Wait until ``LOGIN_STALL_TIME`` has passed since ``started`` (a ``monotonic`` time);
        ``tarpit``: only where waiting is free (see :class:`~tokenguard.flow.Sleep`)."""
        remaining = self._stall_s - (self.monotonic() - started)
        if remaining > 0:
            yield Sleep(remaining, tarpit)

    @staticmethod
    def _store(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Flow[Any]:
        try:
            return (yield Call(fn, args, kwargs))
        except StoreUnavailable as exc:
            log.warning("store unavailable (%s): %s", exc.service, exc.reason)
            raise service_unavailable(exc.service, exc.reason) from None
        except Exception as exc:
            # Whatever went wrong, the answer cannot be "yes": refuse with a 503.
            log.error("store call %s failed: %s", getattr(fn, "__name__", "?"), type(exc).__name__)
            raise service_unavailable("database", "Couldn't reach the store") from None

    def _issue(
        self, user: User, refresh_token: str, mode: Mode, now: float, as_of: float | None = None
    ) -> Tokens:
        settings = self.settings
        if mode == "session":
            ttl = settings.session_cookie_ttl_ms
            session: str | None = refresh_token
        else:
            ttl = settings.access_token_ttl_ms
            session = None
        access = issue_access_token(
            self.token_policy,
            user_id=user.id,
            role=user.role,
            app_access=user.app_access,
            admin_access=user.admin_access,
            ttl_ms=ttl,
            now=now,
            session=session,
            sid=refresh_token[:FAMILY_LENGTH],
            as_of=as_of,
        )
        return Tokens(access, refresh_token, ttl, mode)

    @staticmethod
    def _record(
        token: str, user_id: str, expires_at_ms: int, now_ms: int, client: ClientInfo
    ) -> SessionRecord:
        user_agent = client.user_agent
        if user_agent is not None:
            user_agent = user_agent[:USER_AGENT_LIMIT]
        return SessionRecord(
            token_hash=refresh_token_key(token),
            family=token[:FAMILY_LENGTH],
            user_id=user_id,
            expires_at_ms=expires_at_ms,
            created_at_ms=now_ms,
            ip=client.ip,
            user_agent=user_agent,
            origin=client.origin,
        )

    # -- revocation ------------------------------------------------------------------------

    def session_ended(self, family: str) -> None:
        """Void the access tokens of the session ``family`` in this process (a session store
        on Redis tells the other processes itself, see :mod:`tokenguard.stores.redis`)."""
        if self.revocations is not None:
            self.revocations.revoke_session(family)

    def revoke_user(self, user_id: str) -> Flow[None]:
        """Void every access token of ``user_id`` issued until now, here and (through the
        revocation feed, when there is one) in every process; 503 when the feed cannot be
        told, since the other processes would otherwise keep accepting them."""
        rv = self.revocations
        if rv is None:
            return
        yield from self.announce([rv.revoke_user(user_id)])

    def user_changed(
        self, before: User, after: User | None, client: ClientLike | None = None
    ) -> Flow[None]:
        """Void ``before``'s access tokens when its change to ``after`` (``None``: gone)
        touched what a token carries or rests on (:func:`~tokenguard.guard.revocation.
        revoking_change`: role, admin/app access, status, password, two-factor removed).

        Every path that updates a user in this process calls it with the user it read and
        the one the store returned, so the decision is made once: a login driver syncing the
        role from the provider's groups, the lockout, a reset, two-factor. The tokens of
        the change's moment are refused everywhere (announced as :meth:`revoke_user` does);
        their clients refresh into the new role.

        Each such change is audited as a ``user_change`` event (its reason: the field that
        changed, or ``deleted``), with ``client`` when the change came from a request. A
        flow that audits itself (``lockout``, ``password_reset``, ``tfa_disable``) gets this
        event too: that one records the request, this one what happened to the user, so
        ``audit list --event user_change`` lists every change that voided a user's tokens."""
        reason = revoking_change(before, after)
        if reason is None:
            return
        log.info("user %s changed (%s): access tokens issued until now revoked", before.id, reason)
        # Recorded before the revocation is announced: the user was changed in the store
        # already, and a 503 from the announcement must not leave that out of the trail.
        yield from self.audit.emit(
            "user_change", "success", client, user_id=before.id, provider=before.provider,
            reason=reason,
        )
        yield from self.revoke_user(before.id)
        # A login that goes on to issue a token (a provider's role sync) must not issue it
        # in the revoked millisecond.
        yield from self._past_not_before(before.id)

    def _past_not_before(self, user_id: str) -> Flow[bool]:
        """Wait until ``user_id``'s not-before time has passed, when it lies at most 2 ms
        ahead (it is rounded up to the millisecond: a token issued before it would be
        refused at once, see :meth:`Revocations.revoke_user
        <tokenguard.guard.revocation.Revocations.revoke_user>`); whether it waited."""
        rv = self.revocations
        not_before = rv.users.get(user_id) if rv is not None else None
        if rv is None or not_before is None:
            return False
        waited = False
        # Looked at again after each pause: an event loop's timers (uvloop's are whole
        # milliseconds) may wake a little early.
        for _ in range(5):
            gap = not_before - rv.clock()
            if not 0 < gap <= 0.002:
                break
            waited = True
            yield Sleep(max(gap, 0.001))
        return waited

    def announce(self, entries: list[Entry]) -> Flow[None]:
        """Tell the other processes of revocations made here (a 503 when they cannot be)."""
        rv = self.revocations
        if rv is None:
            return
        try:
            yield from rv.announce(entries)
        except StoreUnavailable as exc:
            log.warning("revocation not announced (%s): %s", exc.service, exc.reason)
            raise service_unavailable(exc.service, exc.reason) from None
        except Exception as exc:
            log.error("revocation not announced: %s", type(exc).__name__)
            raise service_unavailable("redis", "Couldn't announce the revocation") from None

    # -- a user's own sessions -------------------------------------------------------------

    def list_sessions(self, user_id: str) -> Flow[list[SessionInfo]]:
        """The live sessions of ``user_id``, most recently used first."""
        now_ms = int(self.clock() * 1000)
        sessions: list[SessionInfo] = yield from self._store(
            self.sessions.sessions, user_id, now_ms
        )
        return sessions

    def end_session(
        self, user_id: str, session_id: str, client: ClientInfo | None = None
    ) -> Flow[bool]:
        """End the session of ``user_id`` whose public id (:func:`~tokenguard.stores.base.
        session_id`) is ``session_id``: its refresh tokens in the store, its access tokens
        here and in every process. ``False`` when the user has no such live session — an
        unknown id and another user's session are the same answer (audited as a refusal,
        ``FORBIDDEN``: the answer the route gives)."""
        ended = False
        for info in (yield from self.list_sessions(user_id)):
            if info.id != session_id:
                continue
            ended = yield from self._store(self.sessions.revoke_session, user_id, info.family)
            if ended:
                yield from self._void([info.family])
                log.info("session ended by its user %s", user_id)
            break
        if not ended:
            # No session id in the record, here or on success: AuditEvent's fields are fixed
            # (each a column of the stored trail), and none holds one.
            yield from self.audit.emit(
                "session_end", "failure", client, user_id=user_id, provider=None,
                reason="FORBIDDEN",
            )
            return False
        yield from self.audit.emit("session_end", "success", client, user_id=user_id, provider=None)
        return True

    def end_other_sessions(
        self, user_id: str, keep: str | None, client: ClientInfo | None = None
    ) -> Flow[int]:
        """End every session of ``user_id`` but the family ``keep`` (the caller's own; every
        session when ``None``, as for a static token); how many ended."""
        listed = yield from self.list_sessions(user_id)
        count: int = yield from self._store(
            self.sessions.revoke_user, user_id, except_family=keep
        )
        # The listed families' access tokens die too; one created between the two calls
        # lost its refresh token, and its access token lives at most ACCESS_TOKEN_TTL.
        yield from self._void([s.family for s in listed if s.family != keep])
        log.info("other sessions ended by their user %s: %d", user_id, count)
        # A success even when none ended: the user asked, and was answered 204.
        yield from self.audit.emit(
            "session_end_others", "success", client, user_id=user_id, provider=None
        )
        return count

    def _void(self, families: list[str]) -> Flow[None]:
        """Void the access tokens of these sessions here, and tell the other processes (a
        Redis session store has announced them already; twice revokes nothing more)."""
        rv = self.revocations
        if rv is None or not families:
            return
        yield from self.announce([rv.revoke_session(family) for family in families])

    # -- login -----------------------------------------------------------------------------

    def login(
        self,
        credentials: Credentials,
        mode: Mode,
        client: ClientInfo,
        started: float,
        *,
        provider: PasswordProvider | None = None,
    ) -> Flow[Tokens]:
        """Log in with e-mail and password (and OTP); ``started`` is the ``monotonic`` time
        the request began, from which the stall is measured.

        ``provider`` checks the password somewhere else (an LDAP directory): it finds the
        user and checks the password; the limits, the lockout, the audit trail, the stall
        and the session are this method's, the same for every provider."""
        name = provider.name if provider is not None else "default"
        # The account an identifier names is per provider: "ada" at two directories are two.
        account = credentials.email if provider is None else f"{name}\x00{credentials.email}"
        # Counted before anything else. The 429 waits for the stall on an event loop, where
        # waiting is free: answered at once, a flood's clients would spin on it and take the
        # CPU the hashes of other logins need. Under WSGI it is answered at once: waiting
        # would hold a worker thread per request of the flood.
        try:
            yield from self.limits.check_account(account)
        except TooManyRequests as error:
            # The account is named by the e-mail alone, which the trail never holds.
            yield from self.audit.emit(
                "throttle", "blocked", client, provider=name, reason=error.code
            )
            yield from self.stall(started, tarpit=True)
            raise
        found: list[User] = []
        # The token will say what the user was at this moment (see start_session).
        read_at = self.clock()
        try:
            if provider is None:
                user = yield from self._local_user(credentials, client, found)
            else:
                user = yield from provider.authenticate(self, credentials, client, found)
            # Only a complete login (password and OTP) ends the run of failures: wrong codes
            # after a right password keep counting towards the lockout.
            yield from self.limits.succeeded(user.id, account)
            tokens = yield from self.start_session(user, mode, client, read_at=read_at)
        except AuthError as error:
            log.info("login refused: %s", error.code)
            user_id = found[0].id if found else None
            yield from self.audit.emit(
                "login", "failure", client, user_id=user_id, provider=name, reason=error.code
            )
            yield from self.stall(started)
            raise
        yield from self.stall(started)
        return tokens

    def _local_user(
        self, credentials: Credentials, client: ClientInfo, found: list[User]
    ) -> Flow[User]:
        if not self.passwords.warm:
            # Made before the first lookup, whatever its outcome, so that no login ever pays
            # for it on the unknown-user path only.
            yield Call(self.passwords.warm_up, blocking=True)
        user: User | None = yield from self._store(self.users.get_by_email, credentials.email)
        if user is None or user.status != "active" or user.provider != "default":
            yield Call(self.passwords.burn, (credentials.password,), blocking=True)
            raise invalid_credentials()
        found.append(user)
        yield from self.check_password(user, client, self._verify(user, credentials.password))
        yield from self.check_otp(user, credentials.otp)
        if self.passwords.needs_rehash(user.password_hash or ""):
            user = yield from self._rehash(user, credentials.password)
        return user

    def _verify(self, user: User, password: str) -> Flow[bool]:
        ok: bool = yield Call(self.passwords.verify, (user.password_hash, password), blocking=True)
        return ok

    def check_password(self, user: User, client: ClientInfo, verify: Flow[bool]) -> Flow[None]:
        """Run ``verify`` (the password check of an existing, active ``user``) under the
        lockout; raises 401 ``INVALID_CREDENTIALS`` when it fails or the user is locked out."""
        # Counted before the password is checked, so that parallel guesses are all counted.
        lock = yield from self.limits.attempt(user.id)
        ok = yield from verify
        if lock:
            # The attempt after AUTH_LOGIN_ATTEMPTS consecutive failures suspends the user, as
            # in Directus; unlike Directus the suspension holds for this very attempt, so a
            # right password now fails too (and the answer does not say which it was).
            suspended = yield from self._store(self.users.update, user.id, status="suspended")
            # As `tokenguard users suspend` does: a session-mode cookie, a refresh token or an
            # access token someone already holds must stop working now, not when it expires.
            yield from self._store(self.sessions.revoke_user, user.id)
            yield from self.user_changed(user, suspended, client)
            log.warning("login: user %s suspended after too many failed attempts", user.id)
            yield from self.audit.emit(
                "lockout", "blocked", client, user_id=user.id, provider=user.provider
            )
            raise invalid_credentials()
        if not ok:
            raise invalid_credentials()

    def check_otp(self, user: User, otp: str | None) -> Flow[None]:
        """The one-time password of a ``user`` with two-factor authentication; 401
        ``INVALID_OTP`` when missing or wrong. Checked after the password, as Directus does
        (so INVALID_OTP implies a right password; the stall and the lockout protect it)."""
        if not user.tfa_secret:
            return
        if not otp:
            raise invalid_otp()
        if self.two_factor is not None:
            ok = yield from self.two_factor.check(user, otp)
        else:
            ok = yield Call(self.otp_verifier, (user, otp))
        if not ok:
            raise invalid_otp()

    def _rehash(self, user: User, password: str) -> Flow[User]:
        """Replace a foreign (bcrypt, PBKDF2…) or outdated hash with argon2id, now that the
        password is known to be right. A store that refuses costs the upgrade, not the login.
        The user as it now is."""
        try:
            new_hash = yield Call(self.passwords.hash, (password,), blocking=True)
        except Overloaded:
            # The pool is full: the upgrade waits for a quieter login, the login does not.
            return user
        try:
            yield Call(self.users.update, (user.id,), {"password_hash": new_hash})
        except Exception as exc:
            log.warning(
                "login: the password hash of user %s was not upgraded (%s)",
                user.id,
                type(exc).__name__,
            )
            return user
        log.info("login: the password hash of user %s was upgraded to argon2id", user.id)
        return replace(user, password_hash=new_hash)

    def start_session(
        self, user: User, mode: Mode, client: ClientInfo, *, read_at: float | None = None
    ) -> Flow[Tokens]:
        """Record a new session for ``user`` (already authenticated: by password and OTP, or by
        single sign-on) and issue its tokens.

        ``read_at`` is when ``user`` was read (default: now). The access token is dated
        (``iat``, ``iat_ms``) as of that moment, its lifetime counted from now, so that a
        change of the user made after it (a role taken away while the password was being
        checked) refuses the token in every process; a change this process already knows of
        is read again first, and a login that raced a change of its credentials or status
        is refused."""
        if read_at is None:
            read_at = self.clock()
        user, read_at = yield from self._as_of_now(user, read_at)
        token = self.refresh_tokens.new()
        now = self.clock()
        now_ms = int(now * 1000)
        # Even a session-mode row starts with REFRESH_TOKEN_TTL, as in Directus (spec §5.2).
        record = self._record(
            token, user.id, now_ms + self.settings.refresh_token_ttl_ms, now_ms, client
        )
        yield from self._store(self.sessions.create, record)
        if self._changed_since(user.id, read_at):
            # Revoked while the session was being written (a password change in another
            # process, say): its revocation of the user's sessions may have missed this one.
            yield from self._store(self.sessions.revoke, record.token_hash)
            raise invalid_credentials()
        log.info("login: user %s, %s mode", user.id, mode)
        tokens = self._issue(user, token, mode, now, as_of=read_at)
        yield from self.audit.emit(
            "login", "success", client, user_id=user.id, provider=user.provider
        )
        return tokens

    def _changed_since(self, user_id: str, read_at: float) -> bool:
        """Whether this process knows of a revocation of ``user_id`` at or after ``read_at``
        (not-before times are whole milliseconds rounded up: one in the same millisecond
        counts, since it may have come after the read)."""
        rv = self.revocations
        not_before = rv.users.get(user_id) if rv is not None else None
        return not_before is not None and not_before > read_at

    def _as_of_now(self, user: User, read_at: float) -> Flow[tuple[User, float]]:
        """``user`` and when it was read, read again when a revocation of it came since (a
        dictionary lookup otherwise). A login whose checks no longer stand (the user gone,
        no longer active, the password changed) is refused; a new role or access is taken."""
        if not self._changed_since(user.id, read_at):
            return user, read_at
        yield from self._past_not_before(user.id)
        read_at = self.clock()
        fresh: User | None = yield from self._store(self.users.get_by_id, user.id)
        if fresh is None or fresh.status != "active" or fresh.password_hash != user.password_hash:
            log.info("login: user %s changed while logging in; refused", user.id)
            raise invalid_credentials()
        return fresh, read_at

    # -- refresh ---------------------------------------------------------------------------

    def refresh(self, token: Any, mode: Mode, client: ClientInfo) -> Flow[Tokens]:
        """Rotate ``token`` and issue new tokens.

        json/cookie mode has no grace: a second use of the same token is reuse, and the
        store revokes the whole session family. Session mode converges concurrent refreshes
        on one successor within ``SESSION_REFRESH_GRACE_PERIOD``.
        """
        seen: list[str] = []  # the user id, once known
        try:
            tokens = yield from self._refresh(token, mode, client, seen)
        except AuthError as error:
            user_id = seen[0] if seen else None
            yield from self.audit.emit(
                "refresh", "failure", client, user_id=user_id, provider=None, reason=error.code
            )
            raise
        yield from self.audit.emit(
            "refresh", "success", client, user_id=seen[0] if seen else None, provider=None
        )
        return tokens

    def _reused(
        self, client: ClientInfo, outcome: RotateOutcome, family: str | None = None
    ) -> Flow[None]:
        log.warning("refresh token reused after rotation: session revoked")
        if family is not None:
            self.session_ended(family)
        record = outcome.record
        user_id = record.user_id if record is not None and record.user_id else None
        yield from self.audit.emit(
            "refresh_reuse", "blocked", client, user_id=user_id, provider=None
        )

    def _refresh(self, token: Any, mode: Mode, client: ClientInfo, seen: list[str]) -> Flow[Tokens]:
        if not is_refresh_token(token):
            raise invalid_credentials()
        key = refresh_token_key(token)
        successor = self.refresh_tokens.successor(token)
        now = self.clock()
        now_ms = int(now * 1000)
        session_mode = mode == "session"
        grace_ms = self.settings.session_refresh_grace_ms if session_mode else 0
        record: SessionRecord | None = yield from self._store(self.sessions.get, key, now_ms)
        if record is None:
            # Not live. It may be unknown, expired, logged out, or rotated away long ago: let
            # the store tell, so that a stolen old token revokes its family.
            probe = self._record(successor, "", now_ms, now_ms, client)
            outcome = yield from self._store(
                self.sessions.rotate, key, probe, now_ms=now_ms, grace_ms=0
            )
            if outcome.status in ("rotated", "grace"):  # cannot happen; never hand it out
                yield from self._store(self.sessions.revoke, key)
            if outcome.status == "reused":
                yield from self._reused(client, outcome, token[:FAMILY_LENGTH])
            raise invalid_credentials()
        seen.append(record.user_id)
        if (yield from self._past_not_before(record.user_id)):
            # The user was revoked in this very millisecond (a role change just now): issued
            # now, the new token would be refused at once, and a client that cannot keep the
            # refresh token it was answered with (a realtime socket's refresh, refused as a
            # whole) would lose its session. Past it, the user read below is the changed one.
            now = self.clock()
            now_ms = int(now * 1000)
        user: User | None = yield from self._store(self.users.get_by_id, record.user_id)
        if user is None or user.status != "active":
            yield from self._store(self.sessions.revoke, key)
            self.session_ended(record.family)
            if user is not None and user.status == "suspended":
                raise user_suspended()
            raise invalid_credentials()
        provider = self.password_providers.get(user.provider)
        # A 503 (the directory cannot answer) keeps the session for a later try; a refusal
        # ends it.
        if provider is not None and not (yield from provider.still_valid(user)):
            yield from self._store(self.sessions.revoke, key)
            self.session_ended(record.family)
            raise invalid_credentials()
        ttl = (
            self.settings.session_cookie_ttl_ms
            if session_mode
            else self.settings.refresh_token_ttl_ms
        )
        new = self._record(successor, user.id, now_ms + ttl, now_ms, client)
        outcome = yield from self._store(
            self.sessions.rotate, key, new, now_ms=now_ms, grace_ms=grace_ms
        )
        if outcome.status == "grace" and not session_mode:
            # json/cookie mode has no grace. A concurrent twin whose clock reading came a
            # millisecond before the winner's rotation lands here: it is a second use of the
            # token all the same, and is treated exactly as reuse.
            yield from self._store(self.sessions.revoke, key)
            outcome = RotateOutcome("reused")
        if outcome.status == "reused":
            yield from self._reused(client, RotateOutcome("reused", record), record.family)
        if outcome.status not in ("rotated", "grace"):
            raise invalid_credentials()
        issued = now
        if outcome.status == "grace" and outcome.record is not None:
            # A twin within the grace period gets the very token the winner got (the same
            # iat and iat_ms, from the winner's clock reading): concurrent refreshes converge
            # on one session cookie, as before the millisecond claim existed.
            created_ms = outcome.record.created_at_ms
            if created_ms and created_ms <= now_ms:
                issued = created_ms / 1000
        return self._issue(user, successor, mode, issued)

    # -- logout ----------------------------------------------------------------------------

    def logout(self, token: Any, client: ClientInfo | None = None) -> Flow[None]:
        """Revoke the session ``token`` belongs to. Unknown or dead tokens are not an error
        (Directus answers 204 for them too); a store that cannot answer is."""
        if not is_refresh_token(token):
            yield from self.audit.emit(
                "logout", "failure", client, provider=None, reason="INVALID_CREDENTIALS"
            )
            return
        revoked = yield from self._store(self.sessions.revoke, refresh_token_key(token))
        user_id = getattr(revoked, "user_id", None) or None
        if user_id is not None:
            # Its access tokens die with it, in every mode (Directus lets a json-mode token
            # live until it expires; see README "Revocation").
            self.session_ended(token[:FAMILY_LENGTH])
        if user_id is None:
            # Answered 204 all the same (as Directus does), but no session ended.
            yield from self.audit.emit(
                "logout", "failure", client, provider=None, reason="INVALID_CREDENTIALS"
            )
            return
        yield from self.audit.emit("logout", "success", client, user_id=user_id, provider=None)
