"""Password hashes other software wrote verify exactly as that software says (differential:
hashes made by Werkzeug, bcrypt and Django's own hashers), and a login upgrades them to
argon2id."""

from __future__ import annotations

from typing import Any

import bcrypt
import pytest
from argon2 import PasswordHasher
from django.contrib.auth import hashers as django_hashers
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from werkzeug.security import generate_password_hash

from tokenguard.auth.legacy_hashes import MAX_PBKDF2_ITERATIONS, is_legacy_hash, verify_legacy
from tokenguard.auth.passwords import Passwords

# Cheap argon2 parameters: these tests are about which hashes verify, not what they cost
# (hypothesis runs hundreds of examples, each burning a dummy verification).
PASSWORDS = Passwords(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
# Any text a JSON body can carry, lone surrogates excluded (they cannot reach another hasher).
password_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=60)


class FastBCryptSHA256(django_hashers.BCryptSHA256PasswordHasher):
    rounds = 4


class FastBCrypt(django_hashers.BCryptPasswordHasher):
    rounds = 4


class FastArgon2(django_hashers.Argon2PasswordHasher):
    time_cost = 1
    memory_cost = 1024
    parallelism = 1


def _django(hasher: Any, password: str) -> str:
    if isinstance(hasher, django_hashers.PBKDF2PasswordHasher):
        return str(hasher.encode(password, hasher.salt(), iterations=1000))
    return str(hasher.encode(password, hasher.salt()))


MAKERS: dict[str, Any] = {
    "werkzeug-pbkdf2": lambda p: generate_password_hash(p, "pbkdf2:sha256:1000"),
    "werkzeug-scrypt": lambda p: generate_password_hash(p, "scrypt:1024:8:1"),
    "bcrypt-2b": lambda p: bcrypt.hashpw(p.encode()[:72], bcrypt.gensalt(4)).decode(),
    "bcrypt-2a": lambda p: bcrypt.hashpw(p.encode()[:72], bcrypt.gensalt(4, prefix=b"2a")).decode(),
    "bcrypt-2y": lambda p: bcrypt.hashpw(p.encode()[:72], bcrypt.gensalt(4)).decode().replace("$2b$", "$2y$", 1),
    "django-pbkdf2_sha256": lambda p: _django(django_hashers.PBKDF2PasswordHasher(), p),
    "django-pbkdf2_sha1": lambda p: _django(django_hashers.PBKDF2SHA1PasswordHasher(), p),
    "django-bcrypt_sha256": lambda p: _django(FastBCryptSHA256(), p),
    "django-bcrypt": lambda p: _django(FastBCrypt(), p),
    "django-argon2": lambda p: _django(FastArgon2(), p),
}


@pytest.mark.parametrize("kind", sorted(MAKERS))
@given(password=password_text, other=password_text)
@settings(max_examples=15, deadline=None)
def test_foreign_hashes_verify_as_their_makers_say(kind: str, password: str, other: str) -> None:
    # Django's plain bcrypt hasher refuses (with bcrypt>=5) what bcrypt cannot read whole.
    assume(kind != "django-bcrypt" or len(password.encode()) <= 72)
    stored = MAKERS[kind](password)
    assert PASSWORDS.verify(stored, password) is True
    # bcrypt reads 72 bytes: two passwords equal there are equal to it (and to us).
    same_to_bcrypt = "bcrypt-" in kind and password.encode()[:72] == other.encode()[:72]
    # Before its 5.0, the bcrypt package read a password only up to its first NUL (as C's
    # crypt does), so "" and "\0" were one password; later ones refuse a NUL. What the maker
    # says then depends on its version: such pairs are not asserted here.
    cut = [p.encode().split(b"\0")[0][:72] for p in (password, other)]
    assume(not ("bcrypt-" in kind and "\0" in password + other and cut[0] == cut[1]))
    # HMAC pads a key shorter than its hash's 64-byte block with zeros: to PBKDF2 (and scrypt,
    # built on it) passwords that differ only by trailing NULs there are one password.
    a, b = password.encode(), other.encode()
    same_to_hmac = (
        ("pbkdf2" in kind or "scrypt" in kind)
        and max(len(a), len(b)) <= 64
        and a.rstrip(b"\0") == b.rstrip(b"\0")
    )
    assert PASSWORDS.verify(stored, other) is (other == password or same_to_bcrypt or same_to_hmac)
    assert PASSWORDS.needs_rehash(stored)


DJANGO_HASHERS: dict[str, Any] = {
    "django-pbkdf2_sha256": django_hashers.PBKDF2PasswordHasher(),
    "django-pbkdf2_sha1": django_hashers.PBKDF2SHA1PasswordHasher(),
    "django-bcrypt_sha256": FastBCryptSHA256(),
    "django-bcrypt": FastBCrypt(),
    "django-argon2": FastArgon2(),
}


@pytest.mark.parametrize("kind", sorted(DJANGO_HASHERS))
def test_django_agrees_on_its_own_hashes(kind: str) -> None:
    stored = MAKERS[kind]("correct horse")
    hasher = DJANGO_HASHERS[kind]
    for candidate in ("correct horse", "correct horsf", ""):
        assert PASSWORDS.verify(stored, candidate) is hasher.verify(candidate, stored)


def test_malformed_hashes_are_false_never_errors() -> None:
    good = MAKERS["django-pbkdf2_sha256"]("pw")
    algorithm, iterations, salt, digest = good.split("$")
    for stored in (
        "pbkdf2_sha256$",
        f"{algorithm}$x$${digest}",
        f"{algorithm}${iterations}${salt}$not base64!",
        f"{algorithm}${iterations}${salt}$",
        f"{algorithm}${MAX_PBKDF2_ITERATIONS + 1}${salt}${digest}",
        f"{algorithm}$0${salt}${digest}",
        "$2b$04$short",
        "$2y$99$" + "a" * 53,
        "$2b$04$" + "a" * 52,
        "$2b$04$" + "a" * 54,
        "$2b$04$" + "a" * 52 + "!",
        "$2b$4$" + "a" * 53,
        "pbkdf2:sha256:1000$salt$nothex",
        "scrypt:x:y:z$salt$00",
        "bcrypt_sha256$$2b$04$broken",
        "argon2$argon2id$garbage",
        "md5$salt$0123",  # an unknown scheme: refused
        "plain text password",
    ):
        assert PASSWORDS.verify(stored, "pw") is False, stored


@given(stored=st.text(max_size=120), password=password_text)
@settings(max_examples=300, deadline=None)
def test_any_stored_string_is_a_boolean(stored: str, password: str) -> None:
    assert PASSWORDS.verify(stored, password) in (True, False)
    result = verify_legacy(stored, password.encode())
    assert result is None or (result in (True, False) and is_legacy_hash(stored))


def test_a_plain_argon2id_hash_of_current_parameters_is_kept() -> None:
    stored = PASSWORDS.hash("pw")
    assert not is_legacy_hash(stored) and not PASSWORDS.needs_rehash(stored)
