"""Token extraction, case by case: each request and the exact answer it gets.

Fixed cases rather than generated ones, one per line of :mod:`tokenguard.guard.extract` that a
mutation run found unguarded (issue 31). Where the behaviour shows at the edge they go
through both middlewares (tests/security/harness.py), so that they hold whatever the request
pipeline between the shell and the extractor looks like.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.helpers.tokens import mint
from tests.security.harness import INVALID_CREDENTIALS, SECRET, Shell
from tokenguard.errors import AuthError
from tokenguard.guard.extract import Extracted, Extractor, parse_cookie

KINDS = ["asgi", "wsgi"]
COOKIE = "directus_session_token"
TWO_METHODS_BODY = (
    b'{"errors":[{"message":"Invalid payload. The request uses more than one method for '
    b'including an access token.","extensions":{"reason":"The request uses more than one '
    b'method for including an access token","code":"INVALID_PAYLOAD"}}]}'
)
# What the middleware answers to clear the session cookie (Directus does it when the refused
# token came from that cookie).
CLEAR_COOKIE = (
    "directus_session_token=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; "
    "SameSite=Lax"
)


# --- a percent-encoded second token ---------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("query", ["access%5Ftoken=x", "a=1&access%5Ftoken=x", "%61ccess_token=x"])
def test_bearer_and_a_percent_encoded_query_token_is_400(shell_of: Callable[..., Shell], kind: str, query: str) -> None:
    # The name only spells access_token once decoded: a scan of the raw query string for the
    # literal name finds nothing, and must not conclude that there is no query token.
    s = shell_of(kind)
    reply = s.request("GET", f"/items?{query}", headers={"authorization": f"Bearer {mint(secret=SECRET)}"})
    assert (reply.status, reply.body) == (400, TWO_METHODS_BODY)
    assert reply.header("set-cookie") is None


@pytest.mark.parametrize("kind", KINDS)
def test_a_memoised_bearer_header_still_meets_the_percent_encoded_query_token(shell_of: Callable[..., Shell], kind: str) -> None:
    # Sent three times alone, the header is verified, cached and then memoised: the shells
    # answer it from the raw header. The percent-encoded query token must still be seen.
    s = shell_of(kind)
    headers = {"authorization": f"Bearer {mint(secret=SECRET)}"}
    for _ in range(3):
        alone = s.request("GET", "/items", headers=headers)
        assert (alone.status, alone.body) == (200, b"app 8f0c2b1e-4c5d-4e6f-9a0b-1c2d3e4f5a6b jwt")
    reply = s.request("GET", "/items?access%5Ftoken=x", headers=headers)
    assert (reply.status, reply.body) == (400, TWO_METHODS_BODY)


def test_query_tokens_decode_a_percent_encoded_name() -> None:
    ex = Extractor(("access_token",), COOKIE)
    assert ex.query_tokens("access%5Ftoken=x") == [("access_token", "x")]
    assert ex.query_tokens("a=1&%61ccess_token=y%2Bz") == [("access_token", "y+z")]
    # No name and no percent sign: nothing to find.
    assert ex.query_tokens("a=1&b=2") == []


def test_query_tokens_replace_bytes_that_are_not_utf8() -> None:
    # As qs does: an undecodable byte becomes U+FFFD; never an exception.
    ex = Extractor(("access_token",), COOKIE)
    assert ex.query_tokens("access_token=a%FFb") == [("access_token", "a\ufffdb")]
    assert ex.query_tokens("access_token%FF=x&access_token=y") == [("access_token", "y")]


# --- what an Extracted holds and shows ------------------------------------------------------


def test_extracted_repr_shows_where_the_token_came_from_never_the_token() -> None:
    found = Extracted("s3cr3t-token-value", "query", "access_token")
    assert repr(found) == "Extracted(source='query', name='access_token', token=<18 chars>)"
    assert "s3cr3t" not in repr(found) and "s3cr3t" not in str(found)
    assert f"{found!r}" == repr(found)


def test_extracted_name_is_the_parameter_header_or_cookie_name() -> None:
    ex = Extractor(("access_token", "jwt"), "sess")
    cases = [
        ((None, "jwt=t1", None), Extracted("t1", "query", "jwt")),
        ((None, "x=1&access_token=t2", None), Extracted("t2", "query", "access_token")),
        ((None, "access%5Ftoken=t3", None), Extracted("t3", "query", "access_token")),
        (("Bearer t4", "", None), Extracted("t4", "header", "Authorization")),
        (("bearer t5", "", "sess=c"), Extracted("t5", "header", "Authorization")),
        ((None, "", "a=1; sess=t6"), Extracted("t6", "cookie", "sess")),
    ]
    for args, expected in cases:
        found = ex(*args)
        assert isinstance(found, Extracted), args
        assert (found.token, found.source, found.name) == (
            expected.token,
            expected.source,
            expected.name,
        ), args


# --- cookie values at the edge of the quote rule -------------------------------------------


def test_cookie_parser_quotes() -> None:
    name = COOKIE
    assert parse_cookie(f'{name}=""', name) == ""  # two quotes: an empty quoted value
    assert parse_cookie(f'{name}="abc', name) == '"abc'  # one leading quote: kept as sent
    assert parse_cookie(f'{name}=abc"', name) == 'abc"'  # one trailing quote: kept as sent
    assert parse_cookie(f'{name}="', name) == '"'  # a lone quote is not a quoted value
    assert parse_cookie(f'{name}="a"', name) == "a"
    assert parse_cookie(f'{name}= "a" ', name) == "a"  # whitespace around is not the value


def test_a_bracketed_token_name_at_any_depth_is_400() -> None:
    # qs would make an array or an object of it: refused whatever the nesting.
    ex = Extractor(("access_token",), COOKIE)
    for query in ("access_token[]=x", "access_token[a][b]=x", "access_token[][]=x"):
        refused = ex(None, query, None)
        assert isinstance(refused, AuthError) and (refused.status, refused.code) == (400, "INVALID_PAYLOAD"), query
    assert ex(None, "other[access_token]=x", None) is None


def test_bearer_only_assumes_one_authorization_header() -> None:
    ex = Extractor(("access_token",), COOKIE)
    assert ex.bearer_only("Bearer abc", "") == "abc"
    assert ex.bearer_only("Bearer abc", "", 2) is None  # two headers: the full path answers 400


def test_a_query_token_keeps_its_equals_signs() -> None:
    extract = Extractor(("access_token",), COOKIE)
    assert extract(None, "a=1&access_token=tok=en==", None) == Extracted("tok=en==", "query", "access_token")


def test_a_query_name_spelled_with_plus_is_decoded() -> None:
    # qs decodes "+" in a name as a space, as in a value (with a "%" elsewhere in the query,
    # so that the fast path, which looks for the raw name or a "%", reads the parameters).
    extract = Extractor(("my token",), COOKIE)
    assert extract(None, "my+token=abc&x=%41", None) == Extracted("abc", "query", "my token")


def test_a_cookie_value_keeps_its_equals_signs() -> None:
    # The name ends at the first "=": a base64 static token's padding is part of the value.
    assert parse_cookie(f"a=1; {COOKIE}=tok=en==; b=2", COOKIE) == "tok=en=="
    assert parse_cookie(f"{COOKIE}x=1; {COOKIE}==", COOKIE) == "="


@pytest.mark.parametrize("kind", KINDS)
def test_an_empty_quoted_session_cookie_is_no_credential(shell_of: Callable[..., Shell], kind: str) -> None:
    reply = shell_of(kind).request("GET", "/items", headers={"cookie": f'{COOKIE}=""'})
    assert (reply.status, reply.body) == (200, b"app None public")
    assert reply.header("set-cookie") is None


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("value", ['"abc', '"', 'abc"'])
def test_a_session_cookie_with_one_quote_is_a_bad_token_and_cleared(shell_of: Callable[..., Shell], kind: str, value: str) -> None:
    reply = shell_of(kind).request("GET", "/items", headers={"cookie": f"{COOKIE}={value}"})
    assert (reply.status, reply.body) == (401, INVALID_CREDENTIALS)
    assert reply.all("set-cookie") == [CLEAR_COOKIE]


def test_extractor_on_edge_cookies() -> None:
    ex = Extractor(("access_token",), COOKIE)
    assert ex(None, "", f'{COOKIE}=""') is None
    found = ex(None, "", f'{COOKIE}="abc')
    assert isinstance(found, Extracted)
    assert (found.token, found.source, found.name) == ('"abc', "cookie", COOKIE)
    refused = ex(None, "access_token=a&access_token=b", f'{COOKIE}="abc')
    assert isinstance(refused, AuthError) and refused.status == 400
