"""Asymmetric signing keys: a key ring with rotation, its JWKS, and a remote JWKS client.

A deployment that signs with RS256, ES256 or EdDSA names each key with a ``kid``. Several
keys verify at once; one, the *active* key, signs. Rotating is three configuration changes,
none of which fails a request: add the new key (every process now accepts it), make it
active (new tokens carry its ``kid``; old ones still verify), and, once the last token of
the old key has expired, remove the old key.

Key confusion is impossible by construction: each key's *type* fixes its one algorithm
(RSA → RS256, EC P-256 → ES256, P-384 → ES384, P-521 → ES512, Ed25519/Ed448 → EdDSA), a
token's ``alg`` must equal its key's, and an ``HS*`` token never reaches this module (the
HMAC secret is checked by :class:`~tokenguard.jose.tokens.TokenVerifier` alone). Signatures are
checked with PyJWT's algorithm objects on the segments the strict verifier already parsed.

``TOKENGUARD_JWT_KEYS`` is JSON, inline or in a file::

    {"active": "2026-11", "keys": [
        {"kid": "2026-11", "file": "keys/2026-11.pem"},
        {"kid": "2026-05", "pem": "-----BEGIN PUBLIC KEY-----\\n..."}]}

A private PEM signs and verifies; a public PEM only verifies (a retiring key needs no more).

A verify-only service sets ``TOKENGUARD_JWKS_URL`` instead and reads the issuer's public
keys over HTTP (PyJWT's :class:`~jwt.PyJWKClient`): the key set is cached for
``TOKENGUARD_JWKS_CACHE_TTL`` and fetched again, at most once per
``TOKENGUARD_JWKS_MIN_REFETCH``, when a token names a ``kid`` it does not know.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt.algorithms import Algorithm, get_default_algorithms

from ..errors import AuthError, ConfigError
from .compact import b64url_decode_strict, strict_json
from .refusals import ALGORITHM_NOT_ACCEPTED, BAD_SIGNATURE, MALFORMED, UNKNOWN_KEY

__all__ = [
    "KeyFetchNeeded",
    "KeyRing",
    "RemoteJWKS",
    "VerificationKey",
    "algorithm_for",
    "key_ring_for",
]

log = logging.getLogger("tokenguard.keys")

MIN_RSA_BITS = 2048
#: However TOKENGUARD_JWKS_MIN_REFETCH is set, fetches are at least this far apart: the check
#: that follows a fetch must never ask for another one.
MIN_REFETCH_FLOOR_S = 0.5
_KID_MAX = 128
_HEADER_KEYS = frozenset({"alg", "typ", "kid"})
_CURVES = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
_ALGORITHMS: Mapping[str, Algorithm] = get_default_algorithms()

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | (
    ed448.Ed448PublicKey
)
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | (
    ed448.Ed448PrivateKey
)


class KeyFetchNeeded(AuthError):
    """``INVALID_TOKEN`` for now, but the remote key set may know this ``kid``: the guard
    fetches it (off the event loop) and verifies once more. Any caller that does not know
    this class sees a plain refusal, which is the safe reading."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(403, "INVALID_TOKEN", "Invalid token.")


_FETCH = KeyFetchNeeded()


def algorithm_for(key: PublicKey | PrivateKey) -> str:
    """The one algorithm a key signs with; raises :class:`ConfigError` for any other key."""
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise ConfigError(f"RSA keys need at least {MIN_RSA_BITS} bits, not {key.key_size}")
        return "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        alg = _CURVES.get(key.curve.name)
        if alg is None:
            raise ConfigError(f"EC curve {key.curve.name} is not supported (P-256, P-384, P-521)")
        return alg
    if isinstance(
        key,
        ed25519.Ed25519PublicKey
        | ed25519.Ed25519PrivateKey
        | ed448.Ed448PublicKey
        | ed448.Ed448PrivateKey,
    ):
        return "EdDSA"
    raise ConfigError(f"unsupported key type {type(key).__name__}: use RSA, EC or Ed25519")


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A public key, its ``kid`` and the one algorithm pinned to it."""

    kid: str
    alg: str
    public: Any

    def verifies(self, signing_input: bytes, signature: bytes) -> bool:
        try:
            return bool(_ALGORITHMS[self.alg].verify(signing_input, self.public, signature))
        except Exception:  # a malformed signature is a bad signature, never a crash
            return False

    def to_jwk(self) -> dict[str, Any]:
        """The public JWK (RFC 7517) with ``kid``, ``alg`` and ``use``."""
        jwk: dict[str, Any] = json.loads(_ALGORITHMS[self.alg].to_jwk(self.public))
        jwk.update(kid=self.kid, alg=self.alg, use="sig")
        return jwk


@dataclass(frozen=True, slots=True)
class SigningKey:
    """The active key: it signs every new token."""

    kid: str
    alg: str
    private: Any

    def sign(self, payload: Mapping[str, Any]) -> str:
        headers = {"kid": self.kid}
        return jwt.encode(dict(payload), self.private, algorithm=self.alg, headers=headers)

    def __repr__(self) -> str:
        return f"SigningKey(kid={self.kid!r}, alg={self.alg!r}, <private>)"


def _check_kid(kid: Any) -> str:
    if not isinstance(kid, str) or not 0 < len(kid) <= _KID_MAX or not kid.isprintable():
        raise ConfigError(f"each key needs a kid: a printable string of 1 to {_KID_MAX} characters")
    return kid


def _load_pem(pem: bytes, kid: str) -> tuple[PublicKey, PrivateKey | None]:
    if b"PRIVATE KEY" in pem:
        try:
            private = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"key {kid!r}: not a readable unencrypted private PEM") from exc
        if not isinstance(
            private,
            rsa.RSAPrivateKey
            | ec.EllipticCurvePrivateKey
            | ed25519.Ed25519PrivateKey
            | ed448.Ed448PrivateKey,
        ):
            raise ConfigError(f"key {kid!r}: unsupported key type")
        return private.public_key(), private
    try:
        public = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"key {kid!r}: not a readable PEM key") from exc
    if not isinstance(
        public,
        rsa.RSAPublicKey
        | ec.EllipticCurvePublicKey
        | ed25519.Ed25519PublicKey
        | ed448.Ed448PublicKey,
    ):
        raise ConfigError(f"key {kid!r}: unsupported key type")
    return public, None


def _parse_header(raw: bytes) -> tuple[str, str] | None:
    """``(alg, kid)`` of a header we would have written, else ``None``."""
    try:
        header = strict_json(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if type(header) is not dict or not _HEADER_KEYS.issuperset(header):
        return None  # crit, jku, jwk, x5u…: nothing we honour
    if "typ" in header and header["typ"] != "JWT":
        return None
    alg, kid = header.get("alg"), header.get("kid")
    if type(alg) is not str or type(kid) is not str:
        return None
    return alg, kid


class RemoteJWKS:
    """A remote key set (``TOKENGUARD_JWKS_URL``) through PyJWT's :class:`~jwt.PyJWKClient`.

    :meth:`lookup` never does I/O. :meth:`refresh` fetches (blocking; the guard runs it in a
    worker thread under ASGI), at most once per ``min_refetch_s`` whatever the traffic, so
    tokens with made-up ``kid`` values cannot turn into a flood against the issuer.
    """

    def __init__(
        self,
        url: str,
        *,
        cache_s: float = 300.0,
        min_refetch_s: float = 10.0,
        timeout_s: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.cache_s = cache_s
        self.min_refetch_s = max(min_refetch_s, MIN_REFETCH_FLOOR_S)
        self._client = jwt.PyJWKClient(
            url, cache_jwk_set=False, timeout=timeout_s, cooldown_duration=0
        )
        self._monotonic = monotonic
        self._keys: dict[str, VerificationKey] = {}
        self._fetched_at: float | None = None
        self._tried_at: float | None = None
        self._lock = threading.Lock()
        #: How many fetches were made (for tests and metrics).
        self.fetches = 0

    def lookup(self, kid: str) -> VerificationKey | None:
        """The key for ``kid`` in the last key set fetched, however old."""
        return self._keys.get(kid)

    def stale(self) -> bool:
        """Whether the last fetch attempt is older than ``cache_s`` (a failed attempt counts:
        the issuer is asked again one cache period later, not on every request)."""
        tried = self._tried_at
        return tried is None or self._monotonic() - tried > self.cache_s

    def may_refresh(self) -> bool:
        """Whether a fetch is allowed now (the rate bound)."""
        tried = self._tried_at
        return tried is None or self._monotonic() - tried >= self.min_refetch_s

    def refresh(self) -> bool:
        """Fetch the key set if the rate bound allows; whether a fetch succeeded."""
        with self._lock:
            if not self.may_refresh():
                return False
            self._tried_at = self._monotonic()
            self.fetches += 1
            try:
                jwks = self._client.get_signing_keys(refresh=True)
            except Exception as exc:  # unreachable, not JSON, no usable key…
                # Keys already known stay in use: an issuer outage must not log everyone out.
                log.warning("JWKS fetch from the issuer failed: %s", type(exc).__name__)
                return False
            keys: dict[str, VerificationKey] = {}
            for jwk in jwks:
                key = _from_jwk(jwk)
                if key is not None:
                    keys[key.kid] = key
            self._keys = keys
            self._fetched_at = self._monotonic()
            return True


_PUBLIC_TYPES = (
    rsa.RSAPublicKey,
    ec.EllipticCurvePublicKey,
    ed25519.Ed25519PublicKey,
    ed448.Ed448PublicKey,
)


def _from_jwk(jwk: Any) -> VerificationKey | None:
    kid, public = jwk.key_id, jwk.key
    if not isinstance(kid, str) or not isinstance(public, _PUBLIC_TYPES):
        return None  # "oct" (HMAC) keys and private JWKs published by mistake are never used
    try:
        alg = algorithm_for(public)
    except ConfigError:
        return None  # small RSA keys, other curves
    if getattr(jwk, "algorithm_name", alg) != alg:
        return None  # a declared "alg" that disagrees with the key's type
    return VerificationKey(kid, alg, public)


class KeyRing:
    """Local keys (one active signer, any number of verifiers) and an optional remote set."""

    def __init__(
        self,
        keys: Iterable[VerificationKey] = (),
        active: SigningKey | None = None,
        remote: RemoteJWKS | None = None,
    ) -> None:
        self.keys: dict[str, VerificationKey] = {}
        for key in keys:
            if key.kid in self.keys:
                raise ConfigError(f"kid {key.kid!r} appears twice")
            self.keys[key.kid] = key
        self.active = active
        self.remote = remote

    @classmethod
    def from_config(cls, text: str, *, base_dir: str | None = None) -> KeyRing:
        """Parse ``TOKENGUARD_JWT_KEYS``: JSON, or the path of a JSON file."""
        source = text.strip()
        if not source.startswith("{"):
            try:
                with open(source, encoding="utf-8") as handle:
                    source = handle.read()
            except OSError as exc:
                raise ConfigError(f"TOKENGUARD_JWT_KEYS: cannot read {text!r}") from exc
            base_dir = os.path.dirname(os.path.abspath(text))
        try:
            config = json.loads(source)
        except ValueError as exc:
            raise ConfigError("TOKENGUARD_JWT_KEYS is not valid JSON") from exc
        if not isinstance(config, dict) or not isinstance(config.get("keys"), list):
            raise ConfigError('TOKENGUARD_JWT_KEYS needs {"active": kid, "keys": [...]}')
        verifiers: list[VerificationKey] = []
        privates: dict[str, tuple[str, Any]] = {}
        for entry in config["keys"]:
            if not isinstance(entry, dict):
                raise ConfigError("each entry of TOKENGUARD_JWT_KEYS.keys is an object")
            kid = _check_kid(entry.get("kid"))
            pem: Any = entry.get("pem")
            if pem is None and isinstance(entry.get("file"), str):
                path = entry["file"]
                if base_dir is not None and not os.path.isabs(path):
                    path = os.path.join(base_dir, path)
                try:
                    with open(path, "rb") as handle:
                        pem = handle.read()
                except OSError as exc:
                    raise ConfigError(f"key {kid!r}: cannot read its file") from exc
            if isinstance(pem, str):
                pem = pem.encode()
            if not isinstance(pem, bytes):
                raise ConfigError(f'key {kid!r} needs "pem" or "file"')
            public, private = _load_pem(pem, kid)
            alg = algorithm_for(public)
            if "alg" in entry and entry["alg"] != alg:
                raise ConfigError(f"key {kid!r} is a {alg} key, not {entry['alg']}")
            verifiers.append(VerificationKey(kid, alg, public))
            if private is not None:
                privates[kid] = (alg, private)
        active_kid = config.get("active")
        active: SigningKey | None = None
        if active_kid is not None:
            if active_kid not in privates:
                raise ConfigError(
                    f"the active key {active_kid!r} must be one of the keys, with its private PEM"
                )
            alg, private = privates[active_kid]
            active = SigningKey(active_kid, alg, private)
        return cls(verifiers, active)

    def verify(self, header_seg: str, payload_seg: str, sig_seg: str) -> AuthError | None:
        """Check an asymmetric signature: ``None`` when good, else the refusal (possibly
        :class:`KeyFetchNeeded`)."""
        raw = b64url_decode_strict(header_seg)
        parsed = None if raw is None else _parse_header(raw)
        if parsed is None:
            return MALFORMED
        alg, kid = parsed
        if alg.startswith("HS") or alg == "none":
            # never a symmetric or unsigned token through a public key
            return ALGORITHM_NOT_ACCEPTED
        key = self.keys.get(kid)
        remote = self.remote
        if key is None and remote is not None:
            if remote.may_refresh() and remote.stale():
                return _FETCH  # due: a key the issuer retired must stop passing
            key = remote.lookup(kid)
            if key is None:
                # Unknown: maybe just rotated in. When the issuer cannot be reached the keys
                # already known stay in use (an outage must not log everyone out).
                return _FETCH if remote.may_refresh() else UNKNOWN_KEY
        if key is None:
            return UNKNOWN_KEY
        if alg != key.alg:
            return ALGORITHM_NOT_ACCEPTED
        signature = b64url_decode_strict(sig_seg)
        if signature is None:
            return MALFORMED
        if not key.verifies(f"{header_seg}.{payload_seg}".encode("ascii"), signature):
            return BAD_SIGNATURE
        return None

    def jwks(self) -> dict[str, Any]:
        """The public JWK Set of the local keys (never a private part)."""
        return {"keys": [key.to_jwk() for key in self.keys.values()]}

    def jwks_body(self) -> bytes:
        return json.dumps(self.jwks(), separators=(",", ":")).encode()


@lru_cache(maxsize=8)
def key_ring_for(
    jwt_keys: str | None,
    jwks_url: str | None = None,
    jwks_cache_ms: int = 300_000,
    jwks_min_refetch_ms: int = 10_000,
) -> KeyRing | None:
    """The process's key ring for these settings (made once, shared by issuer and verifier);
    ``None`` when neither local keys nor a JWKS URL are configured."""
    if not jwt_keys and not jwks_url:
        return None
    ring = KeyRing.from_config(jwt_keys) if jwt_keys else KeyRing()
    if jwks_url:
        ring.remote = RemoteJWKS(
            jwks_url, cache_s=jwks_cache_ms / 1000, min_refetch_s=jwks_min_refetch_ms / 1000
        )
    return ring

