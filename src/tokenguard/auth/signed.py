"""Signed values: the one mechanism for values tokenguard hands out and must recognise later.

Three values leave the server and come back: the single sign-on state cookie
(:mod:`tokenguard.auth.drivers.sso`), the ID of a SAML ``AuthnRequest``
(:mod:`tokenguard.auth.drivers.saml`) and the TOTP secret offered at enrolment
(:mod:`tokenguard.auth.totp`). Each is signed with itsdangerous, so that:

- **A salt per purpose**: the key of each purpose is ``HMAC-SHA256(secret, purpose)``
  (itsdangerous's ``hmac`` key derivation), so a value made for one purpose is refused by
  every other, although all come from ``SECRET``.
- **Key rotation**: values are signed with the newest secret and verified with each of the
  secrets given (the current one and any ``previous``), so a secret can be replaced without
  breaking the logins under way; drop the previous one once the longest lifetime has passed.
- **Expiry**: a timed value carries the time it was signed (from the injected clock) and is
  refused once it is older than the ``max_age`` its reader gives.

Readers raise :class:`itsdangerous.BadData` (tampered, expired, signed for another purpose or
with an unknown key); each flow turns that into its own refusal.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from typing import Any

from itsdangerous import BadData, Signer, TimestampSigner, URLSafeTimedSerializer
from itsdangerous.encoding import base64_decode, base64_encode
from itsdangerous.signer import HMACAlgorithm

__all__ = ["BadData", "DetachedMac", "SignedValues"]


class _ClockedSigner(TimestampSigner):
    """A timestamp signer reading the time from an injected clock (itsdangerous reads
    ``time.time()``), so that the flows' clocks decide expiry in tests and in production."""

    def __init__(self, *args: Any, clock: Callable[[], float] = time.time, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clock = clock

    def get_timestamp(self) -> int:
        return int(self.clock())


class _TruncatedHMAC(HMACAlgorithm):
    """HMAC-SHA256 cut to ``size`` bytes, for values whose format leaves little room."""

    def __init__(self, size: int) -> None:
        super().__init__(hashlib.sha256)
        self.size = size

    def get_signature(self, key: bytes, value: bytes) -> bytes:
        return super().get_signature(key, value)[: self.size]


class DetachedMac:
    """A fixed-size MAC over a message the value does not contain, for a format that is not
    ours (a TOTP secret must be 20 bytes of base32): the newest key makes it, any key checks it.
    """

    def __init__(self, signer: Signer) -> None:
        self._signer = signer

    def of(self, message: bytes) -> bytes:
        """The MAC of ``message`` with the newest secret."""
        return base64_decode(self._signer.get_signature(message))

    def verifies(self, message: bytes, mac: bytes) -> bool:
        """Whether ``mac`` is the MAC of ``message`` under any of the secrets."""
        return self._signer.verify_signature(message, base64_encode(mac))


class SignedValues:
    """Makes the signers of each purpose from one set of secrets and one clock."""

    def __init__(
        self,
        secret: bytes,
        previous: Sequence[bytes] = (),
        *,
        clock: Callable[[], float] | None = None,
    ) -> None:
        # itsdangerous tries the keys newest first and signs with the last one.
        self._keys: list[bytes] = [*previous, secret]
        self.clock = clock if clock is not None else time.time

    def _signer_kwargs(self) -> dict[str, Any]:
        return {
            "key_derivation": "hmac",
            "digest_method": hashlib.sha256,
            "clock": self.clock,
        }

    def serializer(self, purpose: str) -> URLSafeTimedSerializer:
        """A URL- and cookie-safe timed serializer of JSON values for ``purpose``
        (``loads(value, max_age=seconds)``)."""
        return URLSafeTimedSerializer(
            self._keys,
            salt=purpose,
            signer=_ClockedSigner,
            signer_kwargs=self._signer_kwargs(),
        )

    def timestamp_signer(self, purpose: str) -> TimestampSigner:
        """A timed signer of strings for ``purpose``: ``sign(value)`` is
        ``value.<time>.<signature>`` (URL-safe base64), ``unsign(signed, max_age=seconds)``."""
        return _ClockedSigner(self._keys, salt=purpose, **self._signer_kwargs())

    def detached_mac(self, purpose: str, size: int) -> DetachedMac:
        """A ``size``-byte MAC for ``purpose`` (see :class:`DetachedMac`); no expiry."""
        signer = Signer(
            self._keys,
            salt=purpose,
            key_derivation="hmac",
            digest_method=hashlib.sha256,
            algorithm=_TruncatedHMAC(size),
        )
        return DetachedMac(signer)
