"""Password reset: ``POST /auth/password/request`` and ``POST /auth/password/reset``.

Directus's design (spec §9) with its later fixes and a few steps further:

- The ``reset_url`` allow list (``PASSWORD_RESET_URL_ALLOW_LIST``) is checked *before* the
  user is looked up, so the 400 it may cause says nothing about who has an account. Every
  other outcome is the same 204 after the same stall (``LOGIN_STALL_TIME``), and the mail
  leaves in the background.
- The reset token is a JWT signed with a key *derived* from ``SECRET`` (never usable as an
  access token), scoped ``password-reset``, timed (``TOKENGUARD_PASSWORD_RESET_TTL``, 1 h),
  bound to an HMAC of the user's current password hash (dead as soon as the password
  changes), and carries a ``jti`` claimed in the one-time store (usable once, even by two
  concurrent requests).
- A successful reset replaces the password and revokes every session of the user.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import jwt

from ..config import Settings, password_policy_pattern
from ..errors import AuthError, forbidden, invalid_payload, invalid_token, token_expired
from ..flow import Call, Flow
from ..stores.base import AsyncOnceStore, OnceStore, User
from .mail import Mail, Mailer
from .service import AuthService, ClientInfo

__all__ = [
    "PasswordReset",
    "ResetTokens",
    "failed_password_policy",
    "is_url_allowed",
    "validate_reset",
    "validate_reset_request",
]

log = logging.getLogger("tokenguard.auth")

SCOPE = "password-reset"
ISSUER = "tokenguard"
#: Longer "tokens" are refused unread; ours are about 300 characters.
MAX_TOKEN_LENGTH = 2048
SUBJECT = "Password Reset Request"


def failed_password_policy() -> AuthError:
    """Directus's 400 ``FAILED_VALIDATION`` for a password the policy refuses."""
    return AuthError(
        400,
        "FAILED_VALIDATION",
        "Provided password doesn't match password policy",
        {"field": "password", "type": "custom"},
    )


def _origin_path(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    host = parts.hostname
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    netloc = host if port is None or port == default else f"{host}:{port}"
    return f"{parts.scheme.lower()}://{netloc}{parts.path or '/'}"


def is_url_allowed(url: str, allow_list: tuple[str, ...] | list[str]) -> bool:
    """Directus's ``isUrlAllowed``: ``url`` equals an entry, or has the same scheme, host,
    port and path as one (the query and fragment are ignored). Unparsable entries match
    nothing; so does an unparsable ``url``."""
    if url in allow_list:
        return True
    wanted = _origin_path(url)
    if wanted is None:
        return False
    for entry in allow_list:
        allowed = _origin_path(entry)
        if allowed is not None and allowed == wanted:
            return True
    return False


def _with_token(url: str, token: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "token"]
    query.append(("token", token))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


# -- payloads -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResetRequest:
    email: str
    reset_url: str | None = None

    def __repr__(self) -> str:
        return "ResetRequest(<redacted>)"


@dataclass(frozen=True, slots=True)
class ResetPayload:
    token: str
    password: str

    def __repr__(self) -> str:
        return "ResetPayload(<redacted>)"


def validate_reset_request(data: Any) -> ResetRequest | AuthError:
    """``{email, reset_url?}`` with Directus's messages."""
    if not isinstance(data, dict) or not isinstance(data.get("email"), str):
        return invalid_payload('"email" field is required')
    reset_url = data.get("reset_url")
    if reset_url is not None and not isinstance(reset_url, str):
        return invalid_payload('"reset_url" must be a string')
    return ResetRequest(data["email"], reset_url or None)


def validate_reset(data: Any) -> ResetPayload | AuthError:
    """``{token, password}`` with Directus's messages."""
    if not isinstance(data, dict) or not isinstance(data.get("token"), str):
        return invalid_payload('"token" field is required')
    if not isinstance(data.get("password"), str) or not data["password"]:
        return invalid_payload('"password" field is required')
    return ResetPayload(data["token"], data["password"])


# -- tokens ---------------------------------------------------------------------------------


class ResetTokens:
    """Issues and checks reset tokens with a key derived from ``SECRET``."""

    def __init__(self, secret: bytes, ttl_ms: int) -> None:
        self._key = hmac.new(secret, b"tokenguard/password-reset/v1", hashlib.sha256).digest()
        self.ttl_ms = ttl_ms

    def fingerprint(self, password_hash: str | None) -> str:
        """An HMAC of the current password hash: the token dies when the hash changes."""
        value = (password_hash or "").encode()
        return hmac.new(self._key, b"pw:" + value, hashlib.sha256).hexdigest()[:32]

    def issue(self, user: User, now: float) -> str:
        claims = {
            "sub": user.id,
            "scope": SCOPE,
            "hash": self.fingerprint(user.password_hash),
            "jti": secrets.token_urlsafe(16),
            "iat": int(now),
            "exp": int(now + self.ttl_ms / 1000),
            "iss": ISSUER,
        }
        return jwt.encode(claims, self._key, algorithm="HS256")

    def verify(self, token: str, now: float) -> dict[str, Any]:
        """The claims of a valid token; raises 401 ``TOKEN_EXPIRED``, 403 ``INVALID_TOKEN``
        (bad signature or shape) or 403 ``FORBIDDEN`` (not a reset token)."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise invalid_token()
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key,
                algorithms=["HS256"],
                issuer=ISSUER,
                leeway=0,
                options={"require": ["exp", "sub", "jti"], "verify_iat": False},
            )
        except jwt.ExpiredSignatureError:
            # Checked by PyJWT after the signature: an expired forgery is still INVALID_TOKEN.
            raise token_expired() from None
        except jwt.InvalidTokenError:
            raise invalid_token() from None
        if not isinstance(claims.get("exp"), int) or claims["exp"] <= now:
            raise token_expired()
        if claims.get("scope") != SCOPE or not isinstance(claims.get("hash"), str):
            raise forbidden()
        if not isinstance(claims.get("sub"), str) or not isinstance(claims.get("jti"), str):
            raise forbidden()
        return claims


# -- the two operations ---------------------------------------------------------------------


class PasswordReset:
    """The request and reset flows over the auth service's stores."""

    def __init__(
        self,
        service: AuthService,
        once: OnceStore | AsyncOnceStore,
        mailer: Mailer,
    ) -> None:
        settings: Settings = service.settings
        self.service = service
        self.settings = settings
        self.once = once
        self.mailer = mailer
        self.tokens = ResetTokens(settings.secret_bytes, settings.password_reset_ttl_ms)
        self.allow_list = settings.password_reset_url_allow_list
        self.policy = (
            password_policy_pattern(settings.auth_password_policy)
            if settings.auth_password_policy
            else None
        )
        public = (settings.public_url or "").rstrip("/")
        self._default_link = f"{public}/admin/reset-password" if public else None

    def check_policy(self, password: str) -> None:
        """Raise 400 ``FAILED_VALIDATION`` if ``AUTH_PASSWORD_POLICY`` refuses ``password``."""
        if self.policy is not None and self.policy.search(password) is None:
            raise failed_password_policy()

    def request(
        self, payload: ResetRequest, started: float, client: ClientInfo | None = None
    ) -> Flow[None]:
        """Send a reset link if the user can have one; always the same answer."""
        audit = self.service.audit
        if payload.reset_url is not None and not is_url_allowed(payload.reset_url, self.allow_list):
            # Before any lookup: this 400 depends on the URL alone.
            yield from audit.emit(
                "password_reset_request", "failure", client, reason="INVALID_PAYLOAD"
            )
            yield from self.service.stall(started)
            raise invalid_payload(f'URL "{payload.reset_url}" can\'t be used to reset passwords')
        try:
            user_id, reason = yield from self._send_link(payload.email, payload.reset_url)
        except AuthError as error:
            yield from audit.emit("password_reset_request", "failure", client, reason=error.code)
            yield from self.service.stall(started)
            raise
        if user_id is None:
            yield from audit.emit("password_reset_request", "failure", client, reason=reason)
        else:
            yield from audit.emit("password_reset_request", "success", client, user_id=user_id)
        yield from self.service.stall(started)

    def send_link(self, email: str, reset_url: str | None = None) -> Flow[bool]:
        """Mail a reset link to the active local user ``email``; ``False`` if there is none."""
        user_id, _ = yield from self._send_link(email, reset_url)
        return user_id is not None

    def _send_link(self, email: str, reset_url: str | None) -> Flow[tuple[str | None, str]]:
        # (the user's id, or None and why no link was sent)
        user: User | None = yield from self.service._store(self.service.users.get_by_email, email)
        if user is None or user.status != "active" or user.provider != "default":
            log.info("password reset requested for no eligible user")
            return None, "NOT_ELIGIBLE"
        base = reset_url or self._default_link
        if base is None:
            log.warning("password reset: no reset_url and no PUBLIC_URL to build the link from")
            return None, "NO_RESET_URL"
        token = self.tokens.issue(user, self.service.clock())
        link = _with_token(base, token)
        text = (
            "You requested a password reset.\n\n"
            f"Follow this link to choose a new password (valid for "
            f"{max(1, self.tokens.ttl_ms // 60_000)} minutes, once):\n\n{link}\n\n"
            "If you did not ask for this, ignore this message.\n"
        )
        # Off the event loop: a mailer that is not the background one may block on SMTP.
        yield Call(self.mailer.send, (Mail(user.email, SUBJECT, text),), blocking=True)
        log.info("password reset link sent to user %s", user.id)
        return user.id, ""

    def reset(self, payload: ResetPayload, client: ClientInfo | None = None) -> Flow[None]:
        """Check the token, set the new password, revoke the user's sessions."""
        seen: list[str] = []
        audit = self.service.audit
        try:
            yield from self._reset(payload, seen, client)
        except AuthError as error:
            user_id = seen[0] if seen else None
            yield from audit.emit(
                "password_reset", "failure", client, user_id=user_id, reason=error.code
            )
            raise
        yield from audit.emit("password_reset", "success", client, user_id=seen[0])

    def _reset(
        self, payload: ResetPayload, seen: list[str], client: ClientInfo | None
    ) -> Flow[None]:
        service = self.service
        now = service.clock()
        claims = self.tokens.verify(payload.token, now)
        user: User | None = yield from service._store(service.users.get_by_id, claims["sub"])
        if (
            user is None
            or user.status != "active"
            or user.provider != "default"
            or not hmac.compare_digest(self.tokens.fingerprint(user.password_hash), claims["hash"])
        ):
            raise forbidden()
        seen.append(user.id)
        self.check_policy(payload.password)
        now_ms = int(now * 1000)
        ttl_ms = int(claims["exp"] * 1000) - now_ms + 1000
        first = yield from service._store(self.once.claim, f"reset:{claims['jti']}", ttl_ms, now_ms)
        if not first:
            raise forbidden()
        new_hash = yield Call(service.passwords.hash, (payload.password,), blocking=True)
        updated = yield from service._store(service.users.update, user.id, password_hash=new_hash)
        if updated is None:
            raise forbidden()
        revoked = yield from service._store(service.sessions.revoke_user, user.id)
        yield from service.user_changed(user, updated, client)
        log.info("password reset for user %s; %s session(s) revoked", user.id, revoked)
