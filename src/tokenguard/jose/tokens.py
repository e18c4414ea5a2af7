"""Issue and verify access tokens.

Verification on the request path is our own strict compact-JWS check for the HMAC
algorithms — standard-library ``hmac`` and ``compare_digest``, no cryptography of our own —
because PyJWT's general-purpose parsing costs ~8x more than the HMAC itself. It is stricter
than PyJWT and proven never to accept what PyJWT rejects by a differential test
(``tests/jose/test_tokens_differential.py``). PyJWT issues every token.

Classification follows Directus: a token whose payload decodes to an object with our
``iss`` is one of our JWTs and any fault in it is ``INVALID_TOKEN`` (403; ``TOKEN_EXPIRED``
for a good signature past ``exp``). Anything else is not ours and is looked up as a static
token. Each refusal is one of :mod:`tokenguard.jose.refusals`' shared values, which say why for
the DEBUG log.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
from collections.abc import Mapping
from typing import Any

import jwt

from ..errors import AuthError
from .compact import DuplicateKey, b64url_decode_strict, strict_json
from .policy import TokenPolicy
from .refusals import (
    ALGORITHM_NOT_ACCEPTED,
    BAD_SIGNATURE,
    EXPIRED,
    INVALID_CLAIMS,
    MALFORMED,
    NOT_YET_VALID,
    WRONG_AUDIENCE,
    TokenRefusal,
)

__all__ = ["TokenVerifier", "hash_token", "issue_access_token"]

_DIGESTS = {"HS256": "sha256", "HS384": "sha384", "HS512": "sha512"}
_SIG_LEN = {"HS256": 32, "HS384": 48, "HS512": 64}
_HEADER_KEYS = frozenset({"alg", "typ", "kid"})
_MISSING = object()

_HEADER_CACHE_SIZE = 64
_NOT_B64 = re.compile(r"[^A-Za-z0-9_+/-]")


def hash_token(token: str) -> str:
    """SHA-256 hex digest under which static and refresh tokens are stored."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _lenient_payload(segment: str) -> Any:
    # As Node's Buffer decodes base64: characters outside the alphabet (padding included) are
    # skipped wherever they are, so the padding added is what the remaining characters need
    # (counting the skipped ones made a stray character's verdict depend on the length).
    data = _NOT_B64.sub("", segment)
    try:
        return json.loads(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        return None


def _is_int(value: Any) -> bool:
    return type(value) is int


def _is_number(value: Any) -> bool:
    # JSON's 1e400 parses to infinity, which PyJWT's int() refuses: refuse it too.
    return type(value) is int or (type(value) is float and math.isfinite(value))


class TokenVerifier:
    """Strict verification of our HMAC-signed access tokens under a :class:`TokenPolicy`
    (asymmetric ones go to the policy's key ring).

    :meth:`verify` returns the claims, an :class:`AuthError`, or ``None`` when the token is
    not one of ours (then it is a static-token candidate).
    """

    __slots__ = (
        "_key",
        "_alg",
        "_digest",
        "_sig_len",
        "issuer",
        "audience",
        "leeway",
        "require_exp",
        "max_length",
        "_good_headers",
        "_mac",
        "keys",
        "policy",
    )

    def __init__(self, policy: TokenPolicy) -> None:
        self.policy = policy
        # The policy's values copied into slots: the hot path reads attributes, not a chain.
        self._key = policy.secret
        # With the HMAC secret retired (or absent: verify-only), no header is an HMAC one: a
        # marker no JSON value equals (an empty string did, so {"alg": ""} passed as HMAC).
        self._alg: object = policy.algorithm if policy.accept_hmac else _MISSING
        self._digest = _DIGESTS[policy.algorithm]
        self._sig_len = _SIG_LEN[policy.algorithm]
        self.issuer = policy.issuer
        self.audience = policy.audience
        self.leeway = policy.leeway_s
        self.require_exp = policy.require_exp
        self.max_length = policy.max_length
        self._good_headers: set[str] = set()
        self._mac = hmac.new(self._key, digestmod=self._digest)
        #: Asymmetric keys by kid (tokenguard.jose.keys), or None: only the HMAC path exists.
        self.keys = policy.keys

    def verify(self, token: str, now: float) -> dict[str, Any] | AuthError | None:
        """Verify ``token`` at Unix time ``now``."""
        if len(token) > self.max_length or token.count(".") != 2:
            return None
        header_seg, payload_seg, sig_seg = token.split(".")
        raw_payload = b64url_decode_strict(payload_seg)
        if raw_payload is None:
            return self._classify_loose(payload_seg)
        try:
            payload = strict_json(raw_payload)
        except DuplicateKey:
            return self._classify_loose(payload_seg)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return None
        if type(payload) is not dict or payload.get("iss") != self.issuer:
            return None
        # From here on the token claims to be ours: every fault is INVALID_TOKEN.
        refused = None if header_seg in self._good_headers else self._header_refusal(header_seg)
        if refused is not None:
            keys = self.keys
            if keys is None:
                return refused
            # Not our HMAC header: an asymmetric one, checked against the key its kid names.
            refusal = keys.verify(header_seg, payload_seg, sig_seg)
            return refusal if refusal is not None else self.check_claims(payload, now)
        signature = b64url_decode_strict(sig_seg)
        if signature is None:
            return MALFORMED
        if len(signature) != self._sig_len:
            return BAD_SIGNATURE
        # Copying a keyed HMAC skips hashing the key again for every token.
        mac = self._mac.copy()
        mac.update(f"{header_seg}.{payload_seg}".encode("ascii"))
        expected = mac.digest()
        if not hmac.compare_digest(expected, signature):
            return BAD_SIGNATURE
        return self.check_claims(payload, now)

    def _classify_loose(self, payload_seg: str) -> AuthError | None:
        # Not canonical, but does it *claim* to be ours? Then it is a forgery, not a static token.
        loose = _lenient_payload(payload_seg)
        if isinstance(loose, dict) and loose.get("iss") == self.issuer:
            return MALFORMED
        return None

    def foreign_issuer(self, token: str) -> bool:
        """Whether ``token`` looks like a JWT of another issuer (for the DEBUG reason of a
        token that was no static token either; never on the request path's good side)."""
        if token.count(".") != 2:
            return False
        loose = _lenient_payload(token.split(".")[1])
        return isinstance(loose, dict) and "iss" in loose and loose["iss"] != self.issuer

    def _header_refusal(self, header_seg: str) -> TokenRefusal | None:
        # A verdict depends on the segment alone, and an issuer uses one or two headers:
        # remember the good ones (a few, so that no client can grow this).
        refused = self._check_header(header_seg)
        if refused is None and len(self._good_headers) < _HEADER_CACHE_SIZE:
            self._good_headers.add(header_seg)
        return refused

    def _check_header(self, header_seg: str) -> TokenRefusal | None:
        raw = b64url_decode_strict(header_seg)
        if raw is None:
            return MALFORMED
        try:
            header = strict_json(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return MALFORMED
        if type(header) is not dict:
            return MALFORMED
        if header.get("alg") != self._alg:
            return ALGORITHM_NOT_ACCEPTED
        if not _HEADER_KEYS.issuperset(header):
            return MALFORMED  # crit, b64, jku, jwk, x5u…: nothing we issue, nothing we honour
        if "typ" in header and header["typ"] != "JWT":
            return MALFORMED
        if "kid" in header and type(header["kid"]) is not str:
            return MALFORMED
        return None

    def check_claims(self, payload: dict[str, Any], now: float) -> dict[str, Any] | AuthError:
        """Registered and Directus claims of a payload whose signature is already good."""
        leeway = self.leeway
        exp = payload.get("exp")
        if exp is None:
            if self.require_exp or "exp" in payload:
                return INVALID_CLAIMS
        elif not _is_int(exp):
            return INVALID_CLAIMS
        elif exp <= now - leeway:
            return EXPIRED
        if "nbf" in payload:
            nbf = payload["nbf"]
            if not _is_number(nbf):
                return INVALID_CLAIMS
            if nbf > now + leeway:
                return NOT_YET_VALID
        if "iat" in payload:
            iat = payload["iat"]
            if not _is_number(iat):
                return INVALID_CLAIMS
            if iat > now + leeway:
                return NOT_YET_VALID  # issued in the future
        if "aud" in payload or self.audience is not None:
            aud = payload.get("aud")
            if self.audience is None:
                return WRONG_AUDIENCE
            if isinstance(aud, str):
                if aud != self.audience:
                    return WRONG_AUDIENCE
            elif not (
                isinstance(aud, list)
                and self.audience in aud
                and all(type(a) is str for a in aud)  # as PyJWT: a list of strings only
            ):
                return WRONG_AUDIENCE
        for name in ("sub", "jti", "id", "session", "sid"):
            if name in payload and type(payload[name]) is not str:
                return INVALID_CLAIMS
        if "iat_ms" in payload and type(payload["iat_ms"]) is not int:
            return INVALID_CLAIMS
        # Directus requires these three to be present; role may be null.
        role = payload.get("role", _MISSING)
        if role is _MISSING or not (role is None or type(role) is str):
            return INVALID_CLAIMS
        for name in ("app_access", "admin_access"):
            value = payload.get(name, _MISSING)
            if value is _MISSING or value not in (True, False):  # 1 and 0 compare equal
                return INVALID_CLAIMS
        return payload


def issue_access_token(
    policy: TokenPolicy,
    *,
    user_id: str | None,
    role: str | None,
    app_access: bool,
    admin_access: bool,
    ttl_ms: int,
    now: float,
    session: str | None = None,
    sid: str | None = None,
    extra: Mapping[str, Any] | None = None,
    as_of: float | None = None,
) -> str:
    """Sign an access token with Directus's claims, in Directus's order: with the policy's
    active asymmetric key if it has one, else with its HMAC secret.

    Two claims of ours follow Directus's: ``sid``, the session the token belongs to (its
    family, not a secret), by which a logout voids the token at once; and ``iat_ms``, the
    issue time to the millisecond, so that a user's revocation refuses exactly the tokens
    issued before it (``iat`` has whole seconds only). See :mod:`tokenguard.guard.revocation`.

    ``as_of`` (default ``now``) dates ``iat`` and ``iat_ms`` earlier than ``now``: the moment
    the claims were read, so that a change of the user since then refuses the token. ``exp``
    always counts ``ttl_ms`` from ``now``: the client's ``expires`` says the same.
    """
    iat = int(now if as_of is None else min(as_of, now))
    expires = int(now) + ttl_ms // 1000
    payload: dict[str, Any] = {}
    if user_id is not None:
        payload["id"] = user_id
    payload["role"] = role
    payload["app_access"] = bool(app_access)
    payload["admin_access"] = bool(admin_access)
    if session is not None:
        payload["session"] = session
    if sid is not None:
        payload["sid"] = sid
    if extra:
        payload.update(extra)
    payload["iat"] = iat
    payload["iat_ms"] = int((now if as_of is None else min(as_of, now)) * 1000)
    payload["exp"] = expires
    payload["iss"] = policy.issuer
    if policy.audience is not None:
        payload["aud"] = policy.audience
    ring = policy.keys
    if ring is not None and ring.active is not None:
        return ring.active.sign(payload)
    return jwt.encode(payload, policy.secret, algorithm=policy.algorithm)
