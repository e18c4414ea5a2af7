"""The fast verifier against PyJWT: never accept what PyJWT rejects.

Each case verifies one token with :class:`TokenVerifier` and with ``jwt.decode`` under the
same key, algorithm, issuer, audience, leeway and required claims, at the same instant
(PyJWT's clock is frozen to ours). Tokens are generated (claims and headers of every shape,
raw JSON included; HMAC-signed, and ES256-signed for a key ring) and mutated (characters flipped, inserted, removed; segments swapped).

Properties:

* whenever ours accepts, PyJWT accepts and returns the same claims (the security property);
* a well-formed Directus token is accepted by ours exactly when PyJWT accepts it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from contextlib import contextmanager
from datetime import datetime, tzinfo
from typing import Any
from unittest import mock

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import example, given, settings
from hypothesis import strategies as st
from jwt.algorithms import ECAlgorithm

from tests.helpers.oracle import names_issuer
from tokenguard.config import Settings, token_policy
from tokenguard.errors import AuthError
from tokenguard.guard.extract import Extracted, Extractor
from tokenguard.jose.compact import b64url_decode_strict, no_constants, no_duplicates, strict_json
from tokenguard.jose.tokens import TokenVerifier

SECRET = "tg-diff-9Hq2Wm5Zr8Kp3Xv6Nb1Ty4Lc7Df0Gs-JuEo_Ia" + "-Vx3Bn7Mq1Wz5Kt9Pr2Ly6Hc4Jd8Fs0Ag"
WRONG = "tg-diff-wrong-Pq8Rs7Tu6Vw5Xy4Za3Bc2De1Fg0Hi9Jk"
NOW = 1_800_000_000.0  # whole seconds: no rounding between our clock and PyJWT's
DIGESTS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}

# An ES256 key in a key ring next to the HMAC secret: the verifier's second path.
_EC_KEY = ec.generate_private_key(ec.SECP256R1())
_EC_PEM = _EC_KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
_EC_ALG = ECAlgorithm(ECAlgorithm.SHA256)
KID = "k1"

CONFIGS = [
    Settings(secret=SECRET),
    Settings(secret=SECRET, algorithm="HS384", leeway_ms=0),
    Settings(secret=SECRET, algorithm="HS512", audience="my-app", leeway_ms=2_000),
    Settings(secret=SECRET, allow_tokens_without_exp=True, issuer="other-issuer"),
    Settings(
        secret=SECRET,
        jwt_keys=json.dumps({"active": KID, "keys": [{"kid": KID, "pem": _EC_PEM}]}),
    ),
]
RING = len(CONFIGS) - 1
VERIFIERS = [TokenVerifier(token_policy(s)) for s in CONFIGS]


class _FrozenDatetime(datetime):
    @classmethod
    def now(cls, tz: tzinfo | None = None) -> _FrozenDatetime:  # type: ignore[override]
        return cls.fromtimestamp(NOW, tz)


@contextmanager
def frozen_pyjwt() -> Any:
    with mock.patch.object(jwt.api_jwt, "datetime", _FrozenDatetime):
        yield


def pyjwt_decode(token: str, s: Settings) -> dict[str, Any] | None:
    """PyJWT's verdict under the same settings; anything it raises is a rejection.

    With a key ring, the key is the one the token's ``alg`` calls for (the ES256 public key
    or the HMAC secret), each with its one algorithm.
    """
    required = ["iss"] if s.allow_tokens_without_exp else ["exp", "iss"]
    key: Any = s.secret_bytes
    algorithm = s.algorithm
    try:
        if s.jwt_keys and jwt.get_unverified_header(token).get("alg") == "ES256":
            key, algorithm = _EC_KEY.public_key(), "ES256"
        with frozen_pyjwt():
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                issuer=s.issuer,
                audience=s.audience,
                leeway=s.leeway_ms / 1000,
                options={"require": required},
            )
    except Exception:  # a crash inside PyJWT is a rejection too
        return None
    return claims


def claims_ours(token: str, s: Settings, *, strict: bool) -> bool:
    return names_issuer(token, s.issuer, s.max_token_length, strict=strict)


def signed_and_expired(token: str, s: Settings) -> bool:
    """PyJWT's word that the signature is good and ``exp`` (an int) is past, no other claim
    looked at."""
    key: Any = s.secret_bytes
    algorithm = s.algorithm
    checks = ("verify_exp", "verify_nbf", "verify_iat", "verify_iss", "verify_aud", "verify_sub", "verify_jti")
    try:
        if s.jwt_keys and jwt.get_unverified_header(token).get("alg") == "ES256":
            key, algorithm = _EC_KEY.public_key(), "ES256"
        claims = jwt.decode(token, key, algorithms=[algorithm], options={c: False for c in checks})
    except Exception:
        return False
    exp = claims.get("exp")
    return type(exp) is int and exp <= NOW - s.leeway_ms / 1000


def check_never_looser(token: str, index: int) -> dict[str, Any] | None:
    """Verify ``token`` with ours and with PyJWT, and assert on every verdict of ours:

    * accepted: PyJWT accepts it too, with the same claims;
    * ``None`` (not ours: a static-token candidate): the payload does not strictly name our
      issuer, so a token of ours is never passed on as a static token;
    * refused: with ``INVALID_TOKEN`` (403) or ``TOKEN_EXPIRED`` (401) only, for a payload
      that names our issuer, read loosely; ``TOKEN_EXPIRED`` only when PyJWT finds the
      signature good and ``exp`` past, and PyJWT refuses the token as well.
    """
    s = CONFIGS[index]
    ours = VERIFIERS[index].verify(token, NOW)
    theirs = pyjwt_decode(token, s)
    if isinstance(ours, dict):
        assert theirs is not None, f"accepted a token PyJWT rejects: {token!r}"
        assert ours == theirs
        return ours
    if ours is None:
        assert not claims_ours(token, s, strict=True), f"a token of ours passed on as static: {token!r}"
        return None
    assert (ours.status, ours.code) in ((403, "INVALID_TOKEN"), (401, "TOKEN_EXPIRED")), token
    assert claims_ours(token, s, strict=False), f"{ours.code} for a token not ours: {token!r}"
    if ours.code == "TOKEN_EXPIRED":
        assert theirs is None and signed_and_expired(token, s), token
    return None


# --- building tokens ----------------------------------------------------------------------


class Raw:
    """JSON text put into a payload verbatim (numbers Python would not print, etc.)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Raw({self.text!r})"


def render(value: Any) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, list):
        return "[" + ",".join(render(v) for v in value) + "]"
    return json.dumps(value)


def render_object(pairs: list[tuple[str, Any]]) -> str:
    return "{" + ",".join(f"{json.dumps(k)}:{render(v)}" for k, v in pairs) + "}"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(header: str, payload: str, alg: str, secret: str = SECRET) -> str:
    signing_input = f"{b64(header.encode())}.{b64(payload.encode())}"
    if alg == "ES256" and secret == SECRET:
        return f"{signing_input}.{b64(_EC_ALG.sign(signing_input.encode(), _EC_KEY))}"
    digest = DIGESTS.get(alg, hashlib.sha256)
    sig = hmac.new(secret.encode(), signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64(sig)}"


odd_numbers = st.sampled_from(
    ["-1e400", "1e400", "1e5", "-0", "0.5", "1800000000.5", "1799999990.0", "NaN", "-Infinity"]
).map(Raw)
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.text(max_size=8), odd_numbers
)
json_values = st.one_of(json_scalars, st.lists(json_scalars, max_size=3))
times = st.one_of(
    st.integers(int(NOW) - 20, int(NOW) + 20),
    st.integers(0, 2**40),
    st.floats(NOW - 20, NOW + 20),
    json_values,
)


@st.composite
def payloads(draw: st.DrawFn, index: int) -> list[tuple[str, Any]]:
    """Mostly plausible claims, each one sometimes odd, missing or duplicated."""
    s = CONFIGS[index]
    now = int(NOW)
    # name: (how often present, about n in 10; a plausible value; an odd one)
    claims: dict[str, tuple[int, st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
        "id": (9, st.uuids().map(str), json_values),
        "role": (9, st.one_of(st.none(), st.sampled_from(["editor", ""])), json_values),
        "app_access": (9, st.booleans(), json_values),
        "admin_access": (9, st.booleans(), json_values),
        "iat": (8, st.integers(now - 100, now + 3), times),
        "nbf": (2, st.integers(now - 100, now + 3), times),
        "exp": (9, st.integers(now - 8, now + 900), times),
        "iss": (9, st.just(s.issuer), st.one_of(st.sampled_from(["directus", ""]), json_values)),
        "aud": (
            9 if s.audience else 1,
            st.sampled_from(["my-app", ["my-app"], ["x", "my-app"]]),
            st.one_of(
                st.lists(st.one_of(st.sampled_from(["my-app", "x"]), json_scalars), max_size=3),
                json_values,
            ),
        ),
        "sub": (1, st.text(max_size=4), json_values),
        "jti": (1, st.text(max_size=4), json_values),
        "session": (1, st.just("F" * 64), json_values),
        "extra": (1, json_values, json_values),
    }
    pairs: list[tuple[str, Any]] = []
    for name, (often, plausible, odd) in claims.items():
        if draw(st.integers(0, 19)) < 2 * often + (often == 9):
            pairs.append((name, draw(plausible if draw(st.integers(0, 19)) < 18 else odd)))
    if draw(st.integers(0, 19)) == 0 and pairs:  # a duplicated claim
        name, _ = draw(st.sampled_from(pairs))
        pairs.append((name, draw(claims[name][1])))
    return draw(st.permutations(pairs))


@st.composite
def headers(draw: st.DrawFn, index: int) -> tuple[str, str]:
    own = "ES256" if index == RING and draw(st.booleans()) else CONFIGS[index].algorithm
    alg = draw(st.sampled_from([own, own, own, own, "HS256", "HS384", "none", "RS256", "ES256"]))
    pairs: list[tuple[str, Any]] = [("alg", alg)]
    if index == RING and draw(st.integers(0, 3)):
        pairs.append(("kid", draw(st.sampled_from([KID, KID, "k2", ""]))))
    if draw(st.booleans()):
        pairs.append(("typ", draw(st.sampled_from(["JWT", "JWT", "jwt", "at+jwt"]))))
    if draw(st.integers(0, 3)) == 0:
        pairs.append(("kid", draw(st.one_of(st.text(max_size=4), json_scalars))))
    if draw(st.integers(0, 5)) == 0:
        pairs.append(draw(st.sampled_from([("crit", ["b64"]), ("b64", False), ("x", 1)])))
    if draw(st.integers(0, 9)) == 0:
        pairs.append(("alg", draw(st.sampled_from(["HS256", "none"]))))
    return render_object(draw(st.permutations(pairs))), alg


@st.composite
def generated(draw: st.DrawFn) -> tuple[str, int]:
    index = draw(st.integers(0, len(CONFIGS) - 1))
    header, alg = draw(headers(index))
    payload = render_object(draw(payloads(index)))
    secret = draw(st.sampled_from([SECRET] * 9 + [WRONG]))
    return sign(header, payload, alg, secret), index


def directus_claims(index: int, exp_offset: int, iat_offset: int) -> dict[str, Any]:
    s = CONFIGS[index]
    claims: dict[str, Any] = {
        "id": "8f0c2b1e-4c5d-4e6f-9a0b-1c2d3e4f5a6b",
        "role": "editor",
        "app_access": True,
        "admin_access": False,
        "iat": int(NOW) + iat_offset,
        "exp": int(NOW) + exp_offset,
        "iss": s.issuer,
    }
    if s.audience is not None:
        claims["aud"] = s.audience
    return claims


@st.composite
def well_formed(draw: st.DrawFn) -> tuple[str, int]:
    index = draw(st.integers(0, len(CONFIGS) - 1))
    s = CONFIGS[index]
    leeway = s.leeway_ms // 1000
    claims = directus_claims(
        index,
        draw(st.one_of(st.integers(-leeway - 3, -leeway + 3), st.integers(-(10**6), 10**6))),
        draw(st.one_of(st.integers(leeway - 3, leeway + 3), st.integers(-(10**6), 0))),
    )
    if draw(st.booleans()):
        claims["session"] = "F" * 64
    if draw(st.booleans()):
        claims["nbf"] = int(NOW) + draw(st.integers(leeway - 3, leeway + 3))
    if index == RING and draw(st.booleans()):
        return jwt.encode(claims, _EC_KEY, algorithm="ES256", headers={"kid": KID}), index
    token = jwt.encode(claims, s.secret_bytes, algorithm=s.algorithm)
    return token, index


def mutate(token: str, data: st.DataObject) -> str:
    chars = "AZaz09-_=.+/ %\u00e9\x00"
    kinds = ["flip", "insert", "delete", "truncate"] if token else ["insert"]
    if token.count(".") == 2:
        kinds += ["swap", "pad"]
    kind = data.draw(st.sampled_from(kinds))
    if kind == "swap":
        h, p, s = token.split(".")
        return ".".join(data.draw(st.permutations([h, p, s])))
    if kind == "truncate":
        return token[: data.draw(st.integers(0, len(token)))]
    if kind == "pad":
        h, p, s = token.split(".")
        part = data.draw(st.integers(0, 2))
        segments = [h, p, s]
        segments[part] += data.draw(st.sampled_from(["=", "==", "A", "AA"]))
        return ".".join(segments)
    at = data.draw(st.integers(0, max(len(token) - 1, 0)))
    if kind == "delete":
        return token[:at] + token[at + 1 :]
    ch = data.draw(st.sampled_from(chars))
    if kind == "insert":
        return token[:at] + ch + token[at:]
    return token[:at] + ch + token[at + 1 :]


# --- properties ---------------------------------------------------------------------------


def _with_claims(pairs: list[tuple[str, Any]], index: int = 0, header: str | None = None) -> str:
    alg = CONFIGS[index].algorithm
    return sign(header or render_object([("alg", alg), ("typ", "JWT")]), render_object(pairs), alg)


def _base(index: int = 0, **changes: Any) -> list[tuple[str, Any]]:
    claims = directus_claims(index, 900, -5)
    claims.update(changes)
    return list(claims.items())


# Found by this test: PyJWT refuses iat/nbf of -1e400 (-inf overflows int()), and an "aud"
# list with a non-string in it; the verifier used to accept all three.
@example(case=(_with_claims(_base(iat=Raw("-1e400"))), 0))
@example(case=(_with_claims(_base(nbf=Raw("-1e400"))), 0))
@example(case=(_with_claims(_base(2, aud=["my-app", 1]), 2), 2))
@example(case=(_with_claims(_base(2, aud=["my-app", None]), 2), 2))
@given(case=generated())
@settings(max_examples=300, deadline=None)
def test_generated_tokens_never_looser_than_pyjwt(case: tuple[str, int]) -> None:
    token, index = case
    check_never_looser(token, index)


@given(case=well_formed(), data=st.data())
@settings(max_examples=300, deadline=None)
def test_mutated_tokens_never_looser_than_pyjwt(case: tuple[str, int], data: st.DataObject) -> None:
    token, index = case
    for _ in range(3):
        token = mutate(token, data)
        check_never_looser(token, index)


@given(case=well_formed())
@settings(max_examples=300, deadline=None)
def test_well_formed_tokens_agree_with_pyjwt(case: tuple[str, int]) -> None:
    token, index = case
    ours = check_never_looser(token, index)
    theirs = pyjwt_decode(token, CONFIGS[index])
    assert (ours is not None) == (theirs is not None), (token, theirs)
    # Well formed, so refused for its times alone: TOKEN_EXPIRED exactly when exp is past.
    verdict = VERIFIERS[index].verify(token, NOW)
    expired = isinstance(verdict, AuthError) and verdict.code == "TOKEN_EXPIRED"
    assert expired == signed_and_expired(token, CONFIGS[index]), token


@pytest.mark.parametrize(
    "pairs",
    [
        _base(iat=Raw("-1e400")),
        _base(nbf=Raw("-1e400")),
        _base(iat=Raw("1e400")),
        _base(nbf=Raw("1e400")),
    ],
)
def test_infinite_times_are_refused(pairs: list[tuple[str, Any]]) -> None:
    assert not isinstance(VERIFIERS[0].verify(_with_claims(pairs), NOW), dict)


@pytest.mark.parametrize("aud", [["my-app", 1], ["my-app", None], ["my-app", ["my-app"]]])
def test_audience_lists_hold_only_strings(aud: list[Any]) -> None:
    token = _with_claims(_base(2, aud=aud), 2)
    assert not isinstance(VERIFIERS[2].verify(token, NOW), dict)
    assert isinstance(
        VERIFIERS[2].verify(_with_claims(_base(2, aud=["x", "my-app"]), 2), NOW), dict
    )


# --- the fast helpers are the slow ones, exactly ------------------------------------------


def _reference_b64url_decode_strict(segment: str) -> bytes | None:
    """The re-encoding definition the fast version replaced."""
    if not segment or len(segment) % 4 == 1:
        return None
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        return None
    if base64.urlsafe_b64encode(raw).rstrip(b"=") != segment.encode("ascii", "replace"):
        return None
    return raw


segments = st.one_of(
    st.text(alphabet="ABCDQRSTghijwxyz0189-_", max_size=12),
    st.text(alphabet="AQgw-_+/=. \n\u00e9\x00%", max_size=12),
    st.binary(max_size=12).map(b64),
    st.text(max_size=8),
)


@given(segment=segments)
@settings(max_examples=500)
def test_b64url_decode_strict_matches_reference(segment: str) -> None:
    assert b64url_decode_strict(segment) == _reference_b64url_decode_strict(segment)


def _reference_json(raw: bytes) -> Any:
    return json.loads(raw, object_pairs_hook=no_duplicates, parse_constant=no_constants)


def _outcome(fn: Any, raw: bytes) -> Any:
    try:
        return ("ok", fn(raw))
    except Exception as exc:  # the exception type is what is compared
        return ("error", type(exc))


@given(
    raw=st.one_of(
        st.binary(max_size=16),
        st.sampled_from(
            [b'{"a":1,"a":2}', b"\xef\xbb\xbf{}", b'{"a":NaN}', b"\x00{\x00}", b"[1e400]"]
        ),
        st.recursive(json_scalars.filter(lambda v: not isinstance(v, Raw)), st.lists).map(
            lambda v: json.dumps(v).encode()
        ),
        st.dictionaries(st.text(max_size=4), st.integers() | st.text(max_size=4)).map(
            lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8", "surrogatepass")
        ),
        st.binary(max_size=12).map(lambda b: b'{"' + b),
        st.text(max_size=6).map(lambda t: ('{"' + t).encode("utf-16-le", "surrogatepass")),
    )
)
@settings(max_examples=300)
def test_strict_json_matches_json_loads(raw: bytes) -> None:
    assert _outcome(strict_json, raw) == _outcome(_reference_json, raw)


# --- the extractor's Bearer shortcut never disagrees with the full extraction -------------

_names = ("access_token", "tok")
_extractor = Extractor(_names, "directus_session_token")
header_values = st.one_of(
    st.none(),
    st.text(alphabet="Bearer bEARERxy.-_ \t", max_size=16),
    st.builds(lambda s, t: f"{s} {t}", st.sampled_from(["Bearer", "bearer", "BEARER", "Basic"]),
              st.text(alphabet="ab.-_ %", max_size=8)),
)  # fmt: skip
query_strings = st.one_of(
    st.just(""),
    st.text(alphabet="a=&%+_[]tokenacs", max_size=24),
    st.sampled_from(["access_token=x", "a=1&tok=y", "acc%65ss_token=z", "access_token[]=1", "x=1"]),
)


@given(
    authorization=header_values,
    query=query_strings,
    cookie=st.one_of(st.none(), st.just("directus_session_token=abc")),
    count=st.integers(0, 3),
)
@settings(max_examples=500)
def test_bearer_only_agrees_with_the_extractor(
    authorization: str | None, query: str, cookie: str | None, count: int
) -> None:
    fast = _extractor.bearer_only(authorization, query, count)
    full = _extractor(authorization, query, cookie, authorization_count=count)
    if fast is not None:
        assert isinstance(full, Extracted)
        assert (full.token, full.source) == (fast, "header")
        return
    # No shortcut: only when in doubt (not one header, or a query that could name a token),
    # or when the full extraction finds no header token either.
    doubt = authorization is None or count != 1 or "%" in query or any(n in query for n in _names)
    header_token = isinstance(full, Extracted) and full.source == "header"
    assert doubt or not header_token, (authorization, query, full)
