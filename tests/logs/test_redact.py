"""Redaction: no form of a token survives, and nothing else in a URL, header or cookie moves."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable
from urllib.parse import parse_qsl, quote, quote_plus

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from tests.helpers.tokens import SECRET
from tokenguard.config import Settings
from tokenguard.guard.extract import Extractor
from tokenguard.logs.redact import (
    DEFAULT_SECRET_NAMES,
    PLACEHOLDER,
    Redactor,
    default_redactor,
    redact_cookie,
    redact_headers,
    redact_query,
    redact_text,
    redact_url,
    remove_query_params,
)

R = Redactor.from_settings(Settings(secret=SECRET, query_params=("access_token", "jwt")))
# Every redacted name (the default secret names too): "other" keys and cookies avoid them.
NAMES = (*DEFAULT_SECRET_NAMES, "directus_session_token", "directus_refresh_token")
PARAM_NAMES = ("access_token", "jwt", "refresh_token")

# --- strategies ----------------------------------------------------------------------------

B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


jwt_like = st.tuples(
    st.binary(min_size=12, max_size=40), st.binary(min_size=12, max_size=60), st.binary(min_size=32, max_size=32)
).map(lambda parts: ".".join(_b64(p) for p in parts))
refresh_like = st.text(alphabet=B64URL, min_size=64, max_size=64)
# Static tokens are whatever an admin typed: any printable text, sent percent-encoded.
static_like = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=16, max_size=48)
tokens = st.one_of(jwt_like, refresh_like, static_like)

other_keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789.-", min_size=1, max_size=10).filter(
    lambda k: k not in NAMES
)
other_values = st.text(max_size=20).map(lambda v: quote_plus(v, safe="/:,"))
other_params = st.lists(st.tuples(other_keys, st.booleans(), other_values), max_size=5)
paths = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789/-_.~", max_size=20).map(lambda p: "/" + p)


def _hex_lower(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), text)


@st.composite
def spelled_names(draw: st.DrawFn) -> str:
    """A token parameter name as clients really write it."""
    name = draw(st.sampled_from(PARAM_NAMES))
    form = draw(st.sampled_from(["raw", "upper", "mixed", "pct-first", "pct-all", "pct-lower", "bracket"]))
    if form == "upper":
        return name.upper()
    if form == "mixed":
        return "".join(c.upper() if i % 2 else c for i, c in enumerate(name))
    if form == "pct-first":
        return f"%{ord(name[0]):02X}{name[1:]}"
    if form == "pct-all":
        return "".join(f"%{ord(c):02X}" for c in name)
    if form == "pct-lower":
        return _hex_lower("".join(f"%{ord(c):02X}" for c in name))
    if form == "bracket":
        return name + draw(st.sampled_from(["[]", "[0]", "%5B%5D"]))
    return name


def encoded_forms(token: str) -> list[str]:
    """Every way a token's bytes could show up: raw, encoded, and its base64 pieces."""
    forms = {token, quote(token, safe=""), quote_plus(token), _hex_lower(quote(token, safe=""))}
    forms.update(piece for piece in token.split(".") if len(piece) >= 8)
    return [f for f in forms if len(f) >= 8]


def assert_gone(token: str, text: str) -> None:
    for form in encoded_forms(token):
        assert form not in text, "a form of the token survived redaction"


def _spell_value(token: str, how: str) -> str:
    if how == "raw" and all(c in B64URL + "." for c in token):
        return token
    if how == "plus":
        return quote_plus(token)
    return quote(token, safe="") if how == "pct" else _hex_lower(quote(token, safe=""))


# --- URLs and query strings -------------------------------------------------------------------


@settings(max_examples=300)
@given(
    path=paths,
    before=other_params,
    after=other_params,
    name=spelled_names(),
    token=tokens,
    how=st.sampled_from(["raw", "pct", "pct-lower", "plus"]),
    fragment=st.one_of(st.none(), st.text(alphabet="abcdefghij=&/", max_size=10)),
)
def test_url_token_never_survives_and_the_rest_is_intact(
    path: str,
    before: list[tuple[str, bool, str]],
    after: list[tuple[str, bool, str]],
    name: str,
    token: str,
    how: str,
    fragment: str | None,
) -> None:
    def part(key: str, has_eq: bool, value: str) -> str:
        return f"{key}={value}" if has_eq else key

    others = [part(*p) for p in before], [part(*p) for p in after]
    rest = "&".join(others[0] + others[1]) + path + (fragment or "")
    assume(not any(f in rest for f in encoded_forms(token)))
    value = _spell_value(token, how)
    query = "&".join([*others[0], f"{name}={value}", *others[1]])
    expected_query = "&".join([*others[0], f"{name}={PLACEHOLDER}", *others[1]])
    tail = "" if fragment is None else "#" + fragment
    url = f"{path}?{query}{tail}"
    out = R.url(url)
    assert_gone(token, out)
    assert out == f"{path}?{expected_query}{tail}"
    assert R.query(query) == expected_query
    absolute = "https://example.test:8443" + url
    assert R.url(absolute) == "https://example.test:8443" + out
    # The same URL anywhere in a log line or a repr.
    for line in (
        f'127.0.0.1:51234 - "GET {url} HTTP/1.1" 401',
        f"{{'path': '{path}', 'query_string': b'{query}', 'raw': '{url}'}}",
        f'{{"url": "{url}", "status": 500}}',
        f"httpx.HTTPStatusError: Client error '401 Unauthorized' for url 'http://h{url}'",
    ):
        assert_gone(token, R.text(line))


@settings(max_examples=200)
@given(token=tokens, before=other_params, after=other_params)
def test_repeated_and_empty_parameters(
    token: str, before: list[tuple[str, bool, str]], after: list[tuple[str, bool, str]]
) -> None:
    value = quote(token, safe="")
    query = f"access_token={value}&access_token=&jwt={value}&access_token&x=1&ACCESS_TOKEN={value}"
    out = R.query(query)
    assert_gone(token, out)
    assert out == (
        f"access_token={PLACEHOLDER}&access_token={PLACEHOLDER}&jwt={PLACEHOLDER}"
        f"&access_token&x=1&ACCESS_TOKEN={PLACEHOLDER}"
    )


@settings(max_examples=200)
@given(token=st.one_of(jwt_like, refresh_like))
def test_semicolon_separators(token: str) -> None:
    # Servers that split on ";" see a token after one; servers that do not read
    # "access_token=<t>;b=2" as one value, so all of it goes.
    assert R.query(f"a=1;access_token={token};b=2&c=3") == f"a=1;access_token={PLACEHOLDER};b=2&c=3"
    assert R.query(f"access_token={token};b=2&c=3") == f"access_token={PLACEHOLDER}&c=3"
    assert_gone(token, R.text(f"GET /x?a=1;jwt={token};b=2 HTTP/1.1"))


@settings(max_examples=200)
@given(token=tokens, fragment_first=st.booleans())
def test_fragments_and_nested_urls(token: str, fragment_first: bool) -> None:
    enc = quote(token, safe="")
    # Implicit-flow style fragments.
    assert R.url(f"/cb#access_token={enc}&state=xyz") == f"/cb#access_token={PLACEHOLDER}&state=xyz"
    # A token inside another parameter's encoded value (a "next" URL, a Referer).
    nested = quote(f"/after?x=1&access_token={enc}&y=2", safe="")
    out = R.url(f"/login?next={nested}&z=1")
    assert_gone(token, out)
    assert out == "/login?next=" + quote("/after?x=1&access_token=", safe="") + PLACEHOLDER + "%26y%3D2&z=1"


@settings(max_examples=200)
@given(
    other=st.binary(max_size=12).filter(lambda b: b"&" not in b and b"=" not in b and b"#" not in b and b"%" not in b),
    token=st.binary(min_size=16, max_size=32).filter(lambda b: not ({38, 35, 61, 32} & set(b))),
)
def test_bytes_that_are_not_utf8(other: bytes, token: bytes) -> None:
    url = b"/p\xff?q=" + other + b"&access_token=" + token + b"&z=\xfe"
    out = R.url(url)
    assert isinstance(out, bytes)
    assert out == b"/p\xff?q=" + other + b"&access_token=" + PLACEHOLDER.encode() + b"&z=\xfe"
    # Percent-encoded invalid UTF-8 in the value, and in a name that is not a token name.
    enc = quote(token, safe="")
    assert R.query(f"%FF%FEx=1&access_token={enc}") == f"%FF%FEx=1&access_token={PLACEHOLDER}"


def test_fast_path_returns_the_same_object() -> None:
    for text in ("", "/plain/path?x=1&y=2", "GET /health HTTP/1.1"):
        assert R.url(text) is text
        assert R.query(text) is text
        assert R.text(text) is text
    raw = b"/x?y=1"
    assert R.url(raw) is raw


def test_module_functions_use_directus_defaults() -> None:
    r = default_redactor()
    assert r.names == {*DEFAULT_SECRET_NAMES, "directus_session_token", "directus_refresh_token"}
    assert redact_url("/x?access_token=abc&jwt=def&q=1") == f"/x?access_token={PLACEHOLDER}&jwt={PLACEHOLDER}&q=1"
    assert redact_query("refresh_token=abc") == f"refresh_token={PLACEHOLDER}"
    assert redact_cookie("directus_session_token=abc") == f"directus_session_token={PLACEHOLDER}"
    assert redact_headers({"Authorization": "Bearer abc"}) == {"Authorization": f"Bearer {PLACEHOLDER}"}
    assert redact_text('{"refresh_token":"abc"}') == '{"refresh_token":"' + PLACEHOLDER + '"}'


def test_custom_names_from_settings() -> None:
    r = Redactor.from_settings(
        Settings(
            secret=SECRET,
            query_params=("token", "api_key"),
            session_cookie_name="sid",
            refresh_cookie_name="rt",
        )
    )
    assert r.names == {*DEFAULT_SECRET_NAMES, "sid", "rt"}
    # The default names are redacted whatever TOKENGUARD_QUERY_PARAMS says.
    assert r.url("/x?token=a&api_key=b&access_token=c&q=d") == (
        f"/x?token={PLACEHOLDER}&api_key={PLACEHOLDER}&access_token={PLACEHOLDER}&q=d"
    )
    assert r.cookie("sid=a; rt=b; directus_session_token=c") == f"sid={PLACEHOLDER}; rt={PLACEHOLDER}; directus_session_token=c"


# --- cookies and headers ----------------------------------------------------------------------

cookie_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=12).filter(
    lambda n: n.lower() not in NAMES
)
cookie_values = st.text(alphabet=B64URL + "!#$%&'()*+-./:<>?@[]^`{|}~", max_size=20)
cookie_lists = st.lists(st.tuples(cookie_names, cookie_values), max_size=4)


@settings(max_examples=300)
@given(
    before=cookie_lists,
    after=cookie_lists,
    name=st.sampled_from(["directus_session_token", "directus_refresh_token", "Directus_Session_Token"]),
    token=st.one_of(jwt_like, refresh_like),
    quoted=st.booleans(),
    sep=st.sampled_from(["; ", ";"]),
)
def test_cookie_token_never_survives_and_other_cookies_are_intact(
    before: list[tuple[str, str]],
    after: list[tuple[str, str]],
    name: str,
    token: str,
    quoted: bool,
    sep: str,
) -> None:
    assume(not any(token in v for _, v in before + after))
    value = f'"{token}"' if quoted else token
    parts = [f"{k}={v}" for k, v in before] + [f"{name}={value}"] + [f"{k}={v}" for k, v in after]
    expected = [f"{k}={v}" for k, v in before] + [f"{name}={PLACEHOLDER}"] + [f"{k}={v}" for k, v in after]
    out = R.cookie(sep.join(parts))
    assert_gone(token, out)
    assert out == sep.join(expected)
    set_cookie = f"{name}={token}; Max-Age=604800; Path=/; HttpOnly; SameSite=Lax"
    assert R.header("Set-Cookie", set_cookie) == f"{name}={PLACEHOLDER}; Max-Age=604800; Path=/; HttpOnly; SameSite=Lax"


header_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12).filter(
    lambda n: not any(x in n.replace("-", "_") for x in ("authorization", "cookie", *NAMES))
)
header_values = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)


@settings(max_examples=300)
@given(
    token=tokens,
    scheme=st.sampled_from(["Bearer", "bearer", "BEARER", "Basic"]),
    others=st.lists(st.tuples(header_names, header_values), max_size=5, unique_by=lambda t: t[0]),
    as_bytes=st.booleans(),
)
def test_headers_hide_credentials_and_keep_the_rest(
    token: str, scheme: str, others: list[tuple[str, str]], as_bytes: bool
) -> None:
    assume(not any(token in v or PLACEHOLDER in v for _, v in others))
    assume(not any(re.search(r"(?i)bearer|%|=", v) for _, v in others))
    # A value that reads as a credential line by itself ("PASSWORD:0") is redacted on purpose.
    assume(all(R.text(v) == v for _, v in others))
    cred = base64.b64encode(f"user:{token}".encode()).decode() if scheme == "Basic" else token
    cookie = f"a=1; directus_session_token={quote(token, safe='')}; b=2"
    pairs = [("authorization", f"{scheme} {cred}"), ("cookie", cookie), *others]
    out = R.headers(dict(pairs))
    assert out["authorization"] == f"{scheme} {PLACEHOLDER}"
    assert out["cookie"] == f"a=1; directus_session_token={PLACEHOLDER}; b=2"
    for key, value in others:
        assert out[key] == value
    text = repr(out)
    assert_gone(token, text)
    assert cred not in text
    if as_bytes:
        raw = [(k.encode(), v.encode()) for k, v in pairs]
        out_raw = R.headers(raw)
        assert out_raw[0] == (b"authorization", f"{scheme} {PLACEHOLDER}".encode())
        assert out_raw[2:] == raw[2:]
        assert_gone(token, repr(out_raw))
    # The same headers as a WSGI environ and an ASGI scope, dumped in a traceback.
    environ = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in pairs}
    assert_gone(token, R.text(repr(environ)))
    assert cred not in R.text(repr(environ))
    scope = {"type": "http", "headers": [(k.encode(), v.encode()) for k, v in pairs]}
    assert cred not in R.text(repr(scope))
    dump = "\n".join(f"{k.title()}: {v}" for k, v in pairs)
    assert cred not in R.text(dump)


def test_header_odd_cases() -> None:
    assert R.header("Authorization", "") == ""
    assert R.header("Authorization", "rawtokenwithoutscheme") == PLACEHOLDER
    assert R.header("HTTP_AUTHORIZATION", "Bearer x") == f"Bearer {PLACEHOLDER}"
    assert R.header("X-Access-Token", "abc") == PLACEHOLDER
    assert R.header("Referer", "https://h/p?access_token=abc&x=1") == f"https://h/p?access_token={PLACEHOLDER}&x=1"
    assert R.header("Host", "example.test") == "example.test"


# --- free text --------------------------------------------------------------------------------


@settings(max_examples=200)
@given(token=st.one_of(jwt_like, refresh_like))
@example(token="eyJhbGciOiJIUzI1NiJ9.eyJpZCI6IngifQ.c2lnbmF0dXJlc2lnbmF0dXJl")
def test_json_and_repr_bodies(token: str) -> None:
    for text in (
        f'{{"refresh_token": "{token}", "mode": "json"}}',
        f"{{'access_token': '{token}', 'expires': 900000}}",
        f"{{'access_token': b'{token}'}}",
        f"refresh_token={token}&mode=json",
        f"Set-Cookie: directus_refresh_token={token}; Max-Age=604800; Path=/",
        f"login(access_token='{token}')",
        f"token was Bearer {token}",
        f"<a href=\"/x?jwt={token}\">link</a>",
    ):
        out = R.text(text)
        assert_gone(token, out)
        assert PLACEHOLDER in out


def test_text_keeps_unrelated_words() -> None:
    text = "refused static token: unknown or inactive; basic setup done; mode=json"
    assert R.text(text) is text


# --- remove_query_params -------------------------------------------------------------------


@settings(max_examples=300)
@given(before=other_params, after=other_params, name=spelled_names(), token=st.one_of(jwt_like, refresh_like))
def test_remove_query_params_drops_exactly_the_token(
    before: list[tuple[str, bool, str]], after: list[tuple[str, bool, str]], name: str, token: str
) -> None:
    def part(key: str, has_eq: bool, value: str) -> str:
        return f"{key}={value}" if has_eq else key

    others = [part(*p) for p in before] + [part(*p) for p in after]
    query = "&".join([*[part(*p) for p in before], f"{name}={token}", *[part(*p) for p in after]])
    names = frozenset({"access_token", "jwt", "refresh_token"})
    out = remove_query_params(query, names)
    extractor = Extractor(("access_token", "jwt", "refresh_token"), "directus_session_token")
    if extractor.query_tokens(query) == [] and "[" not in name and "%5B" not in name:
        # A spelling the extractor does not read as the token (upper case) is not removed.
        assert out is query
        return
    assert out == "&".join(others)
    assert extractor.query_tokens(out) == []
    assert parse_qsl(out, keep_blank_values=True) == [
        p for p in parse_qsl(query, keep_blank_values=True) if p[1] != token
    ]


def test_remove_query_params_identity_and_edges() -> None:
    names = frozenset({"access_token"})
    q = "a=1&b=2"
    assert remove_query_params(q, names) is q
    assert remove_query_params("", names) == ""
    assert remove_query_params("access_token=x", names) == ""
    assert remove_query_params("a=1&&access_token=x&", names) == "a=1&&"
    assert remove_query_params("access_token", names) == ""
    assert remove_query_params("xaccess_token=1", names) == "xaccess_token=1"


# --- the shells strip the query token --------------------------------------------------------


def _asgi_call(strip: bool, query: bytes, raw_path: bytes | None) -> tuple[dict[str, object] | None, int]:
    import asyncio

    from tests.helpers.tokens import mint
    from tokenguard import TokenGuardMiddleware

    seen: dict[str, object] = {}
    sent: list[dict[str, object]] = []

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        seen.update(scope)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    mw = TokenGuardMiddleware(app, secret=SECRET, strip_query_token=strip, query_params="access_token,jwt")
    q = query.replace(b"TOKEN", mint().encode())
    scope: dict[str, object] = {
        "type": "http", "method": "GET", "path": "/x", "query_string": q, "headers": [],
    }
    if raw_path is not None:
        scope["raw_path"] = raw_path.replace(b"TOKEN", mint().encode())
    asyncio.run(mw(scope, receive, send))  # type: ignore[arg-type]
    return (seen or None), int(sent[0]["status"])  # type: ignore[call-overload]


def test_asgi_strips_the_query_token_and_keeps_the_principal() -> None:
    seen, status = _asgi_call(True, b"a=1&access_token=TOKEN&b=%20", b"/x?a=1&access_token=TOKEN&b=%20")
    assert status == 200 and seen is not None
    assert seen["query_string"] == b"a=1&b=%20"
    assert seen["raw_path"] == b"/x?a=1&b=%20"
    assert seen["user"].via == "jwt"  # type: ignore[attr-defined]
    seen, _ = _asgi_call(True, b"jwt=TOKEN", b"/x")  # uvicorn's raw_path has no query
    assert seen is not None and seen["query_string"] == b"" and seen["raw_path"] == b"/x"
    seen, _ = _asgi_call(True, b"jwt=TOKEN", b"/x?jwt=TOKEN")
    assert seen is not None and seen["raw_path"] == b"/x"


def test_asgi_strip_off_and_untouched_queries() -> None:
    seen, _ = _asgi_call(False, b"a=1&access_token=TOKEN", None)
    assert seen is not None and b"access_token=ey" in seen["query_string"]  # type: ignore[operator]
    seen, _ = _asgi_call(True, b"a=1&b=2", b"/x?a=1&b=2")
    assert seen is not None and seen["query_string"] == b"a=1&b=2" and seen["raw_path"] == b"/x?a=1&b=2"


def test_wsgi_strips_the_query_token_and_keeps_the_principal() -> None:
    from werkzeug.test import EnvironBuilder

    from tests.helpers.tokens import mint
    from tokenguard import ENVIRON_PRINCIPAL, TokenGuardWSGI

    seen: dict[str, object] = {}

    def app(environ, start_response):  # type: ignore[no-untyped-def]
        seen.update(environ)
        start_response("200 OK", [])
        return [b""]

    for strip in (True, False):
        seen.clear()
        token = mint()
        environ = EnvironBuilder(path="/x", query_string=f"a=1&access_token={token}&b=2").get_environ()
        environ["REQUEST_URI"] = environ["RAW_URI"] = f"/x?a=1&access_token={token}&b=2"
        wsgi = TokenGuardWSGI(app, secret=SECRET, strip_query_token=strip)
        list(wsgi(environ, lambda status, headers, exc_info=None: None))
        assert seen[ENVIRON_PRINCIPAL].via == "jwt"  # type: ignore[attr-defined]
        if strip:
            assert (seen["QUERY_STRING"], seen["REQUEST_URI"], seen["RAW_URI"]) == ("a=1&b=2", "/x?a=1&b=2", "/x?a=1&b=2")
        else:
            assert token in str(seen["QUERY_STRING"]) and token in str(seen["RAW_URI"])


def test_strip_setting_from_the_environment() -> None:
    assert Settings.from_env({"SECRET": SECRET}).strip_query_token is True
    assert Settings.from_env({"SECRET": SECRET, "TOKENGUARD_STRIP_QUERY_TOKEN": "false"}).strip_query_token is False


# Each of these made an earlier pattern backtrack quadratically or worse. Built at a scale:
# 1 is the size that an earlier quadratic pattern could not finish within the test run.
HOSTILE: list[Callable[[float], str]] = [
    lambda k: "%41" * int(70_000 * k) + " =",
    lambda k: "A" * int(200_000 * k) + "=",
    lambda k: "access_token" + "%5b%5d" * int(20_000 * k) + "%3dx",
    lambda k: "access_token" + "[]" * int(50_000 * k) + "=x",
    lambda k: "'access_token': '" * int(20_000 * k),
    lambda k: "bearer " * int(50_000 * k),
    lambda k: "Authorization: x\n" * int(30_000 * k),
    lambda k: "%3d" * int(60_000 * k) + "access_token%3d" * int(1_000 * k),
    lambda k: "a" * int(100_000 * k) + "@://",
    lambda k: "x://" + "a" * int(100_000 * k) + ":" + "b" * int(100_000 * k) + " @",
    lambda k: "a_" * int(100_000 * k) + "access_token:",
]
# The time of one linear pass over a text, building a new string as a redaction does. Timing
# each redaction relative to it cancels what a loaded machine and the CPU caches do to both.
_ONE_PASS = re.compile(r"[^\x00]")


def _one_pass(text: str) -> str:
    return _ONE_PASS.sub("x", text)


# On sixteen times the input a linear redaction costs as much per pass (measured on a 2-core
# machine at load 13: at most 1.8 times as much), a quadratic one sixteen times as much.
_GROWTH = 16
_BOUND = 8.0


def _best(fn: Callable[[str], object], text: str, runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        fn(text)
        best = min(best, time.perf_counter() - start)
    return best


def _growth(fn: Callable[[str], object], small: str, large: str, runs: int) -> float:
    """How much more ``fn`` costs per linear pass on ``large`` than on ``small`` (best of
    ``runs``; given up early when two runs are far beyond any noise)."""
    per_pass = _best(fn, small, runs) / _best(_one_pass, small, runs)
    large_pass = _best(_one_pass, large, runs)
    best = float("inf")
    for run in range(runs):
        start = time.perf_counter()
        fn(large)
        best = min(best, time.perf_counter() - start)
        if run and best / large_pass / per_pass > 2 * _BOUND:
            break  # twice far beyond the bound: not noise, and each run is slow
    return best / large_pass / per_pass


@pytest.mark.parametrize("make", HOSTILE)
@pytest.mark.parametrize("name", ["text", "url", "query", "cookie"])
def test_large_hostile_inputs_are_handled_in_linear_time(make: Callable[[float], str], name: str) -> None:
    fn = getattr(R, name)
    small, large = make(1 / 256), make(_GROWTH / 256)
    growth = _growth(fn, small, large, runs=5)
    if growth >= _BOUND:  # once more, longer, before calling it quadratic: the machine is shared
        growth = _growth(fn, small, large, runs=11)
    assert growth < _BOUND, f"{name}: {growth:.1f} times the cost per character on {_GROWTH}x the input"


def test_passwords_in_urls() -> None:
    assert R.text("Error connecting to redis://:s3cr3t-pw@127.0.0.1:6379/0") == (
        f"Error connecting to redis://:{PLACEHOLDER}@127.0.0.1:6379/0"
    )
    assert R.url("https://user:pw-123@example.test/x?y=1") == f"https://user:{PLACEHOLDER}@example.test/x?y=1"
    plain = "mail sent to someone@example.test via https://example.test/"
    assert R.text(plain) is plain


def test_header_dumps_and_yaml_lines() -> None:
    text = "Host: h\nX-Access-Token: abc123\nrefresh_token: def456\nX-Other: keep\n  Directus-Session-Token: ghi"
    assert R.text(text) == (
        f"Host: h\nX-Access-Token: {PLACEHOLDER}\nrefresh_token: {PLACEHOLDER}\nX-Other: keep\n"
        f"  Directus-Session-Token: {PLACEHOLDER}"
    )
