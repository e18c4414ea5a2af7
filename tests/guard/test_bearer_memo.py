"""The raw-header memo (``Guard.cached_bearer``) never decides differently from a cold guard.

The ASGI and WSGI shells ask the memo first for a request with one ``Authorization`` header;
whatever it answers must be what :meth:`Guard.authenticate` would have answered without it.
"""

from __future__ import annotations

import time
from types import GeneratorType

from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.guard.test_guard import make_guard, resolve
from tests.helpers.tokens import mint
from tokenguard.flow import run_sync
from tokenguard.guard.decide import Guard, Refusal
from tokenguard.jose.tokens import hash_token
from tokenguard.principal import Principal

TOKEN = mint()
HEADER = f"Bearer {TOKEN}"


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


_NAMES = st.sampled_from(["access_token", "ACCESS_TOKEN", "access%5Ftoken", "acc", "token", "a"])
_QUERIES = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=40),
    st.builds(lambda n, v, sep: f"{n}={v}{sep}", _NAMES, st.sampled_from(["", "x", TOKEN]), st.sampled_from(["", "&b=1"])),
)


@hsettings(max_examples=300, deadline=None)
@given(query=_QUERIES, as_bytes=st.booleans())
def test_memo_agrees_with_a_cold_guard(query: str, as_bytes: bool) -> None:
    warm = make_guard()
    raw: bytes | str = HEADER.encode("latin-1") if as_bytes else HEADER
    _warm(warm, raw)
    assert _memo_or_cold(warm, raw, query) == _verdict(resolve(make_guard(), HEADER, query))


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
    from tests.guard.test_guard import STATIC

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
    from tests.guard.test_guard import STATIC
    from tokenguard.stores.base import User

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
        cold = make_guard()
        cold.users = guard.users  # the same users, no memo
        assert _memo_verdict(guard, raw) == _verdict(resolve(cold, text))
        # The memo answers again once the full path has accepted the (changed) user anew.
        again = _memo_verdict(guard, raw)
        assert again == _verdict(resolve(cold, text))


def test_static_token_memo_never_answers_while_the_store_is_down() -> None:
    from tests.guard.test_guard import STATIC
    from tokenguard.stores.base import StoreUnavailable

    guard = make_guard()
    raw = f"Bearer {STATIC}".encode()
    assert isinstance(guard.authenticate(raw.decode(), "", None, raw_authorization=raw), Principal)
    assert isinstance(guard.cached_bearer(raw, b""), Principal)

    def down(digest: str) -> None:
        raise StoreUnavailable("users", "down for the test")

    guard.users.get_by_token_hash = down  # type: ignore[method-assign]
    assert guard.cached_bearer(raw, b"") is None
    assert _verdict(resolve(guard, raw.decode())) == ("refused", 503, "SERVICE_UNAVAILABLE")
