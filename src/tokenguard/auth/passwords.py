"""Password hashing with argon2id (argon2-cffi), and a verification that costs the same
whether or not the user exists. Hashes other software wrote (bcrypt, Werkzeug, Django; see
:mod:`tokenguard.auth.legacy_hashes`) verify too, and :meth:`Passwords.needs_rehash` says to
replace them with argon2id at the next successful login.

Passwords are only ever handled as bytes inside this module; they are never stored, logged
or put in an exception message.
"""

from __future__ import annotations

import logging
import secrets
import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from .hashing import HashPool, shared_pool
from .legacy_hashes import argon2_of_django, verify_legacy

__all__ = ["Passwords", "hash_password", "verify_password"]

log = logging.getLogger("tokenguard")


def _encode(password: str) -> bytes:
    # JSON allows lone surrogates ("\ud800"); they must not crash the hasher.
    return password.encode("utf-8", "surrogatepass")


class Passwords:
    """argon2id hashing and verification.

    ``hasher`` defaults to argon2-cffi's recommended parameters (argon2id, RFC 9106 low-memory
    profile). :meth:`verify` against a missing hash runs a full verification of a dummy hash
    made with the same parameters, so that "no such user" costs as much as "wrong password".
    """

    def __init__(
        self, hasher: PasswordHasher | None = None, *, pool: HashPool | None = None
    ) -> None:
        self.hasher = hasher if hasher is not None else PasswordHasher()
        #: Where every hash and verification runs (:mod:`tokenguard.auth.hashing`): the
        #: process's shared pool unless one is given. Flows driven on an event loop await it
        #: directly (:func:`tokenguard.flow.run_async` looks for this attribute).
        self.pool = pool if pool is not None else shared_pool()
        self._dummy: str | None = None
        self._lock = threading.Lock()

    def hash(self, password: str) -> str:
        """A new argon2id hash of ``password`` (random salt)."""
        return self.pool.run(self._hash, password)

    def _hash(self, password: str) -> str:
        return self.hasher.hash(_encode(password))

    def _dummy_hash(self) -> str:
        # Made once, lazily: importing tokenguard should not cost an argon2 run.
        if self._dummy is None:
            with self._lock:
                if self._dummy is None:
                    self._dummy = self.hasher.hash(secrets.token_bytes(16))
        return self._dummy

    @property
    def warm(self) -> bool:
        """Whether the dummy hash exists (so an unknown user costs exactly one verification)."""
        return self._dummy is not None

    def warm_up(self) -> None:
        """Compute the dummy hash now rather than on the first failed login."""
        self.pool.run(self._dummy_hash)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether ``password`` matches ``password_hash``; a ``None`` or unreadable hash
        costs one dummy verification and answers ``False``."""
        return self.pool.run(self._verify, password_hash, password)

    def _verify(self, password_hash: str | None, password: str) -> bool:
        candidate = _encode(password)
        if not password_hash:
            self._burn(password)
            return False
        password_hash = argon2_of_django(password_hash) or password_hash
        if not password_hash.startswith("$argon2"):
            try:
                legacy = verify_legacy(password_hash, candidate)
            except RuntimeError as exc:  # a hash we know, a library that is missing
                log.error("%s", exc)
                legacy = None
            if legacy is not None:
                return legacy
            self._burn(password)
            return False
        try:
            return self.hasher.verify(password_hash, candidate)
        except VerifyMismatchError:
            return False
        except (InvalidHashError, VerificationError, ValueError):
            self._burn(password)
            return False

    def burn(self, password: str) -> None:
        """Spend the cost of one verification and learn nothing (unknown user)."""
        self.pool.run(self._burn, password)

    def _burn(self, password: str) -> None:
        try:
            self.hasher.verify(self._dummy_hash(), _encode(password))
        except (VerificationError, InvalidHashError, ValueError):
            pass

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether ``password_hash`` is not an argon2id hash of the current parameters (a
        foreign format included)."""
        try:
            return self.hasher.check_needs_rehash(password_hash)
        except (InvalidHashError, ValueError):
            return True


_DEFAULT = Passwords()


def hash_password(password: str) -> str:
    """argon2id hash of ``password`` with the default parameters (for creating users)."""
    return _DEFAULT.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Check ``password`` against ``password_hash`` with the default parameters."""
    return _DEFAULT.verify(password_hash, password)
