"""Two-factor login with TOTP: enrolment, the login check, replay protection, encryption.

Codes are Directus's (otplib's defaults: RFC 6238, HMAC-SHA1, 6 digits, 30 s steps, no drift
window), so the same authenticator entries work. Two things are deliberately stronger:

- A code is accepted **once**: the (user, time step) pair is claimed in the one-time store
  (:mod:`tokenguard.stores.once`; Redis, SQLite or memory, following the session store)
  until the step can no longer be valid, so a code seen over a shoulder or in a log cannot
  be replayed, not even at login right after enrolment.
- Secrets are **encrypted at rest** (AES-256-GCM, key derived from ``SECRET`` with HKDF,
  the user id as associated data, so a ciphertext copied onto another user does not open).
  ``User.tfa_secret`` holds ``tg1.<base64url(nonce ‖ ciphertext)>``. A bare base32 secret,
  as Directus stores it, is still read, so users imported from Directus keep their TOTP.
- Only a secret that ``generate`` made for the user (after checking the password) can be
  enabled: the secret carries a MAC of the user id (:mod:`tokenguard.auth.signed`, purpose
  ``tokenguard/tfa-enrol/v1``), so an access token alone cannot plant an attacker's
  authenticator on the account.

The endpoints (spec §11) are ``POST /users/me/tfa/generate|enable|disable`` (the path is
``TOKENGUARD_TFA_PREFIX``), served by :class:`~tokenguard.http.routes.AuthRouter`.
"""

from __future__ import annotations

import base64
import hmac
import logging
import re
import secrets
from collections.abc import Callable, Mapping
from typing import Any, Protocol
from urllib.parse import quote

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import AuthError, invalid_credentials, invalid_payload
from ..flow import Call, Flow
from ..logs.audit import Audit, ClientLike
from ..stores.base import AsyncOnceStore, AsyncUserStore, OnceStore, User, UserStore
from .passwords import Passwords
from .signed import SignedValues

__all__ = [
    "ALREADY_SET",
    "NO_EMAIL",
    "OTP_INVALID",
    "SECRET_INVALID",
    "STEP_SECONDS",
    "SecretBox",
    "TwoFactor",
    "otpauth_url",
    "totp_at",
]

log = logging.getLogger("tokenguard.auth")

STEP_SECONDS = 30
DIGITS = 6
_PREFIX = "tg1."
_BASE32 = re.compile(r"[A-Z2-7]{16,128}")
ALREADY_SET = "TFA Secret is already set for this user"
NO_EMAIL = "User must have a valid email to enable TFA"
OTP_INVALID = '"otp" is invalid'
#: The signing purpose (salt) of the MAC an enrolment secret carries.
ENROL_PURPOSE = "tokenguard/tfa-enrol/v1"
#: Bytes of randomness and of MAC in an enrolment secret (20 bytes: 32 base32 characters).
_NONCE_BYTES = _MAC_BYTES = 10
SECRET_INVALID = '"secret" is invalid'


def totp_at(secret: str, for_time: float) -> str:
    """The code of ``secret`` (base32) for the step containing ``for_time`` (pyotp)."""
    import pyotp

    return str(pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).at(int(for_time)))


def otpauth_url(secret: str, account: str, issuer: str) -> str:
    """The ``otpauth://totp/<issuer>:<account>?secret=…&issuer=…`` URI for authenticator
    apps (what a QR code shows)."""
    label = quote(f"{issuer}:{account}", safe="@:")
    return f"otpauth://totp/{label}?secret={secret}&issuer={quote(issuer, safe='')}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SecretBox:
    """Encrypts TOTP secrets for storage (AES-GCM, HKDF-derived key, user id as AAD)."""

    def __init__(self, secret: bytes) -> None:
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"tokenguard/tfa-secret/v1"
        ).derive(secret)
        self._aead = AESGCM(key)

    def seal(self, user_id: str, secret: str) -> str:
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, secret.encode(), user_id.encode())
        return _PREFIX + _b64(nonce + sealed)

    def open(self, user_id: str, stored: str | None) -> str | None:
        """The base32 secret, or ``None`` if ``stored`` is empty or cannot be opened."""
        if not stored:
            return None
        if not stored.startswith(_PREFIX):
            # A secret imported from Directus, stored in clear; re-enrol to encrypt it.
            return stored if _BASE32.fullmatch(stored) else None
        try:
            raw = _unb64(stored[len(_PREFIX) :])
            plain = self._aead.decrypt(raw[:12], raw[12:], user_id.encode())
        except (InvalidTag, ValueError):
            log.warning("unreadable TOTP secret for user %s", user_id)
            return None
        return plain.decode()


class _UserChanged(Protocol):
    """:meth:`AuthService.user_changed <tokenguard.auth.service.AuthService.user_changed>`:
    told of the change, with the client that asked for it (for the audit trail)."""

    def __call__(
        self, before: User, after: User | None, /, client: ClientLike | None = None
    ) -> Flow[None]: ...


class TwoFactor:
    """The TOTP check used by login, and the three enrolment operations (flows)."""

    def __init__(
        self,
        secret: bytes,
        users: UserStore | AsyncUserStore,
        once: OnceStore | AsyncOnceStore,
        *,
        passwords: Passwords | None = None,
        issuer: str = "tokenguard",
        clock: Callable[[], float] | None = None,
        store_call: Callable[..., Flow[Any]] | None = None,
        audit: Audit | None = None,
        password_providers: Mapping[str, Any] | None = None,
        signing: SignedValues | None = None,
        revoke_user: Callable[[str], Flow[None]] | None = None,
        user_changed: _UserChanged | None = None,
    ) -> None:
        import time

        self.box = SecretBox(secret)
        if signing is None:
            signing = SignedValues(secret)
        self._enrolment = signing.detached_mac(ENROL_PURPOSE, _MAC_BYTES)
        self.users = users
        self.once = once
        self.passwords = passwords if passwords is not None else Passwords()
        self.issuer = issuer
        self.clock = clock if clock is not None else time.time
        self._store = store_call if store_call is not None else _plain_call
        #: Where enabling and disabling are recorded (tokenguard.audit).
        self.audit = audit if audit is not None else Audit(clock=self.clock)
        #: Provider name -> who checks its users' passwords (an LDAP directory), as
        #: :attr:`AuthService.password_providers`; other users' are checked by ``passwords``.
        self.password_providers = password_providers if password_providers is not None else {}
        #: Voids a user's access tokens (AuthService.revoke_user): disabling two-factor
        #: ends what was obtained with the weaker or the stronger login alike.
        self.revoke_user = revoke_user
        #: Decides from the user before and after the change (AuthService.user_changed),
        #: as every path that updates a user does; preferred to ``revoke_user`` when given.
        self.user_changed = user_changed

    # -- secrets ----------------------------------------------------------------------------

    def mint_secret(self, user_id: str) -> str:
        """A new 160-bit base32 secret (32 characters, like Directus's): 80 random bits and an
        80-bit MAC binding them to ``user_id``, checked by :meth:`minted_for` at enrolment.
        It does not expire: nothing is stored until it is enabled, and only for this user."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return base64.b32encode(nonce + self._enrolment.of(_enrolled(user_id, nonce))).decode()

    def minted_for(self, user_id: str, secret: str) -> bool:
        """Whether ``secret`` came from :meth:`mint_secret` for ``user_id``."""
        if len(secret) != 32 or not _BASE32.fullmatch(secret):
            return False
        raw = base64.b32decode(secret)
        nonce, mac = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]
        return self._enrolment.verifies(_enrolled(user_id, nonce), mac)

    # -- codes ------------------------------------------------------------------------------

    def code_step(self, secret: str, code: str, now: float) -> int | None:
        """The time step ``code`` is valid for at ``now`` (the current step only), or None."""
        if len(code) != DIGITS or not code.isascii() or not code.isdigit():
            return None
        try:
            expected = totp_at(secret, now)
        except Exception:  # a secret pyotp cannot read refuses every code
            return None
        if not hmac.compare_digest(expected, code):
            return None
        return int(now) // STEP_SECONDS

    def _claim(self, user_id: str, step: int, now: float) -> Flow[bool]:
        now_ms = int(now * 1000)
        # Remembered until the step is over, plus one step for clocks that differ a little.
        ttl_ms = (step + 2) * STEP_SECONDS * 1000 - now_ms
        first: bool = yield from self._store(
            self.once.claim, f"totp:{user_id}:{step}", ttl_ms, now_ms
        )
        return first

    def check(self, user: User, code: str) -> Flow[bool]:
        """Whether ``code`` is a fresh, unused code for ``user`` (claims it when it is)."""
        secret = self.box.open(user.id, user.tfa_secret)
        if secret is None:
            return False
        now = self.clock()
        step = self.code_step(secret, code, now)
        if step is None:
            return False
        first = yield from self._claim(user.id, step, now)
        if not first:
            log.warning("TOTP code replayed for user %s", user.id)
        return first

    # -- enrolment --------------------------------------------------------------------------

    def _user(self, user_id: str | None) -> Flow[User]:
        if not user_id:
            raise invalid_credentials()
        user: User | None = yield from self._store(self.users.get_by_id, user_id)
        if user is None or user.status != "active":
            raise invalid_credentials()
        return user

    def generate(self, user_id: str | None, password: str) -> Flow[dict[str, str]]:
        """A new secret and its otpauth URL, after checking the password; nothing is stored."""
        user = yield from self._user(user_id)
        provider = self.password_providers.get(user.provider)
        if provider is not None:
            ok = yield from provider.verify_password(user, password)
        else:
            ok = yield Call(self.passwords.verify, (user.password_hash, password), blocking=True)
        if not ok:
            raise invalid_credentials()
        if user.tfa_secret:
            raise invalid_payload(ALREADY_SET)
        if not user.email:
            raise invalid_payload(NO_EMAIL)
        secret = self.mint_secret(user.id)
        return {"secret": secret, "otpauth_url": otpauth_url(secret, user.email, self.issuer)}

    def _audited(
        self, event: str, user_id: str | None, client: ClientLike | None, flow: Flow[None]
    ) -> Flow[None]:
        try:
            yield from flow
        except AuthError as error:
            yield from self.audit.emit(
                event, "failure", client, user_id=user_id or None, reason=error.code
            )
            raise
        yield from self.audit.emit(event, "success", client, user_id=user_id)

    def enable(
        self, user_id: str | None, secret: str, code: str, client: ClientLike | None = None
    ) -> Flow[None]:
        """Store ``secret`` (encrypted) once ``code`` proves the authenticator has it."""
        return self._audited("tfa_enable", user_id, client, self._enable(user_id, secret, code))

    def _enable(self, user_id: str | None, secret: str, code: str) -> Flow[None]:
        user = yield from self._user(user_id)
        if user.tfa_secret:
            raise invalid_payload(ALREADY_SET)
        if not self.minted_for(user.id, secret):
            # Only a secret `generate` made for this user (after checking the password) can be
            # enabled: a stolen access token alone cannot plant an attacker's authenticator.
            raise invalid_payload(SECRET_INVALID)
        now = self.clock()
        step = self.code_step(secret, code, now)
        if step is None or not (yield from self._claim(user.id, step, now)):
            raise invalid_payload(OTP_INVALID)
        yield from self._store(
            self.users.update, user.id, tfa_secret=self.box.seal(user.id, secret)
        )
        log.info("two-factor enabled for user %s", user.id)

    def disable(
        self, user_id: str | None, code: str, client: ClientLike | None = None
    ) -> Flow[None]:
        """Remove the secret once ``code`` is a fresh code for it."""
        return self._audited(
            "tfa_disable", user_id, client, self._disable(user_id, code, client)
        )

    def _disable(
        self, user_id: str | None, code: str, client: ClientLike | None
    ) -> Flow[None]:
        user = yield from self._user(user_id)
        if not user.tfa_secret:
            raise invalid_payload(f'User "{user.id}" doesn\'t have TFA enabled')
        if not (yield from self.check(user, code)):
            raise invalid_payload(OTP_INVALID)
        updated = yield from self._store(self.users.update, user.id, tfa_secret=None)
        if self.user_changed is not None:
            yield from self.user_changed(user, updated, client=client)
        elif self.revoke_user is not None:
            yield from self.revoke_user(user.id)
        log.info("two-factor disabled for user %s", user.id)


def _enrolled(user_id: str, nonce: bytes) -> bytes:
    # The message an enrolment secret's MAC covers (as before itsdangerous: secrets minted
    # then still enable).
    return user_id.encode() + b"\0" + nonce


def _plain_call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Flow[Any]:
    return (yield Call(fn, args, kwargs))
