"""Token extraction: Directus's sources, precedence and edge cases (spec §1, observed)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tokenguard.errors import AuthError
from tokenguard.guard.extract import Extracted, Extractor, parse_cookie

ex = Extractor(("access_token",), "directus_session_token")
TWO_METHODS = (
    "Invalid payload. The request uses more than one method for including an access token."
)


def token_of(result: object) -> tuple[str, str] | None:
    assert not isinstance(result, AuthError), result
    if result is None:
        return None
    assert isinstance(result, Extracted)
    return result.token, result.source


def test_nothing_is_public() -> None:
    assert ex(None, "", None) is None


def test_query_token() -> None:
    assert token_of(ex(None, "access_token=test", None)) == ("test", "query")


def test_bearer_header_any_case() -> None:
    for scheme in ("Bearer", "bearer", "BEARER", "bEaReR"):
        assert token_of(ex(f"{scheme} test", "", None)) == ("test", "header")


def test_malformed_headers_are_ignored() -> None:
    for value in ("bearer test what another one", "Bearer", "Bearer  abc", "Token abc", "Basic dXNlcjpwYXNz", ""):
        assert ex(value, "", None) is None, value


def test_empty_bearer_is_an_empty_token_not_public() -> None:
    # Observed on Directus 11.17: "Bearer " answers 401, and the cookie is not consulted.
    assert token_of(ex("Bearer ", "", "directus_session_token=abc")) == ("", "header")


def test_query_and_header_is_400() -> None:
    result = ex("Bearer b", "access_token=a", None)
    assert isinstance(result, AuthError)
    assert (result.status, result.code, result.message) == (400, "INVALID_PAYLOAD", TWO_METHODS)
    assert result.body == (
        b'{"errors":[{"message":"Invalid payload. The request uses more than one method for '
        b'including an access token.","extensions":{"reason":"The request uses more than one '
        b'method for including an access token","code":"INVALID_PAYLOAD"}}]}'
    )


def test_non_bearer_header_with_query_uses_query() -> None:
    assert token_of(ex("Basic xyz", "access_token=a", None)) == ("a", "query")


def test_cookie_is_lowest_priority_and_never_conflicts() -> None:
    cookie = "directus_session_token=c"
    assert token_of(ex(None, "", cookie)) == ("c", "cookie")
    assert token_of(ex("Bearer h", "", cookie)) == ("h", "header")
    assert token_of(ex(None, "access_token=q", cookie)) == ("q", "query")


def test_empty_cookie_is_absent() -> None:
    assert ex(None, "", "directus_session_token=") is None
    assert ex(None, "", "other=1; directus_session_token=") is None


def test_empty_query_value_is_a_token() -> None:
    # Observed: an empty ?access_token= answers 401 INVALID_CREDENTIALS, not public.
    assert token_of(ex(None, "access_token=", None)) == ("", "query")


def test_repeated_query_parameter_is_400() -> None:
    result = ex(None, "access_token=a&access_token=b", None)
    assert isinstance(result, AuthError) and result.status == 400 and result.code == "INVALID_PAYLOAD"


def test_bracketed_parameter_is_400() -> None:
    for qs in ("access_token[]=a", "access_token[x]=a", "access_token%5B%5D=a"):
        result = ex(None, qs, None)
        assert isinstance(result, AuthError) and result.status == 400, qs


def test_percent_encoded_name_and_value() -> None:
    assert token_of(ex(None, "a=1&access%5Ftoken=x%2By+z", None)) == ("x+y z", "query")


def test_other_parameters_are_not_tokens() -> None:
    assert ex(None, "access_tokens=a&xaccess_token=b&token=c", None) is None


def test_configured_names() -> None:
    jwt_ex = Extractor(("access_token", "jwt"), "sess")
    assert token_of(jwt_ex(None, "jwt=abc", None)) == ("abc", "query")
    both = jwt_ex(None, "jwt=a&access_token=b", None)
    assert isinstance(both, AuthError) and both.status == 400
    assert token_of(jwt_ex(None, "", "sess=s")) == ("s", "cookie")


def test_two_authorization_headers_is_400() -> None:
    result = ex("Bearer a", "", None, authorization_count=2)
    assert isinstance(result, AuthError) and result.status == 400


def test_cookie_parsing_like_cookie_parser() -> None:
    assert parse_cookie('a=1; directus_session_token="quoted"', "directus_session_token") == "quoted"
    assert parse_cookie("directus_session_token=first; directus_session_token=second", "directus_session_token") == "first"
    assert parse_cookie("directus_session_token=a%20b", "directus_session_token") == "a b"
    assert parse_cookie("directus_session_token=%E0%A4%A", "directus_session_token") == "%E0%A4%A"
    assert parse_cookie("xdirectus_session_token=1", "directus_session_token") is None


@given(st.text(max_size=200), st.text(max_size=200), st.text(max_size=200))
def test_never_raises(authorization: str, query: str, cookie: str) -> None:
    result = ex(authorization, query, cookie)
    assert result is None or isinstance(result, (Extracted, AuthError))
    if isinstance(result, AuthError):
        assert result.status == 400


@given(st.text(alphabet=st.characters(blacklist_characters="&=%+#", blacklist_categories=("Cs",)), min_size=1, max_size=100))
def test_query_roundtrip(value: str) -> None:
    from urllib.parse import quote_plus

    assert token_of(ex(None, "x=1&access_token=" + quote_plus(value), None)) == (value, "query")
