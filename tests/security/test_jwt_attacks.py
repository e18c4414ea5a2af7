"""The JWT attack suite: one test per attack, end to end through both shells.

Every forged token goes in an ``Authorization: Bearer`` header to an app route; the answer
must be exactly Directus's refusal (status, code, body), and never the app's 200 or a 5xx.
A token that claims our issuer is ``403 INVALID_TOKEN``; one that does not is looked up as a
static token and is ``401 INVALID_CREDENTIALS``; a good signature past ``exp`` is ``401
TOKEN_EXPIRED``.

Asymmetric keys (and with them a key ring and ``kid`` lookup) do not exist yet: the verifier
is pinned to one HMAC algorithm and one secret. The key-confusion and ``kid`` tests prove
what that pin gives today: no header can choose the algorithm or the key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tests.security.harness import (
    INVALID_CREDENTIALS,
    INVALID_TOKEN,
    SECRET,
    TOKEN_EXPIRED,
    Reply,
    Shell,
    make_shell,
)

USER = "9b7c5e2a-1f3d-4c6b-8a9e-0d2f4b6c8e1a"

pytestmark = pytest.mark.parametrize("kind", ["asgi", "wsgi"])


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "id": USER,
        "role": "r",
        "app_access": True,
        "admin_access": False,
        "iat": now,
        "exp": now + 900,
        "iss": "directus",
    }
    for key, value in changes.items():
        if value is None:
            base.pop(key, None)
        else:
            base[key] = value
    return base


def sign_raw(header: bytes | str, payload: bytes | str, key: bytes = SECRET.encode(), alg: str = "sha256") -> str:
    """A token with exactly these header/payload bytes, HMAC-signed with ``key``."""
    h = header.encode() if isinstance(header, str) else header
    p = payload.encode() if isinstance(payload, str) else payload
    signing_input = f"{b64(h)}.{b64(p)}"
    sig = hmac.digest(key, signing_input.encode(), alg)
    return f"{signing_input}.{b64(sig)}"


def good(**changes: Any) -> str:
    return jwt.encode(claims(**changes), SECRET, algorithm="HS256")


def send(kind: str, token: str, **settings: Any) -> Reply:
    shell: Shell = make_shell(kind, **settings)
    return shell.request("GET", "/items", headers={"Authorization": f"Bearer {token}"})


def assert_invalid_token(reply: Reply) -> None:
    assert (reply.status, reply.body) == (403, INVALID_TOKEN)


def assert_invalid_credentials(reply: Reply) -> None:
    assert (reply.status, reply.body) == (401, INVALID_CREDENTIALS)


# -- the control: the attacks below differ from this only in the attack ----------------------


def test_control_a_good_token_is_accepted(kind: str) -> None:
    reply = send(kind, good())
    assert (reply.status, reply.body) == (200, f"app {USER} jwt".encode())


# -- alg: none --------------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["none", "None", "NONE", "nOnE", "none ", ""])
@pytest.mark.parametrize("signature", ["", "AAAA"])
def test_alg_none_in_every_spelling(kind: str, spelling: str, signature: str) -> None:
    header = b64(json.dumps({"alg": spelling, "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims(admin_access=True)).encode())
    assert_invalid_token(send(kind, f"{header}.{payload}.{signature}"))


def test_alg_none_signed_with_the_real_secret(kind: str) -> None:
    # Even a correct HMAC does not make "none" acceptable: the algorithm is pinned.
    token = sign_raw(json.dumps({"alg": "none"}), json.dumps(claims()))
    assert_invalid_token(send(kind, token))


def test_alg_missing_from_the_header(kind: str) -> None:
    assert_invalid_token(send(kind, sign_raw('{"typ":"JWT"}', json.dumps(claims()))))


# -- key confusion ----------------------------------------------------------------------------


def _public_pems() -> dict[str, bytes]:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ed_key = ed25519.Ed25519PrivateKey.generate()
    return {
        name: key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        for name, key in (("RS256", rsa_key), ("ES256", ec_key), ("EdDSA", ed_key))
    }


PEMS = _public_pems()


@pytest.mark.parametrize("alg", sorted(PEMS))
def test_key_confusion_hs256_signed_with_a_public_key(kind: str, alg: str) -> None:
    # The classic confusion: the attacker signs HS256 with the (public) verification key.
    token = sign_raw('{"alg":"HS256","typ":"JWT"}', json.dumps(claims(admin_access=True)), PEMS[alg])
    assert_invalid_token(send(kind, token))


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA", "PS256", "HS384", "HS512"])
def test_header_naming_another_algorithm_is_refused(kind: str, alg: str) -> None:
    # Signed with the real secret by HMAC, but the header says something else: refused, so
    # that no header ever picks the verification algorithm.
    token = sign_raw(json.dumps({"alg": alg, "typ": "JWT"}), json.dumps(claims()))
    assert_invalid_token(send(kind, token))


def test_real_rs256_token_is_refused_when_only_hmac_is_configured(kind: str) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(claims(), key, algorithm="RS256")
    assert_invalid_token(send(kind, token))


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "HS256", "jwk": {"kty": "oct", "k": b64(b"attacker-key-0123456789abcdef0123")}},
        {"alg": "HS256", "jku": "https://evil.example/jwks.json"},
        {"alg": "HS256", "x5u": "https://evil.example/cert.pem"},
        {"alg": "HS256", "x5c": ["MIIB"]},
        {"alg": "HS256", "crit": ["exp"], "exp": 1},
        {"alg": "HS256", "b64": False, "crit": ["b64"]},
    ],
    ids=["jwk", "jku", "x5u", "x5c", "crit", "b64"],
)
def test_embedded_or_remote_key_headers_are_refused(kind: str, header: dict[str, Any]) -> None:
    # Signed with the attacker's embedded key, and once more with the real secret: both refused.
    payload = json.dumps(claims())
    assert_invalid_token(send(kind, sign_raw(json.dumps(header), payload, b"attacker-key-0123456789abcdef0123")))
    assert_invalid_token(send(kind, sign_raw(json.dumps(header), payload)))


# -- kid injection ----------------------------------------------------------------------------

KIDS = {
    "path": "../../../../../../dev/null",
    "path-windows": "..\\..\\..\\windows\\win.ini",
    "sql": "x' UNION SELECT 'attacker-key' --",
    "sql-or": "' OR '1'='1",
    "url": "https://evil.example/key",
    "file-url": "file:///etc/passwd",
    "nul": "key\x00.pem",
    "long": "k" * 1000,
}


@pytest.mark.parametrize("name", sorted(KIDS))
def test_injected_kid_never_chooses_the_key(kind: str, name: str) -> None:
    kid = KIDS[name]
    header = json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid})
    payload = json.dumps(claims(admin_access=True))
    # What the injection would make the key: empty (/dev/null), the SQL literal, a fetched key.
    for key in (b"", b"attacker-key", kid.encode("utf-8", "surrogatepass")):
        assert_invalid_token(send(kind, sign_raw(header, payload, key)))


def test_kid_is_ignored_not_obeyed_when_the_signature_is_ours(kind: str) -> None:
    # kid is never used for lookup: a token we signed stays good whatever its kid says.
    token = jwt.encode(claims(), SECRET, algorithm="HS256", headers={"kid": KIDS["sql"]})
    reply = send(kind, token)
    assert (reply.status, reply.body) == (200, f"app {USER} jwt".encode())


@pytest.mark.parametrize("kid", [1, None, ["a"], {"path": "/"}, True])
def test_kid_of_the_wrong_type(kind: str, kid: Any) -> None:
    token = sign_raw(json.dumps({"alg": "HS256", "kid": kid}), json.dumps(claims()))
    assert_invalid_token(send(kind, token))


def test_unknown_kid_is_refused_with_a_forged_signature(kind: str) -> None:
    token = sign_raw(json.dumps({"alg": "HS256", "kid": "2031-rotation"}), json.dumps(claims()), b"guess")
    assert_invalid_token(send(kind, token))


# -- registered claims ------------------------------------------------------------------------


def test_missing_exp(kind: str) -> None:
    assert_invalid_token(send(kind, good(exp=None)))


@pytest.mark.parametrize("exp", ["9999999999", 1.5e10, True, [1], {"$gt": 0}])
def test_exp_of_the_wrong_type(kind: str, exp: Any) -> None:
    assert_invalid_token(send(kind, good(exp=exp)))


def test_expired(kind: str) -> None:
    now = int(time.time())
    reply = send(kind, good(iat=now - 1000, exp=now - 100))
    assert (reply.status, reply.body) == (401, TOKEN_EXPIRED)


def test_far_future_iat(kind: str) -> None:
    assert_invalid_token(send(kind, good(iat=int(time.time()) + 10 * 365 * 86400)))


def test_nbf_in_the_future(kind: str) -> None:
    assert_invalid_token(send(kind, good(nbf=int(time.time()) + 3600)))


def test_wrong_iss_is_not_our_token(kind: str) -> None:
    # Not ours: looked up as a static token, and unknown (Directus's classification).
    assert_invalid_credentials(send(kind, good(iss="evil")))


def test_missing_iss_is_not_our_token(kind: str) -> None:
    assert_invalid_credentials(send(kind, good(iss=None)))


def test_wrong_aud(kind: str) -> None:
    assert_invalid_token(send(kind, good(aud="another-service"), audience="tokenguard-api"))


def test_aud_when_none_is_configured(kind: str) -> None:
    assert_invalid_token(send(kind, good(aud="tokenguard-api")))


def test_missing_aud_when_one_is_configured(kind: str) -> None:
    assert_invalid_token(send(kind, good(), audience="tokenguard-api"))


@pytest.mark.parametrize(
    "name,value", [("admin_access", 2), ("admin_access", "yes"), ("app_access", "true"), ("role", 7), ("id", 42)]
)
def test_claims_of_the_wrong_type(kind: str, name: str, value: Any) -> None:
    # (1 and 0 pass for booleans, as Directus's `admin_access == 1`; nothing else does.)
    assert_invalid_token(send(kind, good(**{name: value})))


# -- malformed JSON ---------------------------------------------------------------------------


def test_duplicate_claims(kind: str) -> None:
    # Parsers disagree on which duplicate wins: a token with two answers is refused.
    payload = json.dumps(claims())[:-1] + ', "admin_access": true}'
    assert_invalid_token(send(kind, sign_raw('{"alg":"HS256","typ":"JWT"}', payload)))


def test_duplicate_issuer(kind: str) -> None:
    payload = json.dumps(claims())[:-1] + ', "iss": "directus"}'
    assert_invalid_token(send(kind, sign_raw('{"alg":"HS256"}', payload)))


def test_duplicate_header_alg(kind: str) -> None:
    assert_invalid_token(send(kind, sign_raw('{"alg":"none","alg":"HS256"}', json.dumps(claims()))))


def test_deeply_nested_payload(kind: str) -> None:
    # 100 000 levels of arrays: a RecursionError inside json must not become a 500.
    payload = '{"iss":"directus","x":' + "[" * 100_000 + "]" * 100_000 + "}"
    reply = send(kind, sign_raw('{"alg":"HS256"}', payload), max_token_length=1_000_000)
    assert reply.status in (401, 403) and reply.code in ("INVALID_TOKEN", "INVALID_CREDENTIALS")


def test_oversized_claims_within_the_limit(kind: str) -> None:
    payload = json.dumps(claims(blob="A" * 200_000))
    token = sign_raw('{"alg":"HS256"}', payload)
    # Over the default 4096-character limit: refused before any parsing.
    assert_invalid_credentials(send(kind, token))


def test_nan_is_not_json(kind: str) -> None:
    # Not JSON, so not one of our tokens (JSON.parse fails in Directus too): a static lookup.
    payload = json.dumps(claims())[:-1] + ', "nbf": NaN}'
    assert_invalid_credentials(send(kind, sign_raw('{"alg":"HS256"}', payload)))


def test_infinite_exp(kind: str) -> None:
    payload = json.dumps(claims(exp=None))[:-1] + ', "exp": 1e400}'
    assert_invalid_token(send(kind, sign_raw('{"alg":"HS256"}', payload)))


def test_payload_not_an_object(kind: str) -> None:
    assert_invalid_credentials(send(kind, sign_raw('{"alg":"HS256"}', '["iss","directus"]')))


# -- encoding ---------------------------------------------------------------------------------


def test_padded_base64(kind: str) -> None:
    header, payload, sig = good().split(".")
    padded = payload + "=" * (-len(payload) % 4 or 4)
    assert_invalid_token(send(kind, f"{header}.{padded}.{sig}"))


def test_standard_alphabet_base64(kind: str) -> None:
    # Find a token whose segments contain - or _, and spell them + and /.
    for i in range(200):
        token = good(jti=f"n{i}" + "\xff" * 30)
        if "-" in token or "_" in token:
            break
    header, payload, sig = token.split(".")
    std = f"{header}.{payload.replace('-', '+').replace('_', '/')}.{sig.replace('-', '+').replace('_', '/')}"
    assert std != token
    assert_invalid_token(send(kind, std))


def test_non_zero_trailing_bits(kind: str) -> None:
    # Two spellings of the same bytes: only the canonical one is accepted.
    header, payload, sig = good().split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    assert len(sig) % 4 == 3  # 32 bytes -> 43 characters, 2 unused bits
    last = alphabet.index(sig[-1])
    twin = sig[:-1] + alphabet[last | 1]
    assert twin != sig and base64.urlsafe_b64decode(twin + "=") == base64.urlsafe_b64decode(sig + "=")
    assert_invalid_token(send(kind, f"{header}.{payload}.{twin}"))


def test_trailing_data_after_the_signature(kind: str) -> None:
    assert_invalid_token(send(kind, good() + "AAAA"))


def test_fourth_segment(kind: str) -> None:
    # A JWE-like or appended segment: not a JWS, so not ours; unknown as a static token.
    assert_invalid_credentials(send(kind, good() + ".AAAA"))


def test_stripped_signature(kind: str) -> None:
    header, payload, _ = good().split(".")
    assert_invalid_token(send(kind, f"{header}.{payload}."))


def test_signature_of_another_token(kind: str) -> None:
    header, payload, _ = good(admin_access=True).split(".")
    sig = good().split(".")[2]
    assert_invalid_token(send(kind, f"{header}.{payload}.{sig}"))


def test_truncated_signature(kind: str) -> None:
    header, payload, sig = good().split(".")
    assert_invalid_token(send(kind, f"{header}.{payload}.{sig[:22]}"))


def test_non_ascii_in_segments(kind: str) -> None:
    header, payload, sig = good().split(".")
    assert_invalid_token(send(kind, f"{header}.{payload}.{sig[:-1]}é"))


# -- size -------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [4097, 65_536, 1_000_000])
def test_token_far_larger_than_the_limit(kind: str, size: int) -> None:
    token = good()
    token = token + "A" * (size - len(token))
    assert_invalid_credentials(send(kind, token))


# -- nesting ----------------------------------------------------------------------------------


def test_nested_jwt_as_the_payload(kind: str) -> None:
    inner = good(admin_access=True)
    token = sign_raw('{"alg":"HS256","cty":"JWT"}', inner, b"attacker-key")
    reply = send(kind, token)
    assert_invalid_credentials(reply)  # the payload is not a JSON object: not ours


def test_nested_jwt_with_cty_signed_by_us(kind: str) -> None:
    # Even with our own signature, a content-type header asking for nested processing is refused.
    payload = json.dumps(claims(token=good(admin_access=True)))
    assert_invalid_token(send(kind, sign_raw('{"alg":"HS256","cty":"JWT"}', payload)))


def test_nested_jwt_in_a_claim_is_just_a_string(kind: str) -> None:
    payload = json.dumps(claims(admin_access=False, inner=good(admin_access=True)))
    reply = send(kind, sign_raw('{"alg":"HS256","typ":"JWT"}', payload))
    assert (reply.status, reply.body) == (200, f"app {USER} jwt".encode())


# -- rotation ---------------------------------------------------------------------------------


def test_token_signed_with_the_previous_secret_after_rotation(kind: str) -> None:
    old_secret = "tg-old-Pq8Wm2Zx5Cv9Bn3Lk7Jh1Gf4Ds6Az0QeRtYu"
    token = jwt.encode(claims(), old_secret, algorithm="HS256")
    # Accepted while the old secret is the SECRET...
    reply = send(kind, token, secret=old_secret)
    assert reply.status == 200
    # ...and refused once SECRET changes: there is no key ring yet, rotation is immediate.
    assert_invalid_token(send(kind, token))


def test_session_token_signed_with_the_previous_secret(kind: str) -> None:
    old_secret = "tg-old-Pq8Wm2Zx5Cv9Bn3Lk7Jh1Gf4Ds6Az0QeRtYu"
    token = jwt.encode(claims(session="s" * 64), old_secret, algorithm="HS256")
    shell = make_shell(kind)
    reply = shell.request("GET", "/items", headers={"Cookie": f"directus_session_token={token}"})
    assert (reply.status, reply.body) == (403, INVALID_TOKEN)
    # The bad cookie is deleted with the refusal, as Directus does.
    assert "Max-Age=0" in (reply.header("set-cookie") or "")


# -- the same attacks through every token source ---------------------------------------------


@pytest.mark.parametrize("where", ["query", "cookie"])
def test_forgeries_through_query_and_cookie(kind: str, where: str) -> None:
    header = b64(b'{"alg":"none"}')
    token = f"{header}.{b64(json.dumps(claims(admin_access=True)).encode())}."
    shell = make_shell(kind)
    if where == "query":
        reply = shell.request("GET", f"/items?access_token={token}")
    else:
        reply = shell.request("GET", "/items", headers={"Cookie": f"directus_session_token={token}"})
    assert_invalid_token(reply)


def test_attacks_never_reach_the_app_with_hs512_configured(kind: str) -> None:
    # A longer pinned algorithm: an HS256 token signed with the same secret is refused.
    secret = "tg-512-" + "Hq3Wz8Xc1Vb6Nm4Lk9Jh2Gf7Ds5Az0Pe" * 3
    token = jwt.encode(claims(), secret, algorithm="HS256")
    assert_invalid_token(send(kind, token, secret=secret, algorithm="HS512"))
    token512 = jwt.encode(claims(), secret, algorithm="HS512")
    assert send(kind, token512, secret=secret, algorithm="HS512").status == 200


def test_header_hash_differs_from_the_signature_hash(kind: str) -> None:
    # HS256 header but a SHA-512 HMAC (a 64-byte signature): refused on length alone.
    token = sign_raw('{"alg":"HS256"}', json.dumps(claims()), alg="sha512")
    assert_invalid_token(send(kind, token))


def test_sha256_of_secret_is_not_the_key(kind: str) -> None:
    token = sign_raw('{"alg":"HS256"}', json.dumps(claims()), hashlib.sha256(SECRET.encode()).digest())
    assert_invalid_token(send(kind, token))


def test_refresh_tokens_survive_a_secret_rotation(kind: str) -> None:
    # What rotation costs users: access tokens die at once; a refresh token (opaque, looked up
    # by hash) still gets a new access token, signed with the new secret.
    from tests.helpers.auth import EMAIL, PASSWORD, make_user
    from tests.security.harness import Shell, make_core
    from tokenguard.stores.memory import MemorySessionStore, MemoryUserStore

    users, sessions = MemoryUserStore(), MemorySessionStore()
    users.create(make_user())
    old_secret = "tg-old-Pq8Wm2Zx5Cv9Bn3Lk7Jh1Gf4Ds6Az0QeRtYu"
    before = Shell(kind, make_core(kind, users=users, sessions=sessions, secret=old_secret))
    data = before.request("POST", "/auth/login", json_body={"email": EMAIL, "password": PASSWORD}).json()["data"]
    after = Shell(kind, make_core(kind, users=users, sessions=sessions))
    reply = after.request("GET", "/items", headers={"Authorization": f"Bearer {data['access_token']}"})
    assert_invalid_token(reply)
    reply = after.request("POST", "/auth/refresh", json_body={"refresh_token": data["refresh_token"]})
    assert reply.status == 200
    fresh = reply.json()["data"]["access_token"]
    assert after.request("GET", "/items", headers={"Authorization": f"Bearer {fresh}"}).status == 200


# -- with asymmetric keys configured (TOKENGUARD_JWT_KEYS) -------------------------------------


def _private_pem(key: Any) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


RING_KEYS = {
    "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "ec": ec.generate_private_key(ec.SECP256R1()),
    "ed": ed25519.Ed25519PrivateKey.generate(),
}
RING_ALGS = {"rsa": "RS256", "ec": "ES256", "ed": "EdDSA"}
ATTACKER = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def ring_send(kind: str, token: str, kids: tuple[str, ...] = ("rsa", "ec", "ed")) -> Reply:
    config = json.dumps({"active": kids[0], "keys": [{"kid": k, "pem": _private_pem(RING_KEYS[k])} for k in kids]})
    return send(kind, token, jwt_keys=config)


def ring_token(kid: str, key: Any = None, alg: str | None = None, **changes: Any) -> str:
    return jwt.encode(claims(**changes), key or RING_KEYS[kid], algorithm=alg or RING_ALGS[kid], headers={"kid": kid})


@pytest.mark.parametrize("kid", sorted(RING_KEYS))
def test_ring_control_each_key_verifies(kind: str, kid: str) -> None:
    reply = ring_send(kind, ring_token(kid))
    assert (reply.status, reply.body) == (200, f"app {USER} jwt".encode())


@pytest.mark.parametrize("kid", sorted(RING_KEYS))
def test_ring_key_confusion_hs256_signed_with_the_configured_public_key(kind: str, kid: str) -> None:
    public = RING_KEYS[kid].public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for header in ({"alg": "HS256", "kid": kid}, {"alg": "HS256"}, {"alg": "HS256", "typ": "JWT", "kid": kid}):
        assert_invalid_token(ring_send(kind, sign_raw(json.dumps(header), json.dumps(claims(admin_access=True)), public)))


def test_ring_algorithm_must_match_the_key(kind: str) -> None:
    # An EC signature presented under the RSA key's kid, and RS256 claimed for the EC key.
    assert_invalid_token(ring_send(kind, ring_token("rsa", RING_KEYS["ec"], "ES256")))
    assert_invalid_token(ring_send(kind, ring_token("ec", RING_KEYS["rsa"], "RS256")))
    assert_invalid_token(ring_send(kind, ring_token("rsa", RING_KEYS["rsa"], "PS256")))


@pytest.mark.parametrize("name", sorted(KIDS))
def test_ring_injected_kid_is_refused(kind: str, name: str) -> None:
    token = jwt.encode(claims(admin_access=True), ATTACKER, algorithm="RS256", headers={"kid": KIDS[name]})
    assert_invalid_token(ring_send(kind, token))


def test_ring_known_kid_foreign_key(kind: str) -> None:
    assert_invalid_token(ring_send(kind, ring_token("rsa", ATTACKER, admin_access=True)))


def test_ring_alg_none_with_a_kid(kind: str) -> None:
    header = b64(json.dumps({"alg": "none", "kid": "rsa"}).encode())
    assert_invalid_token(ring_send(kind, f"{header}.{b64(json.dumps(claims()).encode())}."))


def test_ring_key_removed_after_rotation(kind: str) -> None:
    token = ring_token("ec")
    assert ring_send(kind, token, ("rsa", "ec")).status == 200
    assert_invalid_token(ring_send(kind, token, ("rsa",)))


def test_ring_hmac_tokens_still_verify_with_the_secret(kind: str) -> None:
    # The HMAC path and the key ring do not mix: an HS256 token is checked with SECRET only.
    reply = ring_send(kind, good())
    assert reply.status == 200
    assert_invalid_token(ring_send(kind, jwt.encode(claims(), "tg-not-the-secret-0123456789abcdefXYZ", algorithm="HS256")))
