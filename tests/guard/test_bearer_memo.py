"""The raw-header memo (``Guard.cached_bearer``) never decides differently from the rules.

The ASGI and WSGI shells ask the memo first for a request with one ``Authorization`` header;
whatever it answers must be what the request is owed. The oracle is not a second guard (a bug
both share would be invisible) but the rules read without tokenguard: the query parsed as
``qs`` parses it, the JWT decoded by PyJWT, the static token's user read from the store.
"""

from __future__ import annotations

import hashlib
import time
from types import GeneratorType
from urllib.parse import unquote_plus

import jwt
from hypothesis import example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.guard.test_guard import STATIC, make_guard, resolve
from tests.helpers.tokens import SECRET, mint
from tokenguard.flow import run_sync
from tokenguard.guard.decide import Guard, Refusal
from tokenguard.jose.tokens import hash_token
from tokenguard.principal import Principal
from tokenguard.stores.base import StoreUnavailable, User
from tokenguard.stores.memory import MemoryUserStore

TOKEN = mint()
HEADER = f"Bearer {TOKEN}"
# A second query name, with a character beyond ASCII that latin-1 still spells in one byte.
NAMES = ("access_token", "tok\xff")


def _verdict(outcome: object) -> object:
    if isinstance(outcome, Refusal):
        return ("refused", outcome.error.status, outcome.error.code)
    assert isinstance(outcome, Principal)
    return ("principal", outcome.user, outcome.role, outcome.via)


def _warm(guard: Guard, raw: bytes | str) -> None:
    text = raw.decode("latin-1") if isinstance(raw, bytes) else raw
    # The first sight verifies and caches; the second, a cache hit, memoises the header.
    assert isinstance(guard.authenticate(text, "", None, raw_authorization=raw), Principal)
    assert isinstance(guard.authenticate(text, "", None, raw_authorization=raw), Principal)


def _memo_or_cold(guard: Guard, raw: bytes | str, query: str) -> object:
    """What a shell does: the memo first, the full path when it says None."""
    as_sent: bytes | str = query.encode("latin-1") if isinstance(raw, bytes) else query
    cached = guard.cached_bearer(raw, as_sent)
    if cached is not None:
        return _verdict(cached)
    text = raw.decode("latin-1") if isinstance(raw, bytes) else raw
    return _verdict(resolve(guard, text, query))


def _owed(query: str, names: tuple[str, ...] = ("access_token",)) -> object:
    """What a request with ``HEADER`` and ``query`` is owed, read without tokenguard: a
    parameter named as a token (decoded as ``qs`` decodes, brackets too) meets the header and
    is a 400; otherwise the JWT as PyJWT reads it."""
    for part in query.split("&"):
        key = unquote_plus(part.partition("=")[0], errors="replace")
        if key in names or (key.split("[", 1)[0] in names and "[" in key):
            return ("refused", 400, "INVALID_PAYLOAD")
    claims = jwt.decode(TOKEN, SECRET, algorithms=["HS256"], issuer="directus")
    return ("principal", claims["id"], claims["role"], "jwt")


def _owed_static(users: MemoryUserStore) -> object:
    """What ``Bearer STATIC`` is owed, from the store's own record of u-static."""
    user = users.get_by_id("u-static")
    digest = hashlib.sha256(STATIC.encode()).hexdigest()
    if user is None or user.token_hash != digest or user.status != "active":
        return ("refused", 401, "INVALID_CREDENTIALS")
    return ("principal", "u-static", user.role, "static")


_NAMES = st.sampled_from(
    ["access_token", "ACCESS_TOKEN", "access%5Ftoken", "access_token[]", "tok\xff", "tok%FF", "acc", "token", "a"]
)
_QUERIES = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=40),
    st.builds(lambda n, v, sep: f"{n}={v}{sep}", _NAMES, st.sampled_from(["", "x", TOKEN]), st.sampled_from(["", "&b=1"])),
)


@hsettings(max_examples=300, deadline=None)
@given(query=_QUERIES, as_bytes=st.booleans())
@example(query="", as_bytes=True)
@example(query="access%5Ftoken=x", as_bytes=True)
@example(query="a=1&tok\xff=x", as_bytes=True)
@example(query="tok%C3%BF=x", as_bytes=False)
def test_memo_answers_what_the_request_is_owed(query: str, as_bytes: bool) -> None:
    warm = make_guard(query_params=NAMES)
    raw: bytes | str = HEADER.encode("latin-1") if as_bytes else HEADER
    _warm(warm, raw)
    assert _memo_or_cold(warm, raw, query) == _owed(query, NAMES)


def test_memo_answers_only_while_the_cached_check_lives() -> None:
    clock = [time.time()]
    guard = make_guard(leeway_ms=0)
    guard.clock = lambda: clock[0]
    token = mint(exp=int(clock[0]) + 2)
    raw = f"Bearer {token}".encode()
    assert isinstance(guard.authenticate(raw.decode(), "", None, raw_authorization=raw), Principal)
    assert guard.cached_bearer(raw, b"") is None  # seen once: verified and cached, not memoised
    _warm(guard, raw)
    hit = guard.cached_bearer(raw, b"")
    assert isinstance(hit, Principal) and hit.via == "jwt"
    assert guard.cached_bearer(raw, b"access_token=x") is None  # must meet the header: 400
    assert guard.cached_bearer(raw, b"a%63cess_token=x") is None
    guard.cache.clear()  # what a revocation does to the check
    assert guard.cached_bearer(raw, b"") is None
    _warm(guard, raw)
    clock[0] += 5
    assert guard.cached_bearer(raw, b"") is None  # expired: the full path says TOKEN_EXPIRED
    assert _memo_or_cold(guard, raw, "") == ("refused", 401, "TOKEN_EXPIRED")


def test_a_refused_header_is_never_memoised() -> None:
    guard = make_guard()
    raw = b"Bearer not-a-jwt"
    outcome = guard.authenticate(raw.decode(), "", None, raw_authorization=raw)
    if isinstance(outcome, GeneratorType):  # a static-token candidate: one store lookup
        outcome = run_sync(outcome)
    assert isinstance(outcome, Refusal)
    assert guard.cached_bearer(raw, b"") is None


def test_static_token_follows_every_change_of_its_user() -> None:
    # make_guard's memory store holds u-static with STATIC; the principal is built once per
    # stored User object, so every change of the user must be seen on the next request.
    guard = make_guard()
    header = f"Bearer {STATIC}"
    first = resolve(guard, header)
    assert isinstance(first, Principal) and (first.user, first.role, first.via) == ("u-static", "robot", "static")
    assert resolve(guard, header) is first
    guard.users.update("u-static", role="editor", admin_access=True)
    changed = resolve(guard, header)
    assert isinstance(changed, Principal) and (changed.role, changed.admin) == ("editor", True)
    guard.users.update("u-static", status="suspended")
    assert _verdict(resolve(guard, header)) == ("refused", 401, "INVALID_CREDENTIALS")
    guard.users.update("u-static", status="active")
    assert isinstance(resolve(guard, header), Principal)
    guard.users.update("u-static", token_hash=None)
    assert _verdict(resolve(guard, header)) == ("refused", 401, "INVALID_CREDENTIALS")
    guard.users.update("u-static", token_hash=hash_token(STATIC))
    guard.users.delete("u-static")
    assert _verdict(resolve(guard, header)) == ("refused", 401, "INVALID_CREDENTIALS")


def _memo_verdict(guard: Guard, raw: bytes | str) -> object:
    """What the shells see: the memo when it answers, else the full path."""
    return _memo_or_cold(guard, raw, "")


@hsettings(max_examples=60, deadline=None)
@given(
    as_bytes=st.booleans(),
    changes=st.lists(
        st.sampled_from(["role", "suspend", "activate", "no-token", "token-back", "delete", "create"]),
        max_size=8,
    ),
)
def test_static_token_memo_follows_every_change_of_its_user(as_bytes: bool, changes: list[str]) -> None:
    # The memo answers a static token from the raw header on every sight after the first,
    # without hashing it again: after any sequence of changes to its user, memo and cold
    # guard must agree on every request.
    guard = make_guard()
    header = f"Bearer {STATIC}"
    raw: bytes | str = header.encode("latin-1") if as_bytes else header
    text = header
    first = guard.authenticate(text, "", None, raw_authorization=raw)
    assert isinstance(first, Principal) and first.via == "static"
    hit = guard.cached_bearer(raw, b"" if as_bytes else "")
    assert hit is first  # memoised on first sight: static tokens are few
    assert guard.cached_bearer(raw, b"access_token=x" if as_bytes else "access_token=x") is None
    for change in changes:
        if change == "role":
            guard.users.update("u-static", role=f"role-{len(change)}", admin_access=True)
        elif change in ("suspend", "activate") and guard.users.get_by_id("u-static") is not None:
            guard.users.update("u-static", status="suspended" if change == "suspend" else "active")
        elif change == "no-token" and guard.users.get_by_id("u-static") is not None:
            guard.users.update("u-static", token_hash=None)
        elif change == "token-back" and guard.users.get_by_id("u-static") is not None:
            guard.users.update("u-static", token_hash=hash_token(STATIC))
        elif change == "delete" and guard.users.get_by_id("u-static") is not None:
            guard.users.delete("u-static")
        elif change == "create" and guard.users.get_by_id("u-static") is None:
            guard.users.create(User(id="u-static", email="s@example.com", role="robot", token_hash=hash_token(STATIC)))
        owed = _owed_static(guard.users)  # type: ignore[arg-type]
        assert _memo_verdict(guard, raw) == owed, change
        # The memo answers again once the full path has accepted the (changed) user anew.
        assert _memo_verdict(guard, raw) == owed, change


def test_static_token_memo_never_answers_while_the_store_is_down() -> None:
    guard = make_guard()
    raw = f"Bearer {STATIC}".encode()
    assert isinstance(guard.authenticate(raw.decode(), "", None, raw_authorization=raw), Principal)
    assert isinstance(guard.cached_bearer(raw, b""), Principal)

    def down(digest: str) -> None:
        raise StoreUnavailable("users", "down for the test")

    guard.users.get_by_token_hash = down  # type: ignore[method-assign]
    assert guard.cached_bearer(raw, b"") is None
    assert _verdict(resolve(guard, raw.decode())) == ("refused", 503, "SERVICE_UNAVAILABLE")
