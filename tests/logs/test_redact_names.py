"""The default secret names (issue 14): every widely used credential name is redacted in every
shape, whatever TOKENGUARD_QUERY_PARAMS says; names match exactly (``code`` but not ``barcode``);
TOKENGUARD_REDACT_NAMES adds names."""

from __future__ import annotations

import json
import logging
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.helpers.tokens import SECRET
from tokenguard.config import ConfigError, Settings
from tokenguard.logs.filter import RedactingFilter
from tokenguard.logs.redact import DEFAULT_SECRET_NAMES, PLACEHOLDER, Redactor, default_redactor

# Configured with one unusual token parameter: the defaults must hold regardless.
R = Redactor.from_settings(Settings(secret=SECRET, query_params=("sig",), redact_names=("x_custom",)))
ALL = (*DEFAULT_SECRET_NAMES, "sig", "x_custom")

secret_values = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~", min_size=12, max_size=40).filter(
    lambda v: "redacted" not in v  # a value that is the placeholder itself proves nothing
)
other_keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
other_values = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", max_size=8)


@st.composite
def spelled(draw: st.DrawFn, names: tuple[str, ...] = ALL) -> str:
    """A secret name as a client may write it: any case, percent-encoded, with brackets."""
    name = draw(st.sampled_from(names))
    form = draw(st.sampled_from(["raw", "upper", "title", "pct-first", "pct-all", "bracket"]))
    if form == "upper":
        return name.upper()
    if form == "title":
        return name.title()
    if form == "pct-first":
        return f"%{ord(name[0]):02X}{name[1:]}"
    if form == "pct-all":
        return "".join(f"%{ord(c):02x}" for c in name)
    if form == "bracket":
        return name + draw(st.sampled_from(["[]", "[0]", "%5B%5D"]))
    return name


@st.composite
def not_names(draw: st.DrawFn) -> str:
    """A key containing a secret name that is not one: ``barcode``, ``tokens``, ``code2``."""
    name = draw(st.sampled_from(ALL))
    before = draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", max_size=4))
    after = draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", max_size=4))
    if not before and not after:
        after = "x"
    return before + name + after


@given(
    name=spelled(),
    value=secret_values,
    before=st.lists(st.tuples(other_keys, other_values), max_size=3),
    after=st.lists(st.tuples(other_keys, other_values), max_size=3),
)
@example(name="code", value="4/0AfJohXn-authorization-code", before=[("state", "xyz")], after=[])
def test_every_default_name_is_redacted_in_queries_urls_and_text(
    name: str, value: str, before: list[tuple[str, str]], after: list[tuple[str, str]]
) -> None:
    others = [f"{k}={v}" for k, v in before]
    rest = [f"{k}={v}" for k, v in after]
    query = "&".join([*others, f"{name}={value}", *rest])
    for out in (
        R.query(query),
        R.url("/cb?" + query),
        R.text(f'127.0.0.1 - "GET /cb?{query} HTTP/1.1" 200'),
        R.text(f"app saw http://h/cb?{query}"),
        R.url("/cb#" + query),
        # Nested in another parameter's value, percent-encoded once (a name that is itself
        # encoded would be encoded twice there: no server reads that as the name).
        R.url("/next?to=" + quote("/cb?" + query, safe="")) if "%" not in name else "",
    ):
        assert value not in out
        assert quote(value, safe="") not in out
    # Nothing else moved.
    assert R.query(query) == "&".join([*others, f"{name}={PLACEHOLDER}", *rest])


@given(name=st.sampled_from(ALL), value=secret_values, number=st.integers(0, 10**8))
def test_form_json_and_repr_bodies(name: str, value: str, number: int) -> None:
    form = f"email=a%40b.c&{name}={quote_plus(value)}&mode=json"
    assert R.query(form) == f"email=a%40b.c&{name}={PLACEHOLDER}&mode=json"
    body = json.dumps({"email": "a@b.c", name: value, "mode": "json"})
    assert value not in R.text(body)
    assert json.loads(R.text(body)) == {"email": "a@b.c", name: PLACEHOLDER, "mode": "json"}
    # A number (an OTP typed as one) is a secret too.
    numeric = json.dumps({name: number, "mode": "json"})
    assert json.loads(R.text(numeric)) == {name: PLACEHOLDER, "mode": "json"}
    assert value not in R.text(repr({name: value}))
    assert value not in R.text(f"{name}: {value}")  # YAML, a dump of fields


@given(name=st.sampled_from(ALL), value=secret_values)
def test_headers_named_after_secrets(name: str, value: str) -> None:
    dashed = name.replace("_", "-")
    headers = {dashed.title(): value, f"X-{dashed}": value, "X-Request-Id": "r1"}
    out = R.headers(headers)
    assert out[dashed.title()] == PLACEHOLDER
    if name == "code":
        assert out["X-code"] == value  # "X-Error-Code" style headers are not secrets
    else:
        assert out[f"X-{dashed}"] == PLACEHOLDER
    assert out["X-Request-Id"] == "r1"
    assert R.header("Referer", f"https://h/cb?{name}={value}") == f"https://h/cb?{name}={PLACEHOLDER}"


@given(key=not_names(), value=other_values, case=st.booleans())
@example(key="barcode", value="123", case=False)
@example(key="status_code", value="200", case=False)
@example(key="tokens", value="5", case=True)
@example(key="decode", value="1", case=False)
def test_names_match_exactly(key: str, value: str, case: bool) -> None:
    key = key.upper() if case else key
    query = f"{key}={value}&page=2"
    assert R.query(query) is query
    assert R.url("/x?" + query) == "/x?" + query
    line = f'"GET /x?{query} HTTP/1.1" 200'
    assert R.text(line) == line
    if not key.lower().endswith(tuple("_" + n for n in ALL if n != "code")):
        assert R.text(json.dumps({key: value})) == json.dumps({key: value})


def test_code_alone_but_not_suffixes_of_code() -> None:
    assert R.text("code: 4/abc") == f"code: {PLACEHOLDER}"
    assert R.text("status_code: 200") == "status_code: 200"
    assert R.text("new_password: hunter2") == f"new_password: {PLACEHOLDER}"
    assert R.header("X-Error-Code", "E42") == "E42"
    assert R.header("X-Api-Key", "k") == PLACEHOLDER
    assert R.header("Apikey", "k") == PLACEHOLDER


def test_fast_path_for_words_that_merely_contain_a_name() -> None:
    for text in (
        "decode the barcode, tokenize the secretary's notes",
        "GET /static/tokens.css HTTP/1.1",
        "worker booted; unicode ok",
    ):
        assert R.text(text) is text
        assert default_redactor().text(text) is text


def test_redact_names_setting() -> None:
    s = Settings.from_env({"SECRET": SECRET, "TOKENGUARD_REDACT_NAMES": " x_custom , session_key ,"})
    assert s.redact_names == ("x_custom", "session_key")
    r = Redactor.from_settings(s)
    assert r.url("/x?session_key=a&x_custom=b&password=c&q=1") == (
        f"/x?session_key={PLACEHOLDER}&x_custom={PLACEHOLDER}&password={PLACEHOLDER}&q=1"
    )
    assert Settings(secret=SECRET).redact_names == ()
    with pytest.raises(ConfigError, match="TOKENGUARD_REDACT_NAMES"):
        Settings(secret=SECRET, redact_names=("a=b",))


@given(name=st.sampled_from(DEFAULT_SECRET_NAMES), value=secret_values)
def test_log_records_hide_every_default_name(name: str, value: str) -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "callback %s body=%s", (f"/cb?{name}={value}", {name: value}), None)
    RedactingFilter(default_redactor()).filter(record)
    assert value not in record.getMessage()
    assert PLACEHOLDER in record.getMessage()
