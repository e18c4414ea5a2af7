"""Directus error bodies → typed exceptions; the realtime auth message and its reply."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenguard.client import (
    AuthFailed,
    DirectusError,
    Forbidden,
    InvalidCredentials,
    InvalidOtp,
    InvalidPayload,
    InvalidToken,
    RefreshFailed,
    RequestsExceeded,
    RouteNotFound,
    ServiceUnavailable,
    TokenExpired,
    UnexpectedResponse,
    UserSuspended,
    check_realtime_auth_reply,
    error_from_response,
    raise_for_error,
    realtime_auth_message,
)
from tokenguard.client._errors import MAX_ERROR_BODY, error_from_body

# Bodies exactly as tokenguard's server and Directus send them.
CASES = [
    (401, b'{"errors":[{"message":"Invalid user credentials.","extensions":{"code":"INVALID_CREDENTIALS"}}]}',
     InvalidCredentials),
    (401, b'{"errors":[{"message":"Token expired.","extensions":{"code":"TOKEN_EXPIRED"}}]}', TokenExpired),
    (403, b'{"errors":[{"message":"Invalid token.","extensions":{"code":"INVALID_TOKEN"}}]}', InvalidToken),
    (401, b'{"errors":[{"message":"Invalid user OTP.","extensions":{"code":"INVALID_OTP"}}]}', InvalidOtp),
    (401, b'{"errors":[{"message":"User suspended.","extensions":{"code":"USER_SUSPENDED"}}]}', UserSuspended),
    (403, b'{"errors":[{"message":"You don\'t have permission to access this.","extensions":{"code":"FORBIDDEN"}}]}',
     Forbidden),
    (404, b'{"errors":[{"message":"Route /x doesn\'t exist.","extensions":{"path":"/x","code":"ROUTE_NOT_FOUND"}}]}',
     RouteNotFound),
    (429, b'{"errors":[{"message":"Too many requests, retry after 1s.","extensions":{"limit":5,"reset":"x",'
          b'"code":"REQUESTS_EXCEEDED"}}]}', RequestsExceeded),
    (503, b'{"errors":[{"message":"Service \\"authentication\\" is unavailable. Rate limiter unreachable.",'
          b'"extensions":{"service":"authentication","reason":"Rate limiter unreachable","code":"SERVICE_UNAVAILABLE"}}]}',
     ServiceUnavailable),
]


@pytest.mark.parametrize(("status", "body", "cls"), CASES)
def test_known_codes_map_to_their_class(status: int, body: bytes, cls: type[DirectusError]) -> None:
    error = error_from_body(status, body)
    parsed = json.loads(body)["errors"][0]
    assert type(error) is cls
    assert error.status == status
    assert error.code == parsed["extensions"]["code"] == cls.code_name
    assert error.message == parsed["message"]
    assert error.extensions == parsed["extensions"]
    assert error.errors == [parsed]
    assert str(error) == f"{error.code} ({status}): {error.message}"


def test_invalid_payload_carries_its_reason() -> None:
    body = json.dumps({"errors": [{"message": 'Invalid payload. "email" is required.',
                                   "extensions": {"reason": '"email" is required', "code": "INVALID_PAYLOAD"}}]})
    error = error_from_response(httpx.Response(400, content=body.encode()))
    assert isinstance(error, InvalidPayload)
    assert error.extensions["reason"] == '"email" is required'


def test_unknown_code_is_a_plain_directus_error() -> None:
    error = error_from_body(418, b'{"errors":[{"message":"Teapot.","extensions":{"code":"I_AM_A_TEAPOT"}}]}')
    assert type(error) is DirectusError and (error.code, error.status, error.message) == ("I_AM_A_TEAPOT", 418, "Teapot.")
    no_code = error_from_body(400, b'{"errors":[{"message":"x"}]}')
    assert type(no_code) is DirectusError and no_code.code == "UNKNOWN"
    server = error_from_body(500, b'{"errors":[{"message":"boom","extensions":{}}]}')
    assert server.code == "INTERNAL_SERVER_ERROR"


@pytest.mark.parametrize(
    "body", [b"", b"<html>Bad gateway</html>", b"[]", b'{"errors":[]}', b'{"errors":"x"}', b'{"errors":[1]}',
             b"\xff", b'{"errors":[{"message":"x","extensions":{"code":"A"}}]}' + b" " * MAX_ERROR_BODY]
)
def test_non_directus_bodies_are_unexpected(body: bytes) -> None:
    error = error_from_body(502, body)
    assert type(error) is UnexpectedResponse
    assert (error.code, error.status) == ("UNEXPECTED_RESPONSE", 502)
    assert "Bad gateway" not in str(error)


def test_raise_for_error() -> None:
    ok = httpx.Response(204)
    assert raise_for_error(ok) is ok
    with pytest.raises(TokenExpired):
        raise_for_error(httpx.Response(401, content=CASES[1][1]))


def test_refresh_failed_wraps_its_cause() -> None:
    cause = error_from_body(*CASES[0][:2])
    error = RefreshFailed.wrap(cause)
    assert isinstance(error, DirectusError) and not isinstance(error, InvalidCredentials)
    assert (error.code, error.status, error.extensions) == ("INVALID_CREDENTIALS", 401, cause.extensions)
    assert error.__cause__ is cause
    assert "refreshed" in error.message


@settings(max_examples=300, deadline=None)
@given(
    status=st.integers(min_value=100, max_value=599),
    body=st.binary(max_size=300)
    | st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
            st.sampled_from(["errors", "message", "extensions", "code", "reason", "x"]) | st.text(max_size=8),
            inner, max_size=5),
        max_leaves=25,
    ).map(lambda v: json.dumps(v).encode()),
)
def test_any_body_gives_a_typed_error(status: int, body: bytes) -> None:
    error = error_from_body(status, body)
    assert isinstance(error, DirectusError)
    assert error.status == status
    assert isinstance(error.code, str) and error.code
    assert isinstance(error.message, str) and len(error.message) <= 1000
    assert isinstance(error.extensions, dict)
    str(error), repr(error)


# -- realtime --------------------------------------------------------------------------------


def test_realtime_messages() -> None:
    assert json.loads(realtime_auth_message(access_token="jwt")) == {"type": "auth", "access_token": "jwt"}
    assert json.loads(realtime_auth_message(refresh_token="r", uid="u1")) == {
        "type": "auth", "refresh_token": "r", "uid": "u1"}
    assert json.loads(realtime_auth_message(email="a@b.co", password="p", uid=3)) == {
        "type": "auth", "email": "a@b.co", "password": "p", "uid": 3}
    assert realtime_auth_message(access_token="é") == '{"type":"auth","access_token":"é"}'


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"access_token": "a", "refresh_token": "r"}, {"email": "a@b.co"}, {"password": "p"},
     {"access_token": ""}, {"access_token": "a", "email": "x", "password": "y"}],
)
def test_realtime_message_needs_exactly_one_credential(kwargs: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        realtime_auth_message(**kwargs)  # type: ignore[arg-type]


def test_realtime_uid_type() -> None:
    with pytest.raises(TypeError):
        realtime_auth_message(access_token="a", uid=True)
    with pytest.raises(TypeError):
        realtime_auth_message(access_token="a", uid=1.5)  # type: ignore[arg-type]


def test_realtime_replies() -> None:
    assert check_realtime_auth_reply('{"type":"auth","status":"ok","uid":"u1"}') == {
        "type": "auth", "status": "ok", "uid": "u1"}
    with pytest.raises(AuthFailed) as failed:
        check_realtime_auth_reply(
            '{"type":"auth","status":"error","error":{"code":"AUTH_FAILED","message":"Authentication handshake failed."}}')
    assert (failed.value.code, failed.value.message, failed.value.status) == (
        "AUTH_FAILED", "Authentication handshake failed.", 0)
    with pytest.raises(TokenExpired):
        check_realtime_auth_reply(
            b'{"type":"auth","status":"error","error":{"code":"TOKEN_EXPIRED","message":"Token expired."}}')
    with pytest.raises(DirectusError) as timeout:
        check_realtime_auth_reply('{"type":"auth","status":"error","error":{"code":"AUTH_TIMEOUT","message":"x"}}')
    assert timeout.value.code == "AUTH_TIMEOUT"
    for other in ('{"type":"pong"}', "nope", "[]"):
        with pytest.raises(ValueError):
            check_realtime_auth_reply(other)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200) | st.dictionaries(st.sampled_from(["type", "status", "error", "uid"]),
                                               st.none() | st.text(max_size=8) | st.dictionaries(
                                                   st.sampled_from(["code", "message"]),
                                                   st.none() | st.integers() | st.text(max_size=8)),
                                               ).map(json.dumps))
def test_any_realtime_reply_is_ok_or_raises_cleanly(text: str) -> None:
    try:
        reply = check_realtime_auth_reply(text)
    except DirectusError as error:
        assert isinstance(error.code, str) and error.code
    except ValueError:
        pass
    else:
        assert reply["status"] == "ok"
