"""Asymmetric keys: signing with a kid, rotation, key confusion, JWKS, the JWKS route."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from types import GeneratorType
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.helpers.tokens import SECRET, claims
from tokenguard.app import TokenGuard
from tokenguard.config import Settings, token_policy
from tokenguard.errors import AuthError, ConfigError
from tokenguard.flow import run_sync
from tokenguard.guard.decide import Refusal
from tokenguard.http.views import RequestView
from tokenguard.jose.keys import KeyRing, algorithm_for
from tokenguard.jose.tokens import TokenVerifier, issue_access_token
from tokenguard.principal import Principal

PUBLIC = Principal(user=None, role=None, via="public")


def _pem(private: Any) -> str:
    return str(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
    )


def _public_pem(private: Any) -> str:
    return str(
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC = ec.generate_private_key(ec.SECP256R1())
ED = ed25519.Ed25519PrivateKey.generate()
KEYS = {"rsa": RSA, "ec": EC, "ed": ED}
ALGS = {"rsa": "RS256", "ec": "ES256", "ed": "EdDSA"}


def keys_json(active: str | None, *kids: str, public_only: tuple[str, ...] = ()) -> str:
    entries = [
        {"kid": kid, "pem": _public_pem(KEYS[kid]) if kid in public_only else _pem(KEYS[kid])}
        for kid in kids
    ]
    return json.dumps({"active": active, "keys": entries})


def settings_for(active: str | None, *kids: str, **more: Any) -> Settings:
    return Settings(secret=SECRET, jwt_keys=keys_json(active, *kids), **more)


def issue(settings: Settings, **extra: Any) -> str:
    return issue_access_token(
        token_policy(settings),
        user_id="u1",
        role="editor",
        app_access=True,
        admin_access=False,
        ttl_ms=900_000,
        now=time.time(),
        **extra,
    )


def header_of(token: str) -> dict[str, Any]:
    seg = token.split(".")[0]
    return dict(json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4))))


@pytest.mark.parametrize("kid", ["rsa", "ec", "ed"])
def test_active_key_signs_with_its_kid_and_pinned_algorithm(kid: str) -> None:
    settings = settings_for(kid, kid)
    token = issue(settings)
    assert header_of(token) == {"alg": ALGS[kid], "kid": kid, "typ": "JWT"}
    result = TokenVerifier(token_policy(settings)).verify(token, time.time())
    assert isinstance(result, dict) and result["id"] == "u1" and result["role"] == "editor"
    # PyJWT, given only the public key, agrees.
    decoded = jwt.decode(token, KEYS[kid].public_key(), algorithms=[ALGS[kid]], issuer="directus")
    assert decoded["id"] == "u1"


def test_rotation_accepts_old_tokens_until_the_old_key_is_removed() -> None:
    before = settings_for("rsa", "rsa")
    old_token = issue(before)
    # Step 1: the new key is added (accepted everywhere) — step 2: it becomes active.
    during = settings_for("ed", "rsa", "ed")
    new_token = issue(during)
    assert header_of(new_token)["kid"] == "ed"
    verifier = TokenVerifier(token_policy(during))
    for token in (old_token, new_token):
        assert isinstance(verifier.verify(token, time.time()), dict)
    # Processes still on the old ring, once they know the new key, accept both as well.
    assert isinstance(TokenVerifier(token_policy(settings_for("rsa", "rsa", "ed"))).verify(new_token, time.time()), dict)
    # Step 3: the old key is retired; its tokens are refused, the new ones still pass.
    after = settings_for("ed", "ed")
    retired = TokenVerifier(token_policy(after)).verify(old_token, time.time())
    assert isinstance(retired, AuthError) and (retired.status, retired.code) == (403, "INVALID_TOKEN")
    assert isinstance(TokenVerifier(token_policy(after)).verify(new_token, time.time()), dict)


def test_hmac_tokens_pass_until_hmac_is_retired() -> None:
    plain = Settings(secret=SECRET)
    hs_token = issue(plain)
    assert isinstance(TokenVerifier(token_policy(settings_for("ec", "ec"))).verify(hs_token, time.time()), dict)
    closed = TokenVerifier(token_policy(settings_for("ec", "ec", jwt_accept_hmac=False))).verify(hs_token, time.time())
    assert isinstance(closed, AuthError) and closed.code == "INVALID_TOKEN"


def _forge(header: dict[str, Any], key: bytes | str, alg: str = "HS256") -> str:
    payload = claims(id="admin", admin_access=True)
    return jwt.encode(payload, key, algorithm=alg, headers=header)


@pytest.mark.parametrize("kid", ["rsa", "ec", "ed"])
def test_public_key_as_hmac_secret_is_refused(kid: str) -> None:
    # The classic confusion: HS256 "signed" with the published public key.
    settings = settings_for(kid, kid)
    public_pem = _public_pem(KEYS[kid]).encode()
    import hashlib
    import hmac

    header = {"alg": "HS256", "kid": kid, "typ": "JWT"}
    seg = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
    signing_input = f"{seg(header)}.{seg(claims(admin_access=True))}"
    sig = base64.urlsafe_b64encode(
        hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    ).rstrip(b"=").decode()
    result = TokenVerifier(token_policy(settings)).verify(f"{signing_input}.{sig}", time.time())
    assert isinstance(result, AuthError) and result.code == "INVALID_TOKEN"


def test_algorithm_is_pinned_to_the_key_type() -> None:
    settings = settings_for("rsa", "rsa", "ec")
    verifier = TokenVerifier(token_policy(settings))
    # An EC signature presented under the RSA key's kid, and vice versa.
    wrong_kid = _forge({"kid": "rsa"}, EC, "ES256")
    wrong_alg = _forge({"kid": "ec"}, RSA, "RS256")
    # PS256 with the right RSA key: a different algorithm is a different algorithm.
    pss = _forge({"kid": "rsa"}, RSA, "PS256")
    unsigned = jwt.encode(claims(), None, algorithm="none", headers={"kid": "rsa"})
    no_kid = _forge({}, RSA, "RS256")
    for token in (wrong_kid, wrong_alg, pss, unsigned, no_kid):
        result = verifier.verify(token, time.time())
        assert isinstance(result, AuthError) and result.code == "INVALID_TOKEN", token


def test_extra_header_fields_are_refused() -> None:
    settings = settings_for("ec", "ec")
    for extra in ({"jku": "https://evil.example/jwks"}, {"crit": ["exp"]}, {"typ": "at+jwt"}):
        token = _forge({"kid": "ec", **extra}, EC, "ES256")
        result = TokenVerifier(token_policy(settings)).verify(token, time.time())
        assert isinstance(result, AuthError) and result.code == "INVALID_TOKEN"


def test_claims_are_checked_as_for_hmac_tokens() -> None:
    settings = settings_for("ed", "ed")
    verifier = TokenVerifier(token_policy(settings))
    expired = _forge({"kid": "ed"}, ED, "EdDSA")
    payload = claims(exp=int(time.time()) - 60)
    expired = jwt.encode(payload, ED, algorithm="EdDSA", headers={"kid": "ed"})
    result = verifier.verify(expired, time.time())
    assert isinstance(result, AuthError) and result.code == "TOKEN_EXPIRED"
    no_role = jwt.encode({k: v for k, v in claims().items() if k != "role"}, ED, algorithm="EdDSA", headers={"kid": "ed"})
    result = verifier.verify(no_role, time.time())
    assert isinstance(result, AuthError) and result.code == "INVALID_TOKEN"
    # Another issuer's token is not ours at all: a static-token candidate.
    other = jwt.encode(claims(iss="someone-else"), ED, algorithm="EdDSA", headers={"kid": "ed"})
    assert verifier.verify(other, time.time()) is None


_TAMPER = {
    kid: (settings_for(kid, "rsa", "ec", "ed"), issue(settings_for(kid, kid))) for kid in KEYS
}


@hsettings(max_examples=200, deadline=None)
@given(
    position=st.integers(min_value=0, max_value=10_000),
    replacement=st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ "),
    kid=st.sampled_from(["rsa", "ec", "ed"]),
)
def test_any_one_character_change_is_refused(position: int, replacement: str, kid: str) -> None:
    settings, token = _TAMPER[kid]
    index = position % len(token)
    if token[index] == replacement:
        return
    tampered = token[:index] + replacement + token[index + 1 :]
    result = TokenVerifier(token_policy(settings)).verify(tampered, time.time())
    assert not isinstance(result, dict)


@hsettings(max_examples=200, deadline=None)
@given(header=st.dictionaries(st.sampled_from(["alg", "kid", "typ", "jwk", "x5u"]), st.one_of(st.text(max_size=12), st.integers(), st.none(), st.lists(st.text(max_size=3), max_size=2))))
def test_arbitrary_headers_never_pass(header: dict[str, Any]) -> None:
    settings = settings_for("ec", "ec")
    seg = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
    token = f"{seg(header)}.{seg(claims())}.{seg({'sig': 1})}"
    result = TokenVerifier(token_policy(settings)).verify(token, time.time())
    assert isinstance(result, AuthError) and result.code == "INVALID_TOKEN"


def test_jwks_holds_public_parts_only_and_verifies() -> None:
    ring = KeyRing.from_config(keys_json("rsa", "rsa", "ec", "ed"))
    jwks = ring.jwks()
    assert [k["kid"] for k in jwks["keys"]] == ["rsa", "ec", "ed"]
    for key in jwks["keys"]:
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key), key
        assert key["use"] == "sig" and key["alg"] == ALGS[key["kid"]]
    token = issue(settings_for("ec", "ec"))
    public = jwt.PyJWKSet.from_dict(jwks)["ec"]
    assert jwt.decode(token, public, algorithms=["ES256"])["id"] == "u1"


def test_public_only_keys_verify_but_cannot_be_active() -> None:
    ring = KeyRing.from_config(keys_json(None, "rsa", public_only=("rsa",)))
    assert ring.active is None and "rsa" in ring.keys
    with pytest.raises(ConfigError, match="private PEM"):
        KeyRing.from_config(keys_json("rsa", "rsa", public_only=("rsa",)))


def test_keys_file_with_relative_pem_files(tmp_path: Path) -> None:
    (tmp_path / "k1.pem").write_text(_pem(EC))
    config = tmp_path / "keys.json"
    config.write_text(json.dumps({"active": "k1", "keys": [{"kid": "k1", "file": "k1.pem"}]}))
    settings = Settings(secret=SECRET, jwt_keys=str(config))
    token = issue(settings)
    assert header_of(token)["kid"] == "k1"
    assert isinstance(TokenVerifier(token_policy(settings)).verify(token, time.time()), dict)


@pytest.mark.parametrize(
    "config, message",
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"keys": "x"}), "needs"),
        (json.dumps({"active": "a", "keys": [{"kid": "a"}]}), '"pem" or "file"'),
        (json.dumps({"keys": [{"kid": "", "pem": "x"}]}), "kid"),
        (json.dumps({"keys": [{"kid": "a", "pem": "-----BEGIN PUBLIC KEY-----\nxx\n"}]}), "readable"),
        (json.dumps({"keys": [{"kid": "a", "pem": _pem(EC)}, {"kid": "a", "pem": _pem(ED)}]}), "twice"),
        (json.dumps({"keys": [{"kid": "a", "pem": _pem(EC), "alg": "RS256"}]}), "ES256 key"),
        ("/nonexistent/keys.json", "cannot read"),
    ],
)
def test_bad_key_configuration_fails_at_start(config: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings(secret=SECRET, jwt_keys=config)


def test_small_rsa_and_odd_curves_are_refused() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(ConfigError, match="2048"):
        algorithm_for(small)
    with pytest.raises(ConfigError, match="curve"):
        algorithm_for(ec.generate_private_key(ec.SECP256K1()))


def _get(core: TokenGuard, path: str) -> tuple[int, dict[str, str], bytes]:
    request = RequestView("GET", path, "", {}, b"", PUBLIC)
    response = run_sync(core.router.handle(request))
    return response.status, dict(response.headers), response.body


def test_jwks_route_serves_the_public_keys() -> None:
    core = TokenGuard(Settings(secret=SECRET, jwt_keys=keys_json("ec", "ec", "ed")))
    assert core.router.answers("GET", "/auth/jwks.json")
    status, headers, body = _get(core, "/auth/jwks.json")
    assert status == 200 and headers["content-type"].startswith("application/json")
    assert [k["kid"] for k in json.loads(body)["keys"]] == ["ec", "ed"]
    other = TokenGuard(Settings(secret=SECRET, jwt_keys=keys_json("ec", "ec"), jwks_path="/.well-known/jwks.json"))
    assert other.router.answers("GET", "/.well-known/jwks.json")
    assert not other.router.answers("GET", "/auth/jwks.json")
    # Without asymmetric keys there is nothing to publish and the path is the app's.
    assert not TokenGuard(Settings(secret=SECRET)).router.answers("GET", "/auth/jwks.json")


def test_guard_end_to_end_with_a_session_free_asymmetric_token() -> None:
    core = TokenGuard(Settings(secret=SECRET, jwt_keys=keys_json("ed", "ed")))
    token = issue(core.settings)
    outcome = core.guard.authenticate(f"Bearer {token}", "", None)
    if isinstance(outcome, GeneratorType):
        outcome = run_sync(outcome)
    assert isinstance(outcome, Principal) and (outcome.user, outcome.via) == ("u1", "jwt")
    forged = _forge({"kid": "ed"}, ed25519.Ed25519PrivateKey.generate(), "EdDSA")
    refused = core.guard.authenticate(f"Bearer {forged}", "", None)
    assert isinstance(refused, Refusal) and refused.error.code == "INVALID_TOKEN"


def test_scaling_settings_from_the_environment() -> None:
    env = {
        "SECRET": SECRET,
        "TOKENGUARD_JWT_KEYS": keys_json("ec", "ec"),
        "TOKENGUARD_JWT_ACCEPT_HMAC": "false",
        "TOKENGUARD_JWKS_PATH": "/.well-known/jwks.json",
        "TOKENGUARD_JWKS_URL": "https://issuer.example/jwks.json",
        "TOKENGUARD_JWKS_CACHE_TTL": "10m",
        "TOKENGUARD_JWKS_MIN_REFETCH": "30s",
        "TOKENGUARD_SESSION_CACHE_TTL": "2s",
    }
    settings = Settings.from_env(env)
    assert (settings.jwt_accept_hmac, settings.jwks_path, settings.jwks_url) == (
        False, "/.well-known/jwks.json", "https://issuer.example/jwks.json"
    )
    assert (settings.jwks_cache_ms, settings.jwks_min_refetch_ms, settings.session_cache_ttl_ms) == (
        600_000, 30_000, 2_000
    )
    assert "BEGIN PRIVATE KEY" not in repr(settings)


@pytest.mark.parametrize(
    "name, value",
    [
        ("TOKENGUARD_JWKS_URL", "file:///etc/passwd"),
        ("TOKENGUARD_JWKS_PATH", "jwks.json"),
        ("TOKENGUARD_JWKS_PATH", "/jwks/"),
        ("TOKENGUARD_SESSION_CACHE_TTL", "-1"),
        ("TOKENGUARD_JWKS_CACHE_TTL", "0"),
    ],
)
def test_bad_scaling_settings_fail_at_start(name: str, value: str) -> None:
    with pytest.raises(ConfigError):
        Settings.from_env({"SECRET": SECRET, name: value})
