"""The strict verifier: classification, claims and errors as Directus answers them (§2)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest

from tests.helpers.tokens import DROP, LONG_SECRET, OTHER_SECRET, SECRET, b64, claims, mint, raw_jwt
from tokenguard.config import Settings, token_policy
from tokenguard.errors import AuthError
from tokenguard.jose.compact import b64url_decode_strict
from tokenguard.jose.tokens import TokenVerifier, hash_token, issue_access_token

settings = Settings(secret=SECRET, leeway_ms=0)
verifier = TokenVerifier(token_policy(settings))


def code(result: object) -> str:
    if result is None:
        return "STATIC"
    if isinstance(result, AuthError):
        return result.code
    return "OK"


def sign(header: dict, payload: dict, secret: str = SECRET, digest: str = "sha256") -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    sig = hmac.new(secret.encode(), signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64(sig)}"


def test_valid_token_returns_claims() -> None:
    result = verifier.verify(mint(), time.time())
    assert isinstance(result, dict)
    assert result["id"] == claims()["id"] and result["role"] == "editor-role"


def test_expired_is_token_expired() -> None:
    assert code(verifier.verify(mint(exp=int(time.time()) - 10, iat=int(time.time()) - 100), time.time())) == "TOKEN_EXPIRED"


def test_expired_with_bad_signature_is_invalid_token() -> None:
    # The signature is checked before expiry, as jsonwebtoken does.
    token = mint(secret=OTHER_SECRET, exp=int(time.time()) - 10)
    assert code(verifier.verify(token, time.time())) == "INVALID_TOKEN"


def test_wrong_signature_is_invalid_token() -> None:
    assert code(verifier.verify(mint(secret=OTHER_SECRET), time.time())) == "INVALID_TOKEN"


def test_alg_none_is_invalid_token() -> None:
    for alg in ("none", "None", "NONE", "nOnE"):
        for signature in ("", "c2ln", b64(b"x" * 32)):
            token = raw_jwt({"alg": alg, "typ": "JWT"}, claims(), signature)
            assert code(verifier.verify(token, time.time())) == "INVALID_TOKEN", (alg, signature)


def test_other_hmac_algorithm_is_refused_when_pinned() -> None:
    # Directus accepts HS384/HS512 too; we pin the configured one.
    assert code(verifier.verify(mint(LONG_SECRET, algorithm="HS512"), time.time())) == "INVALID_TOKEN"
    assert code(verifier.verify(mint(LONG_SECRET, algorithm="HS384"), time.time())) == "INVALID_TOKEN"
    long_verifier = TokenVerifier(token_policy(Settings(secret=LONG_SECRET)))
    assert code(long_verifier.verify(mint(LONG_SECRET, algorithm="HS512"), time.time())) == "INVALID_TOKEN"


def test_configured_algorithm_is_honoured() -> None:
    v = TokenVerifier(token_policy(Settings(secret=LONG_SECRET, algorithm="HS512")))
    assert code(v.verify(mint(LONG_SECRET, algorithm="HS512"), time.time())) == "OK"
    assert code(v.verify(mint(LONG_SECRET, algorithm="HS256"), time.time())) == "INVALID_TOKEN"


def test_not_yet_valid_and_future_iat() -> None:
    assert code(verifier.verify(mint(nbf=int(time.time()) + 60), time.time())) == "INVALID_TOKEN"
    assert code(verifier.verify(mint(iat=int(time.time()) + 3600), time.time())) == "INVALID_TOKEN"


def test_leeway_applies() -> None:
    v = TokenVerifier(token_policy(Settings(secret=SECRET, leeway_ms=5000)))
    now = time.time()
    assert code(v.verify(mint(exp=int(now) - 3), now)) == "OK"
    assert code(v.verify(mint(exp=int(now) - 30), now)) == "TOKEN_EXPIRED"
    assert code(v.verify(mint(nbf=int(now) + 3), now)) == "OK"


def test_foreign_issuer_is_a_static_token_candidate() -> None:
    # Directus looks such a token up as a static token, which gives 401 INVALID_CREDENTIALS.
    assert code(verifier.verify(mint(iss="someone-else"), time.time())) == "STATIC"
    assert code(verifier.verify(mint(iss=DROP), time.time())) == "STATIC"
    assert code(verifier.verify("not-a-jwt", time.time())) == "STATIC"
    assert code(verifier.verify("a.b.c", time.time())) == "STATIC"
    assert code(verifier.verify(raw_jwt({"alg": "HS256"}, '"just a string"'), time.time())) == "STATIC"


def test_missing_directus_claims_is_invalid_token() -> None:
    for name in ("role", "app_access", "admin_access"):
        assert code(verifier.verify(mint(**{name: DROP}), time.time())) == "INVALID_TOKEN", name
    assert code(verifier.verify(mint(role=None), time.time())) == "OK"
    assert code(verifier.verify(mint(app_access=1, admin_access=0), time.time())) == "OK"
    assert code(verifier.verify(mint(app_access="yes"), time.time())) == "INVALID_TOKEN"
    assert code(verifier.verify(mint(role=7), time.time())) == "INVALID_TOKEN"


def test_missing_exp_refused_by_default() -> None:
    assert code(verifier.verify(mint(exp=DROP), time.time())) == "INVALID_TOKEN"
    lax = TokenVerifier(token_policy(Settings(secret=SECRET, allow_tokens_without_exp=True)))
    assert code(lax.verify(mint(exp=DROP), time.time())) == "OK"


def test_malformed_claim_types() -> None:
    assert code(verifier.verify(mint(exp="9999999999"), time.time())) == "INVALID_TOKEN"
    assert code(verifier.verify(mint(exp=True), time.time())) == "INVALID_TOKEN"
    assert code(verifier.verify(mint(nbf="0"), time.time())) == "INVALID_TOKEN"
    assert code(verifier.verify(mint(id=5), time.time())) == "INVALID_TOKEN"
    assert code(verifier.verify(mint(session=["x"]), time.time())) == "INVALID_TOKEN"


def test_audience() -> None:
    assert code(verifier.verify(mint(aud="api"), time.time())) == "INVALID_TOKEN"
    v = TokenVerifier(token_policy(Settings(secret=SECRET, audience="api")))
    assert code(v.verify(mint(aud="api"), time.time())) == "OK"
    assert code(v.verify(mint(aud=["x", "api"]), time.time())) == "OK"
    assert code(v.verify(mint(aud="web"), time.time())) == "INVALID_TOKEN"
    assert code(v.verify(mint(), time.time())) == "INVALID_TOKEN"


def test_header_strictness() -> None:
    payload = claims()
    assert code(verifier.verify(sign({"alg": "HS256", "typ": "JWT"}, payload), time.time())) == "OK"
    assert code(verifier.verify(sign({"alg": "HS256"}, payload), time.time())) == "OK"
    assert code(verifier.verify(sign({"alg": "HS256", "kid": "k1"}, payload), time.time())) == "OK"
    for header in (
        {"alg": "HS256", "typ": "JWS"},
        {"alg": "HS256", "kid": 1},
        {"alg": "HS256", "b64": False},
        {"alg": "HS256", "crit": ["exp"]},
        {"alg": "HS256", "jku": "http://127.0.0.1/keys"},
        {"typ": "JWT"},
    ):
        assert code(verifier.verify(sign(header, payload), time.time())) == "INVALID_TOKEN", header


def test_duplicate_keys_are_refused() -> None:
    header = b64(b'{"alg":"HS256","typ":"JWT"}')
    body = json.dumps(claims())[:-1] + ', "role": "admin-role"}'
    signing_input = f"{header}.{b64(body.encode())}"
    sig = b64(hmac.new(SECRET.encode(), signing_input.encode(), "sha256").digest())
    assert code(verifier.verify(f"{signing_input}.{sig}", time.time())) == "INVALID_TOKEN"


def test_non_canonical_base64_is_refused() -> None:
    token = mint()
    h, p, s = token.split(".")
    assert code(verifier.verify(f"{h}.{p}.{s}=", time.time())) == "INVALID_TOKEN"
    assert code(verifier.verify(f"{h}=.{p}.{s}", time.time())) == "INVALID_TOKEN"
    padded = base64.urlsafe_b64encode(base64.urlsafe_b64decode(p + "==")).decode()
    if padded != p:
        assert code(verifier.verify(f"{h}.{padded}.{s}", time.time())) == "INVALID_TOKEN"
    assert code(verifier.verify(f"{h}.{p}.{s[:-1]}", time.time())) == "INVALID_TOKEN"
    # Trailing data and nested tokens are not ours either.
    assert code(verifier.verify(token + ".x", time.time())) == "STATIC"
    assert code(verifier.verify(token + token, time.time())) == "STATIC"


def test_b64url_decode_strict() -> None:
    assert b64url_decode_strict("YQ") == b"a"
    assert b64url_decode_strict("YR") is None  # non-zero unused bits
    assert b64url_decode_strict("YQ==") is None
    assert b64url_decode_strict("Y") is None
    assert b64url_decode_strict("Y+Q") is None
    assert b64url_decode_strict("") is None
    assert b64url_decode_strict("ü") is None


def test_oversized_token_is_not_parsed() -> None:
    big = mint(padding="x" * 5000)
    assert code(verifier.verify(big, time.time())) == "STATIC"


def test_issued_tokens_match_directus_shape() -> None:
    token = issue_access_token(
        token_policy(settings), user_id="u1", role="r1", app_access=True, admin_access=False, ttl_ms=900_000, now=1_720_000_000.7
    )
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}
    body = base64.urlsafe_b64decode(token.split(".")[1] + "==")
    # Directus's claims in Directus's order, then ours: iat_ms (the issue time to the
    # millisecond, for a user's revocation), after iat.
    assert body == (
        b'{"id":"u1","role":"r1","app_access":true,"admin_access":false,'
        b'"iat":1720000000,"iat_ms":1720000000700,"exp":1720000900,"iss":"directus"}'
    )
    with_sid = issue_access_token(
        token_policy(settings), user_id="u1", role="r1", app_access=True, admin_access=False,
        ttl_ms=900_000, now=1_720_000_000.7, sid="F" * 22,
    )
    assert b'"admin_access":false,"sid":"FFFFFFFFFFFFFFFFFFFFFF","iat":' in base64.urlsafe_b64decode(
        with_sid.split(".")[1] + "=="
    )
    session = issue_access_token(
        token_policy(settings), user_id="u1", role=None, app_access=False, admin_access=False, ttl_ms=86_400_000,
        now=time.time(), session="s" * 64,
    )
    decoded = jwt.decode(session, SECRET, algorithms=["HS256"], issuer="directus")
    assert decoded["session"] == "s" * 64 and decoded["exp"] - decoded["iat"] == 86_400


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_own_tokens_verify(alg: str) -> None:
    s = Settings(secret=LONG_SECRET, algorithm=alg)
    token = issue_access_token(token_policy(s), user_id="u", role="r", app_access=False, admin_access=True, ttl_ms=60_000, now=time.time())
    assert code(TokenVerifier(token_policy(s)).verify(token, time.time())) == "OK"


def test_hash_token_is_the_sha256_hex_of_the_utf8_bytes() -> None:
    assert hash_token("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert hash_token("é") == hashlib.sha256("é".encode()).hexdigest()
    # A lone surrogate (a str its caller decoded with surrogateescape, say) is hashed as its
    # surrogatepass bytes: a lookup that finds nothing, never an exception on the request path.
    assert hash_token("\ud800") == hashlib.sha256(b"\xed\xa0\x80").hexdigest()


def test_fractional_nbf_and_iat_in_the_past_are_accepted() -> None:
    # NumericDate may be fractional (RFC 7519 §2); PyJWT accepts it, and so do we.
    now = time.time()
    token = mint(iat=now - 10.5, nbf=now - 5.25)
    assert code(verifier.verify(token, now)) == "OK"
    assert code(verifier.verify(mint(nbf=now + 30.5), now)) == "INVALID_TOKEN"


def test_a_null_exp_is_invalid_even_when_exp_is_optional() -> None:
    lenient = TokenVerifier(token_policy(Settings(secret=SECRET, allow_tokens_without_exp=True)))
    now = time.time()
    assert code(lenient.verify(mint(exp=DROP), now)) == "OK"  # no exp: allowed here
    assert code(lenient.verify(mint(exp=None), now)) == "INVALID_TOKEN"  # "exp": null is not "no exp"
    assert code(verifier.verify(mint(exp=DROP), now)) == "INVALID_TOKEN"  # the default requires it


def test_a_stray_character_in_the_payload_is_malformed_wherever_it_sits() -> None:
    # A payload that decodes leniently (as Node's Buffer does: characters outside the alphabet
    # skipped) to our issuer claims to be ours, so it is INVALID_TOKEN, never a static-token
    # candidate; the verdict must not depend on the segment's length (the padding a lenient
    # decoder adds), only on what the alphabet's characters decode to.
    now = time.time()
    header, payload, signature = mint().split(".")
    for junk in ("!", "=", "==", "*", "!!!"):
        for at in (0, 1, len(payload) // 2, len(payload) - 1, len(payload)):
            bad = f"{header}.{payload[:at]}{junk}{payload[at:]}.{signature}"
            assert code(verifier.verify(bad, now)) == "INVALID_TOKEN", (junk, at)
    foreign = mint(iss="elsewhere").split(".")[1]
    assert code(verifier.verify(f"{header}.!{foreign}.{signature}", now)) == "STATIC"


# -- each claim check, exactly (found by mutation testing: scripts/mutation.py) ----------------


def test_nbf_at_now_plus_the_leeway_is_valid_and_a_second_later_is_not() -> None:
    from tokenguard.jose.refusals import NOT_YET_VALID

    v = TokenVerifier(token_policy(Settings(secret=SECRET, leeway_ms=5000)))
    now = 1_800_000_000.0
    exp = int(now) + 600
    assert code(v.verify(mint(nbf=int(now) + 5, iat=int(now), exp=exp), now)) == "OK"
    assert v.verify(mint(nbf=int(now) + 6, iat=int(now), exp=exp), now) is NOT_YET_VALID


@pytest.mark.parametrize("name", ["sub", "jti", "id", "session", "sid"])
@pytest.mark.parametrize("value", [1, None, ["x"], {"a": "b"}])
def test_a_string_claim_of_another_type_is_invalid_claims(name: str, value: object) -> None:
    from tokenguard.jose.refusals import INVALID_CLAIMS

    assert verifier.verify(mint(**{name: value}), time.time()) is INVALID_CLAIMS
    assert code(verifier.verify(mint(**{name: "a-string"}), time.time())) == "OK"


@pytest.mark.parametrize("value", ["1800000000000", 1.8e12, None, True])
def test_iat_ms_of_another_type_than_an_integer_is_invalid_claims(value: object) -> None:
    from tokenguard.jose.refusals import INVALID_CLAIMS

    assert verifier.verify(mint(iat_ms=value), time.time()) is INVALID_CLAIMS
    assert code(verifier.verify(mint(iat_ms=int(time.time() * 1000)), time.time())) == "OK"


def test_a_lone_surrogate_in_utf8_is_read_as_pyjwt_reads_it() -> None:
    # json.loads (PyJWT's parser) decodes bytes with "surrogatepass": a string holding the
    # UTF-8 form of a lone surrogate is a claim like any other, not "no JWT at all".
    from tests.helpers.tokens import claims

    header = b64(b'{"alg":"HS256","typ":"JWT"}')
    payload = b64(json.dumps(claims()).encode()[:-1] + b', "jti": "\xed\xa0\x80"}')
    signature = hmac.new(SECRET.encode(), f"{header}.{payload}".encode(), "sha256").digest()
    token = f"{header}.{payload}.{b64(signature)}"
    result = verifier.verify(token, time.time())
    assert isinstance(result, dict) and result["jti"] == "\ud800"
    assert jwt.decode(token, SECRET, algorithms=["HS256"])["jti"] == "\ud800"


def test_the_verifier_keeps_its_policy() -> None:
    policy = token_policy(settings)
    assert TokenVerifier(policy).policy is policy


def test_a_token_of_exactly_the_maximum_length_is_verified() -> None:
    token = mint()
    exact = TokenVerifier(token_policy(Settings(secret=SECRET, leeway_ms=0, max_token_length=len(token))))
    assert code(exact.verify(token, time.time())) == "OK"
    shorter = TokenVerifier(token_policy(Settings(secret=SECRET, leeway_ms=0, max_token_length=len(token) - 1)))
    assert code(shorter.verify(token, time.time())) == "STATIC"


@pytest.mark.parametrize("alg", ["", "XXXX", "none"])
def test_with_hmac_retired_no_header_is_an_hmac_one(alg: str) -> None:
    from tokenguard.jose.refusals import ALGORITHM_NOT_ACCEPTED

    retired = TokenVerifier(token_policy(Settings(secret=SECRET, leeway_ms=0, jwt_accept_hmac=False)))
    token = sign({"alg": alg, "typ": "JWT"}, claims())
    assert retired.verify(token, time.time()) is ALGORITHM_NOT_ACCEPTED
