"""The /auth body parser and the Joi-like validators, on their own."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenguard.errors import AuthError
from tokenguard.http.body import is_email, is_truthy, parse_json_body, validate_login


@pytest.mark.parametrize(
    "address",
    [
        "ada@example.com",
        "Ada.Lovelace+tag@mail.example.co.uk",
        "o'neil@example.org",
        "x_y-z!#$%&*/=?^`{|}~@example.io",
        "jürgen@exämple.de",
        "a@xn--bcher-kva.xn--p1ai",
        "a@123.example.com",
        "a" * 64 + "@example.com",
    ],
)
def test_addresses_joi_accepts(address: str) -> None:
    assert is_email(address)


@pytest.mark.parametrize(
    "address",
    [
        "",
        "notanemail",
        "a@b",
        "x@localhost",
        "a@b.c",
        "a@example.c0m",
        "@example.com",
        "a@",
        "a@@example.com",
        "a@b@example.com",
        ".a@example.com",
        "a.@example.com",
        "a..b@example.com",
        "a b@example.com",
        "a@exa mple.com",
        "a@-example.com",
        "a@example-.com",
        "a@example..com",
        "a@.example.com",
        "a@example.com.",
        "a" * 65 + "@example.com",
        "a@" + "b" * 64 + ".com",
        "a@" + ("b" * 60 + ".") * 5 + "com",
        "a\x00@example.com",
        "a\ud800@example.com",
        '"quoted"@example.com',
        "a@[127.0.0.1]",
        "a@example.com\n",
    ],
)
def test_addresses_joi_refuses(address: str) -> None:
    assert not is_email(address)


@settings(max_examples=300)
@given(st.text(max_size=300))
def test_is_email_never_raises(text: str) -> None:
    assert is_email(text) in (True, False)


@settings(max_examples=300)
@given(
    st.binary(max_size=300),
    st.sampled_from(["application/json", "text/plain", None, "application/json; charset=x"]),
)
def test_parse_never_raises(body: bytes, content_type: str | None) -> None:
    result = parse_json_body(body, content_type)
    if isinstance(result, AuthError):
        assert (result.status, result.code) == (400, "INVALID_PAYLOAD")
    else:
        assert isinstance(result, (dict, list))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=300)
@given(
    st.one_of(
        json_values,
        st.dictionaries(st.sampled_from(["email", "password", "mode", "otp"]), json_values),
    )
)
def test_validate_login_is_total_and_sound(data: Any) -> None:
    result = validate_login(data)
    if isinstance(result, AuthError):
        assert result.status == 400 and result.extensions["reason"].startswith('"')
        return
    assert isinstance(data, dict)
    assert is_email(data["email"]) and isinstance(data["password"], str) and data["password"]
    assert result.mode == data.get("mode", "json")
    assert result.otp == data.get("otp")


@settings(max_examples=200)
@given(json_values)
def test_round_trip_of_objects(value: Any) -> None:
    body = json.dumps({"v": value}).encode()
    assert parse_json_body(body, "application/json") == {"v": value}


def test_javascript_truthiness() -> None:
    assert [is_truthy(v) for v in ([], {}, "x", 1, True)] == [True] * 5
    assert [is_truthy(v) for v in ("", 0, 0.0, False, None)] == [False] * 5
