"""At DEBUG, the ``tokenguard`` logger says why each token was refused — and never the token."""

from __future__ import annotations

import json
import logging
import secrets
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.guard.test_guard import SESSION_TOKEN, make_guard, refusal, resolve
from tests.helpers.tokens import OTHER_SECRET, SECRET, b64, mint, raw_jwt
from tokenguard.config import Settings
from tokenguard.guard.decide import Guard
from tokenguard.jose.tokens import hash_token
from tokenguard.stores.base import User
from tokenguard.stores.memory import MemorySessionStore, MemoryUserStore

EC = ec.generate_private_key(ec.SECP256R1())
PEM = EC.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()


def keyed_guard() -> Guard:
    keys = json.dumps({"active": "ec", "keys": [{"kid": "ec", "pem": PEM}]})
    return Guard(Settings(secret=SECRET, jwt_keys=keys), MemoryUserStore(), MemorySessionStore())


def refused_with(caplog: pytest.LogCaptureFixture, guard: Guard, token: str, where: str = "header") -> str:
    """The one DEBUG line refusing ``token``, after checking that no part of it was logged."""
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="tokenguard"):
        if where == "header":
            outcome = resolve(guard, f"Bearer {token}")
        else:
            outcome = resolve(guard, query=f"access_token={token}")
    refusal(outcome)
    lines = [r.getMessage() for r in caplog.records if r.name == "tokenguard" and r.levelno == logging.DEBUG]
    assert len(lines) == 1, lines
    logged = caplog.text + "".join(lines)
    for part in token.split("."):
        for start in range(0, max(len(part) - 8, 1), 4):
            assert part[start : start + 8] not in logged or len(part) < 8, (part, logged)
    return lines[0]


def test_expired(caplog: pytest.LogCaptureFixture) -> None:
    token = mint(exp=int(time.time()) - 3600, iat=int(time.time()) - 7200)
    assert refused_with(caplog, make_guard(), token) == "refused header token: expired"


def test_bad_signature(caplog: pytest.LogCaptureFixture) -> None:
    assert refused_with(caplog, make_guard(), mint(secret=OTHER_SECRET)) == "refused header token: bad signature"


def test_wrong_issuer_is_told_apart_from_an_unknown_static_token(caplog: pytest.LogCaptureFixture) -> None:
    assert refused_with(caplog, make_guard(), mint(iss="elsewhere")) == "refused header token: wrong issuer"
    static = "no-such-static-token-0123456789abcdef"
    assert refused_with(caplog, make_guard(), static, "query") == "refused query token: unknown static token"


def test_unknown_key(caplog: pytest.LogCaptureFixture) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(
        {"id": "u1", "role": "r", "app_access": True, "admin_access": False, "iss": "directus",
         "exp": int(time.time()) + 600},
        other,
        algorithm="ES256",
        headers={"kid": "retired"},
    )
    assert refused_with(caplog, keyed_guard(), token) == "refused header token: unknown key"


def test_malformed_and_unaccepted_algorithm(caplog: pytest.LogCaptureFixture) -> None:
    payload = {"id": "u1", "role": "r", "app_access": True, "admin_access": False, "iss": "directus"}
    broken_header = b64(b"{not json") + "." + b64(json.dumps(payload).encode()) + ".c2lnbmF0dXJl"
    assert refused_with(caplog, make_guard(), broken_header) == "refused header token: malformed"
    none_alg = raw_jwt({"alg": "none", "typ": "JWT"}, payload, "")
    assert refused_with(caplog, make_guard(), none_alg) == "refused header token: algorithm not accepted"


def test_other_claims(caplog: pytest.LogCaptureFixture) -> None:
    later = int(time.time()) + 3600
    assert refused_with(caplog, make_guard(), mint(nbf=later)) == "refused header token: not yet valid"
    assert refused_with(caplog, make_guard(), mint(aud="someone")) == "refused header token: wrong audience"
    assert refused_with(caplog, make_guard(), mint(role=5)) == "refused header token: invalid claims"


def test_revoked_session(caplog: pytest.LogCaptureFixture) -> None:
    token = mint(id="u1", session="G" * 22 + "s" * 42)  # no such session (any more)
    assert refused_with(caplog, make_guard(), token) == "refused session token: revoked (session gone)"
    live = mint(id="u1", session=SESSION_TOKEN)
    assert resolve(make_guard(), f"Bearer {live}").via == "session"  # type: ignore[union-attr]


def test_user_inactive(caplog: pytest.LogCaptureFixture) -> None:
    guard = make_guard()
    token = secrets.token_urlsafe(32)
    guard.users.create(  # type: ignore[union-attr]
        User(id="u-off", email="off@example.com", role="robot", status="suspended", token_hash=hash_token(token))
    )
    line = refused_with(caplog, guard, token)
    assert line == "refused header token: user inactive (suspended)"


def test_nothing_is_formatted_when_debug_is_off(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    from tokenguard.jose import refusals

    def fail(error: object) -> str:
        raise AssertionError("a reason was worked out with DEBUG off")

    monkeypatch.setattr("tokenguard.guard.decide.reason_of", fail)
    monkeypatch.setattr(Guard, "_log_static_refusal", lambda *a: fail(None), raising=True)
    with caplog.at_level(logging.INFO, logger="tokenguard"):
        refusal(resolve(make_guard(), f"Bearer {mint(secret=OTHER_SECRET)}"))
    assert not caplog.records
    assert refusals.reason_of(refusals.EXPIRED) == "expired"


# --- the static-token reasons, exactly, from an in-process store and from an I/O store ---------


OFF_TOKEN = "qQ7-" + "q" * 36  # a suspended user's static token


class IoUsers(MemoryUserStore):
    """The same store, declared as doing I/O: the guard asks it through a flow."""

    io_bound = True


class LooseUsers(MemoryUserStore):
    """A store whose token index is loose: any hash finds the one active user it holds."""

    def get_by_token_hash(self, token_hash: str) -> User | None:
        return self.get_by_email("loose@example.com")


def static_guard(users: MemoryUserStore) -> Guard:
    users.create(
        User(id="u-off", email="off@example.com", role="robot", status="suspended", token_hash=hash_token(OFF_TOKEN))
    )
    return Guard(Settings(secret=SECRET), users, MemorySessionStore())


@pytest.mark.parametrize("store", [MemoryUserStore, IoUsers], ids=["in-process", "io"])
def test_static_refusals_say_why_from_either_kind_of_store(caplog: pytest.LogCaptureFixture, store: type[MemoryUserStore]) -> None:
    guard = static_guard(store())
    assert refused_with(caplog, guard, OFF_TOKEN) == "refused header token: user inactive (suspended)"
    assert refused_with(caplog, guard, OFF_TOKEN, "query") == "refused query token: user inactive (suspended)"
    assert refused_with(caplog, guard, mint(iss="elsewhere"), "query") == "refused query token: wrong issuer"
    # Three segments and a JSON object without "iss": looks like a JWT of nobody, so no issuer
    # to blame; a payload that is no object at all, the same.
    for payload in ({"sub": "x"}, ["iss"]):
        token = raw_jwt({"alg": "HS256"}, json.dumps(payload), "c2lnbmF0dXJl")
        assert refused_with(caplog, guard, token) == "refused header token: unknown static token"


def test_an_active_user_found_under_another_hash_is_an_unknown_static_token(caplog: pytest.LogCaptureFixture) -> None:
    users = LooseUsers()
    users.create(User(id="u-loose", email="loose@example.com", role="robot", token_hash=hash_token("the-real-token-" + "r" * 30)))
    guard = Guard(Settings(secret=SECRET), users, MemorySessionStore())
    # Active, with a token hash, but not this token's: never "inactive".
    assert refused_with(caplog, guard, "another-token-" + "a" * 30) == "refused header token: unknown static token"
