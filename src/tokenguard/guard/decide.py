"""The request path: extract → verify → principal, with no I/O of its own.

:meth:`Guard.authenticate` answers at once for everything that needs no store (no token, a
JWT, any malformed input) and returns a :data:`~tokenguard.flow.Flow` for the two cases that
need one lookup (a static token; a session-mode JWT, checked against the session store —
with a Redis store, once per ``TOKENGUARD_SESSION_CACHE_TTL`` at most, the check being
forgotten by every process as soon as the session is revoked, see
:mod:`tokenguard.guard.invalidation`). The shells drive that flow with
:func:`~tokenguard.flow.run_sync` or :func:`~tokenguard.flow.run_async`.

At DEBUG the ``tokenguard`` logger says why each token was refused (expired, bad signature,
wrong issuer, unknown key, malformed, revoked, user inactive, …) and where it came from, never
the token: nothing is formatted while DEBUG is off.
"""

from __future__ import annotations

import hmac
import inspect
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import GeneratorType
from typing import Any

from ..config import Settings, token_policy
from ..config.policy import revocation_windows_ms
from ..errors import AuthError, invalid_credentials, invalid_token, service_unavailable
from ..flow import Call, Flow
from ..jose.keys import KeyFetchNeeded
from ..jose.refusals import reason_of
from ..jose.tokens import TokenVerifier, hash_token
from ..principal import Principal
from ..stores.base import (
    FAMILY_LENGTH,
    AsyncSessionStore,
    AsyncUserStore,
    SessionRecord,
    SessionStore,
    StoreUnavailable,
    User,
    UserStore,
    refresh_token_key,
)
from .cache import TokenCache
from .extract import Extracted, Extractor
from .invalidation import SessionInvalidation
from .revocation import Revocations, issued_at

__all__ = ["Guard", "Outcome", "Refusal"]

log = logging.getLogger("tokenguard")
_DEBUG = logging.DEBUG


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request the guard refuses: the error to send, and whether to clear the session
    cookie with it (Directus does when the bad token came from that cookie)."""

    error: AuthError
    clear_session_cookie: bool = False


Outcome = Principal | Refusal


def _unavailable(exc: StoreUnavailable) -> Refusal:
    return Refusal(service_unavailable(exc.service, exc.reason))


class Guard:
    """Decides who a request speaks for. Built once; safe to share between threads."""

    def __init__(
        self,
        settings: Settings,
        users: UserStore | AsyncUserStore,
        sessions: SessionStore | AsyncSessionStore,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.users = users
        self.sessions = sessions
        self.clock = clock
        self.extractor = Extractor(settings.query_params, settings.session_cookie_name)
        self.verifier = TokenVerifier(token_policy(settings))
        self.cache = TokenCache(settings.token_cache_size)
        #: Session checks cached across requests, invalidated over Redis pub/sub
        #: (tokenguard.guard.invalidation); set by the core when the session store is Redis.
        self.invalidation: SessionInvalidation | None = None
        self.public = Principal(user=None, role=settings.public_role, via="public")
        #: Revoked sessions and users of this process (tokenguard.guard.revocation): an entry
        #: lives as long as the longest token it could refuse.
        user_ms, session_ms = revocation_windows_ms(settings)
        self.revocations = Revocations(
            user_ms / 1000, session_window_s=session_ms / 1000, clock=clock
        )
        self._max_length = settings.max_token_length
        self._leeway = settings.leeway_ms / 1000
        # Raw ``Authorization`` value (bytes under ASGI, str under WSGI) -> its Bearer token
        # (a JWT), or the static token's digest, user and principal. A memo of parsing only:
        # what a JWT is worth is always asked of the cache, and a static token's user of the
        # store, so a revocation reaches this path too.
        self._bearers: dict[bytes | str, str | tuple[str, User, Principal]] = {}
        self._cached = self.cache.entries
        self._bearers_max = max(settings.token_cache_size, 1)
        lookup = getattr(users, "get_by_token_hash", None)
        self._inline_users = getattr(users, "io_bound", None) is False and not (
            inspect.iscoroutinefunction(lookup)
        )
        # Static-token digest -> (digest, user, principal) for an in-process store, whose
        # unchanged user is the very same (frozen) object: the principal is built once, and
        # the raw-header memo above holds these same triples.
        self._statics: dict[str, tuple[str, User, Principal]] = {}
        self._query_names = tuple(settings.query_params)
        # The ASGI shell's query string is bytes it reads as latin-1: a name with characters
        # beyond latin-1 can never occur in it, and the others occur as their latin-1 bytes.
        self._query_names_bytes = tuple(
            n.encode("latin-1") for n in settings.query_params if max(n) <= "\xff"
        )

    def cached_bearer(
        self, authorization: bytes | str, query_string: bytes | str
    ) -> Principal | None:
        """The principal of a request whose only credential is this ``Authorization`` value,
        when its token's check is cached; ``None`` means "ask :meth:`authenticate`".

        The caller guarantees there was exactly one ``Authorization`` header. A query string
        that could hold a token parameter (or a percent-encoded name) always says ``None``:
        a token there must meet the header and be refused, as :meth:`authenticate` does.
        """
        memo = self._bearers.get(authorization)
        if memo is None:
            return None
        if query_string:
            if type(query_string) is bytes:
                if b"%" in query_string or any(n in query_string for n in self._query_names_bytes):
                    return None
            elif "%" in query_string or any(n in query_string for n in self._query_names):
                return None
        if type(memo) is not str:
            return self._static_memo(memo)  # type: ignore[arg-type]
        entry = self._cached.get(memo)
        if entry is None or entry[1] <= self.clock():
            return None  # authenticate() drops the stale entry and decides afresh
        rv = self.revocations
        if rv.sessions or rv.users or not rv.trusted:
            principal = entry[0]
            if not rv.trusted or rv.refuses(principal.sid, principal.user, principal.issued_at):
                return None  # authenticate() refuses it, or asks the store
        return entry[0]

    def _static_memo(self, memo: tuple[str, User, Principal]) -> Principal | None:
        # An in-process store hands back the very (frozen) User it holds until that user
        # changes or goes: the same object is the same verdict (token hash compared, status
        # active), so the store is asked but nothing is hashed or compared again.
        digest, user, principal = memo
        try:
            current = self.users.get_by_token_hash(digest)
        except StoreUnavailable:
            return None  # the full path answers 503
        return principal if current is user else None

    def _remember_bearer(
        self, authorization: bytes | str, token: str | tuple[str, User, Principal]
    ) -> None:
        bearers = self._bearers
        if len(bearers) >= self._bearers_max:
            bearers.clear()  # a memo: forgetting it costs one parse per token, nothing else
        bearers[authorization] = token

    def authenticate(
        self,
        authorization: str | None,
        query_string: str,
        cookie: str | None,
        *,
        authorization_count: int = 1,
        raw_authorization: bytes | str | None = None,
    ) -> Outcome | Flow[Outcome]:
        """Authenticate from the raw ``Authorization`` value, query string and ``Cookie``.

        ``raw_authorization``, the header as the shell read it, lets :meth:`cached_bearer`
        answer the next request carrying it without parsing it again.
        """
        bearer = self.extractor.bearer_only(authorization, query_string, authorization_count)
        if bearer is not None:
            return self._authenticate(bearer, "header", raw_authorization)
        found = self.extractor(
            authorization, query_string, cookie, authorization_count=authorization_count
        )
        if found is None:
            return self.public
        if isinstance(found, AuthError):
            log.debug("refused credentials: malformed (%s)", found.code)
            return Refusal(found)
        return self.authenticate_token(found)

    def authenticate_token(self, found: Extracted) -> Outcome | Flow[Outcome]:
        """Authenticate an already extracted token."""
        return self._authenticate(found.token, found.source)

    def _authenticate(
        self, token: str, source: str, raw_authorization: bytes | str | None = None
    ) -> Outcome | Flow[Outcome]:
        from_cookie = source == "cookie"
        if len(token) > self._max_length or not token:
            # Refused before any parsing; an empty token is no credential at all.
            log.debug("refused %s token: malformed (empty or too long)", source)
            return Refusal(invalid_credentials(), from_cookie)
        now = self.clock()
        cached = self.cache.get(token, now)
        if cached is not None:
            rv = self.revocations
            if rv.sessions or rv.users or not rv.trusted:
                # Checked after the cache hit: a cached verdict never outlives a revocation.
                outcome = self._unrevoked(cached, from_cookie)
                if outcome is not cached:
                    return outcome  # refused, or the store asked while the list is untrusted
            if raw_authorization is not None:
                # (Memoised with revocations held too: cached_bearer checks them on each hit,
                # and without the memo every repeated token took the whole path again.)
                # Seen before and still good: from now on the raw header alone answers. A
                # token seen once is not memoised (most first-seen tokens are also last-seen
                # in a burst of new logins, and each memo entry costs an insert and memory).
                self._remember_bearer(raw_authorization, token)
            return cached
        claims = self.verifier.verify(token, now)
        if claims is None:
            return self._static_flow(token, source, raw_authorization)
        if isinstance(claims, AuthError):
            if type(claims) is KeyFetchNeeded:
                return self._key_fetch_flow(token, source)
            if log.isEnabledFor(_DEBUG):
                log.debug("refused %s token: %s", source, reason_of(claims))
            clear = from_cookie and claims.code != "TOKEN_EXPIRED"
            return Refusal(claims, clear)
        if "session" in claims:
            return self._session_flow(claims, now, from_cookie, token)
        principal = self._principal(claims, "jwt")
        exp = claims.get("exp")
        self.cache.put(token, principal, (exp + self._leeway) if exp is not None else now + 60)
        rv = self.revocations
        if rv.sessions or rv.users or not rv.trusted:
            return self._unrevoked(principal, from_cookie)
        return principal

    @staticmethod
    def _principal(claims: dict[str, Any], via: Any, session: str | None = None) -> Principal:
        # Positional: a frozen dataclass is built noticeably faster so, once per new token.
        return Principal(
            claims.get("id"),
            claims["role"],
            bool(claims["admin_access"]),
            bool(claims["app_access"]),
            via,
            session,
            claims.get("exp"),
            claims.get("sid"),
            issued_at(claims),
        )

    def _unrevoked(self, principal: Principal, from_cookie: bool) -> Outcome | Flow[Outcome]:
        """``principal`` unless its token was revoked (tokenguard.guard.revocation); a flow
        asking the store while this process's list cannot be trusted."""
        rv = self.revocations
        if rv.refuses(principal.sid, principal.user, principal.issued_at):
            # Directus answers a session-mode token whose session is gone (a logout) with
            # 401 INVALID_CREDENTIALS (spec section 4.1); a revoked token is that same case,
            # whatever its mode, and a token from the cookie clears the cookie with it.
            log.debug("refused token: revoked")
            return Refusal(invalid_credentials(), from_cookie)
        if not rv.trusted:
            return self._revocation_lookup(principal, from_cookie)
        return principal

    def _revocation_lookup(self, principal: Principal, from_cookie: bool) -> Flow[Outcome]:
        # Revocations made elsewhere may be missing here (the feed is down or catching up):
        # the store says, and a store that cannot is a 503, never a token accepted blind.
        rv = self.revocations
        if rv.check is None:
            return _unavailable(StoreUnavailable("redis", "revocations not caught up"))
        if rv.on_check is not None:
            rv.on_check()
        try:
            answer = yield Call(rv.check, (principal.sid, principal.user))
        except StoreUnavailable as exc:
            return _unavailable(exc)
        except Exception as exc:  # whatever went wrong, the answer cannot be "yes"
            log.warning("revocation check failed: %s", type(exc).__name__)
            return _unavailable(StoreUnavailable("redis", "revocation check failed"))
        if rv.refuses_stored(answer, principal.issued_at):
            log.debug("refused token: revoked")
            return Refusal(invalid_credentials(), from_cookie)
        return principal

    def _key_fetch_flow(self, token: str, source: str) -> Flow[Outcome]:
        # A kid the remote key set did not hold: fetch it once (rate-bounded, in a worker
        # thread under ASGI) and verify again; a second miss is a plain INVALID_TOKEN.
        keys = self.verifier.keys
        if keys is not None and keys.remote is not None:
            yield Call(keys.remote.refresh, blocking=True)
        if type(self.verifier.verify(token, self.clock())) is KeyFetchNeeded:
            # Still unknown (or the issuer unreachable): never a second fetch from here.
            log.debug("refused %s token: unknown key", source)
            return Refusal(invalid_token(), source == "cookie")
        outcome = self._authenticate(token, source)
        if isinstance(outcome, GeneratorType):
            outcome = yield from outcome
        assert isinstance(outcome, Principal | Refusal)
        if isinstance(outcome, Refusal) and type(outcome.error) is KeyFetchNeeded:
            return Refusal(invalid_token(), outcome.clear_session_cookie)
        return outcome

    def _static_flow(
        self, token: str, source: str, raw_authorization: bytes | str | None = None
    ) -> Outcome | Flow[Outcome]:
        from_cookie = source == "cookie"
        digest = hash_token(token)
        if self._inline_users:
            # An in-process store (io_bound = False, synchronous): asked directly, without
            # a flow for a driver to run; the decision below is the same either way.
            try:
                user = self.users.get_by_token_hash(digest)
            except StoreUnavailable as exc:
                return _unavailable(exc)
            entry = self._static_entry(user, digest, from_cookie)  # type: ignore[arg-type]
            if isinstance(entry, Refusal):
                self._log_static_refusal(token, source, user)  # type: ignore[arg-type]
                return entry
            if raw_authorization is not None:
                # Static tokens are few (one per user): memoised on first sight.
                self._remember_bearer(raw_authorization, entry)
            return entry[2]
        return self._static_lookup(digest, token, source)

    def _static_lookup(self, digest: str, token: str, source: str) -> Flow[Outcome]:
        try:
            user = yield Call(self.users.get_by_token_hash, (digest,))
        except StoreUnavailable as exc:
            return _unavailable(exc)
        entry = self._static_entry(user, digest, source == "cookie")
        if isinstance(entry, Refusal):
            self._log_static_refusal(token, source, user)
            return entry
        return entry[2]

    def _log_static_refusal(self, token: str, source: str, user: User | None) -> None:
        # Not one of our JWTs, and no static token either: say which it looked like.
        if not log.isEnabledFor(_DEBUG):
            return
        if user is not None and user.token_hash is not None and user.status != "active":
            reason = f"user inactive ({user.status})"
        elif self.verifier.foreign_issuer(token):
            reason = "wrong issuer"
        else:
            reason = "unknown static token"
        log.debug("refused %s token: %s", source, reason)

    def _static_entry(
        self, user: User | None, digest: str, from_cookie: bool
    ) -> tuple[str, User, Principal] | Refusal:
        """The static token's (digest, user, principal), or the refusal."""
        # The store found it by hash; compare again in constant time so that a store with a
        # case-insensitive or prefix index can never match a different token.
        if (
            user is None
            or user.token_hash is None
            or not hmac.compare_digest(user.token_hash, digest)
            or user.status != "active"
        ):
            return Refusal(invalid_credentials(), from_cookie)
        entry = self._statics.get(digest)
        if entry is not None and entry[1] is user:
            return entry
        entry = (
            digest,
            user,
            Principal(user.id, user.role, user.admin_access, user.app_access, "static"),
        )
        if self._inline_users:
            if len(self._statics) >= self._bearers_max:
                self._statics.clear()
            self._statics[digest] = entry
        return entry

    def _reuse_probe(self, key: str, session: str, now_ms: int) -> Flow[None]:
        """A session cookie that is not live: unknown, expired, logged out, or rotated away
        after its grace period. Ask the store which, as a refresh does: presenting a
        rotated-away session again is reuse (someone holds a copy), and the store then ends the
        whole session, every successor included; its access tokens go with it. Only refusals
        pay for this lookup."""
        family = session[:FAMILY_LENGTH]
        # A successor of the same family (stores require it) that was never handed out.
        probe_token = family + secrets.token_urlsafe(32)
        probe = SessionRecord(refresh_token_key(probe_token), family, "", now_ms, now_ms)
        try:
            outcome = yield Call(
                self.sessions.rotate, (key, probe), {"now_ms": now_ms, "grace_ms": 0}
            )
            if outcome.status in ("rotated", "grace"):  # live again meanwhile: keep no probe
                yield Call(self.sessions.revoke, (key,))
        except Exception as exc:  # whatever the store says, the refusal stands
            log.debug("session reuse check failed: %s", type(exc).__name__)
            return
        if outcome.status == "reused":
            log.warning("session cookie reused after rotation: session revoked")
            self.revocations.revoke_session(family)

    def _session_flow(
        self, claims: dict[str, Any], now: float, from_cookie: bool, token: str | None = None
    ) -> Flow[Outcome]:
        session = claims["session"]
        invalidation = self.invalidation
        epoch = invalidation.begin() if invalidation is not None else 0
        key = refresh_token_key(session)
        now_ms = int(now * 1000)
        try:
            record = yield Call(self.sessions.get, (key, now_ms))
        except StoreUnavailable as exc:
            return _unavailable(exc)
        if record is None:
            yield from self._reuse_probe(key, session, now_ms)
        if record is None or record.user_id != claims.get("id"):
            log.debug("refused session token: revoked (session gone)")
            return Refusal(invalid_credentials(), from_cookie)
        principal = self._principal(claims, "session", session)
        rv = self.revocations
        if rv.sessions or rv.users or not rv.trusted:
            outcome = self._unrevoked(principal, from_cookie)
            if isinstance(outcome, GeneratorType):
                outcome = yield from outcome
            if outcome is not principal:
                return outcome  # type: ignore[return-value]
        if invalidation is not None and token is not None:
            # Never past the token's exp, the session's expiry or its grace period.
            until = record.expires_at_ms / 1000
            if record.live_until_ms is not None:
                until = min(until, record.live_until_ms / 1000)
            exp = claims.get("exp")
            if exp is not None:
                until = min(until, exp + self._leeway)
            invalidation.remember(token, principal, session[:FAMILY_LENGTH], epoch, until)
        return principal
