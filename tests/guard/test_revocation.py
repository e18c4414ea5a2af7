"""Revoked access tokens: the per-process registry, and the guard refusing what it names."""

from __future__ import annotations

import logging
import time
from types import GeneratorType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers.tokens import DROP, SECRET, mint
from tokenguard.app import TokenGuard
from tokenguard.config import Settings
from tokenguard.flow import run_sync
from tokenguard.guard.decide import Guard, Refusal
from tokenguard.guard.revocation import (
    PRIVILEGE_FIELDS,
    Entry,
    Revocations,
    decode_entries,
    encode_entries,
    entry_from_member,
    issued_at,
    revoking_change,
)
from tokenguard.principal import Principal
from tokenguard.stores.base import SessionRecord, StoreUnavailable, User, refresh_token_key
from tokenguard.stores.memory import MemorySessionStore, MemoryUserStore
from tokenguard.stores.redis import RedisSessionStore
from tokenguard.users import create_user

WINDOW = 960.0  # 15 minutes of ACCESS_TOKEN_TTL, one of leeway


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- the registry ------------------------------------------------------------------------------


def test_a_revoked_session_refuses_its_tokens_and_no_other() -> None:
    rv = Revocations(WINDOW, clock=Clock())
    assert not rv.refuses("fam-a", "u1", 1.0)
    rv.revoke_session("fam-a")
    assert rv.refuses("fam-a", "u1", 1.0)
    assert rv.refuses("fam-a", None, None)
    assert not rv.refuses("fam-b", "u1", 1.0)
    assert not rv.refuses(None, "u1", 1.0)


def test_a_revoked_user_refuses_tokens_issued_before_and_accepts_later_ones() -> None:
    clock = Clock(1_800_000_000.25)
    rv = Revocations(WINDOW, clock=clock)
    rv.revoke_user("u1")
    assert rv.users["u1"] == 1_800_000_000.25
    assert rv.refuses(None, "u1", 1_800_000_000.249)
    assert not rv.refuses(None, "u1", 1_800_000_000.25)  # the refreshed token, same ms
    assert not rv.refuses(None, "u1", 1_800_000_001.0)
    assert rv.refuses(None, "u1", None)  # a token that does not say when it was issued
    assert not rv.refuses(None, "u2", 0.0)
    # A fraction of a millisecond rounds up: nothing issued before the revocation survives.
    clock.now = 1_800_000_002.0004
    rv.revoke_user("u1")
    assert rv.users["u1"] == 1_800_000_002.001
    assert rv.refuses(None, "u1", 1_800_000_002.0)


def test_an_entry_lives_exactly_one_window() -> None:
    clock = Clock()
    rv = Revocations(WINDOW, clock=clock)
    start = clock.now
    rv.revoke_session("fam-a")
    rv.revoke_user("u1")
    clock.now = start + WINDOW - 0.001
    rv.prune()
    assert rv.refuses("fam-a", None, None) and rv.refuses(None, "u1", start - 1)
    clock.now = start + WINDOW
    rv.prune()
    assert len(rv) == 0
    assert not rv.refuses("fam-a", None, None) and not rv.refuses(None, "u1", start - 1)


def test_memory_is_bounded_by_one_window_of_revocations() -> None:
    clock = Clock()
    rv = Revocations(WINDOW, clock=clock)
    # One revocation a second for ten windows: never more than one window's worth held.
    for i in range(int(WINDOW) * 10):
        rv.revoke_session(f"fam-{i}")
        if i % 7 == 0:
            rv.revoke_user(f"user-{i % 50}")
        assert len(rv.sessions) <= WINDOW
        assert len(rv.users) <= 50
        assert len(rv._expiry) <= WINDOW + WINDOW / 7 + 2
        clock.now += 1.0
    assert len(rv.sessions) == WINDOW


def test_entries_older_than_the_window_are_ignored_and_a_later_user_time_wins() -> None:
    clock = Clock()
    rv = Revocations(WINDOW, clock=clock)
    now_ms = int(clock.now * 1000)
    rv.apply([Entry("s", "old", now_ms - int(WINDOW * 1000)), Entry("u", "u1", now_ms - 5000)])
    assert "old" not in rv.sessions
    rv.apply([Entry("u", "u1", now_ms - 9000)])  # an older announcement arrives late
    assert rv.users["u1"] == (now_ms - 5000) / 1000
    rv.apply([Entry("u", "u1", now_ms)])
    assert rv.users["u1"] == now_ms / 1000


def test_the_wire_format_round_trips_and_refuses_garbage() -> None:
    entries = [Entry("s", "fam-a", 1), Entry("u", "user:with,odd chars", 2)]
    message = encode_entries(entries)
    assert message.startswith("!")
    assert decode_entries(message) == entries
    assert decode_entries("!not json") == []
    assert decode_entries('!{"s": 1}') == []
    assert decode_entries('![["x","k",1],["s",2,3],["u","k",1.5],["s","ok",7]]') == [
        Entry("s", "ok", 7)
    ]
    assert entry_from_member("u:user:with,odd chars", 2.0) == entries[1]
    assert entry_from_member("x:nope", 1.0) is None
    assert entry_from_member("s:", 1.0) is None


def test_issued_at_prefers_milliseconds() -> None:
    assert issued_at({"iat": 10, "iat_ms": 10_250}) == 10.25
    assert issued_at({"iat": 10}) == 10.0
    assert issued_at({"iat": 10.5}) == 10.5  # PyJWT and our verifier accept a fractional iat
    assert issued_at({"iat": "10"}) is None and issued_at({"iat_ms": 10.5, "iat": True}) is None
    assert issued_at({}) is None


@st.composite
def _programs(draw: Any) -> list[tuple[Any, ...]]:
    steps = []
    for _ in range(draw(st.integers(1, 40))):
        kind = draw(st.sampled_from(["s", "u", "tick", "check"]))
        if kind == "s":
            steps.append(("s", draw(st.sampled_from("abc"))))
        elif kind == "u":
            steps.append(("u", draw(st.sampled_from("xyz"))))
        elif kind == "tick":
            steps.append(("tick", draw(st.floats(0, WINDOW / 2, allow_nan=False))))
        else:
            steps.append(
                (
                    "check",
                    draw(st.sampled_from("abcd")),
                    draw(st.sampled_from("xyzw")),
                    draw(st.floats(0, 1, allow_nan=False)),  # issued within the window
                )
            )
    return steps


@settings(max_examples=300, deadline=None)
@given(_programs())
def test_the_registry_agrees_with_a_simple_model(program: list[tuple[Any, ...]]) -> None:
    clock = Clock()
    rv = Revocations(WINDOW, clock=clock)
    sessions: dict[str, float] = {}  # sid -> last revoked at
    users: dict[str, float] = {}  # user -> latest not-before
    for step in program:
        if step[0] == "s":
            sessions[step[1]] = clock.now
            rv.revoke_session(step[1])
        elif step[0] == "u":
            rv.revoke_user(step[1])
            users[step[1]] = rv.users[step[1]]
        elif step[0] == "tick":
            clock.now += step[1]
        else:
            _, sid, user, fraction = step
            # A token still valid now was issued within the last window.
            issued = clock.now - WINDOW * fraction
            verdict = rv.refuses(sid, user, issued)
            revoked_at = sessions.get(sid)
            not_before = users.get(user)
            must = (revoked_at is not None and revoked_at + WINDOW > clock.now) or (
                not_before is not None and issued < not_before
            )
            if must:
                assert verdict
            elif revoked_at is None or revoked_at + WINDOW <= clock.now:
                # Only a session revoked more than a window ago may still linger until the
                # next write prunes it: it can refuse nothing that is still valid in reality.
                user_says = not_before is not None and issued < not_before
                assert verdict == user_says or (revoked_at is not None and sid in rv.sessions)


# -- the guard -----------------------------------------------------------------------------------


def _core() -> TokenGuard:
    users = MemoryUserStore()
    create_user(users, "ada@example.com", password="correct horse", role="editor")
    return TokenGuard(secret=SECRET, users=users, sessions=MemorySessionStore(), login_stall_ms=0)


def _login(core: TokenGuard) -> tuple[str, str]:
    from tokenguard.auth.service import ClientInfo, Credentials

    tokens = run_sync(
        core.auth.login(Credentials("ada@example.com", "correct horse"), "json", ClientInfo(), 0.0)
    )
    return tokens.access_token, tokens.refresh_token


def _ask(core: TokenGuard, token: str, raw: str | None = None) -> Principal | Refusal:
    header = f"Bearer {token}"
    outcome = core.guard.authenticate(header, "", None, raw_authorization=raw)
    if isinstance(outcome, GeneratorType):
        outcome = run_sync(outcome)
    assert isinstance(outcome, Principal | Refusal)
    return outcome


def _is_refused(outcome: object) -> bool:
    return isinstance(outcome, Refusal) and (
        outcome.error.status,
        outcome.error.code,
        outcome.error.message,
    ) == (401, "INVALID_CREDENTIALS", "Invalid user credentials.")


def test_logout_refuses_the_access_token_on_every_path() -> None:
    core = _core()
    access, refresh = _login(core)
    raw = f"Bearer {access}"
    first = _ask(core, access, raw)
    assert isinstance(first, Principal) and first.sid == refresh[:22]
    assert isinstance(_ask(core, access, raw), Principal)  # cached, and memoised
    assert core.guard.cached_bearer(raw, "") is not None
    run_sync(core.auth.logout(refresh))
    # The bearer memo and the token cache both still hold it: neither may answer.
    assert core.guard.cached_bearer(raw, "") is None
    assert _is_refused(_ask(core, access, raw))
    # Another login of the same user is untouched.
    other, _ = _login(core)
    assert isinstance(_ask(core, other), Principal)


def test_the_memo_serves_a_good_token_while_other_revocations_are_held() -> None:
    # A deployment where logouts happen always holds revocations: a repeated token must still
    # be answered from the raw-header memo (benchmarks/README.md: without it, 13 % more
    # instructions per request), and its own revocation still refuses it there.
    core = _core()
    access, refresh = _login(core)
    core.guard.revocations.revoke_session("another-family-000000")
    core.guard.revocations.revoke_user("another-user")
    raw = f"Bearer {access}"
    assert isinstance(_ask(core, access, raw), Principal)
    assert core.guard.cached_bearer(raw, "") is None  # seen once: not memoised yet
    assert isinstance(_ask(core, access, raw), Principal)  # a cache hit: memoised
    hit = core.guard.cached_bearer(raw, "")
    assert isinstance(hit, Principal) and hit.sid == refresh[:22]
    run_sync(core.auth.logout(refresh))
    assert core.guard.cached_bearer(raw, "") is None
    assert _is_refused(_ask(core, access, raw))


def test_revoke_user_refuses_earlier_tokens_and_not_the_refreshed_one() -> None:
    from tokenguard.auth.service import ClientInfo

    core = _core()
    access, refresh = _login(core)
    assert isinstance(_ask(core, access), Principal)
    user = core.users.get_by_email("ada@example.com")  # type: ignore[union-attr]
    assert user is not None
    core.users.update(user.id, role="viewer")  # type: ignore[union-attr]
    core.revoke_user(user.id)
    assert _is_refused(_ask(core, access))
    # The not-before time is rounded up to the millisecond: a token minted in that same
    # millisecond is refused too (its client refreshes again), never an earlier one accepted.
    time.sleep(0.002)
    tokens = run_sync(core.auth.refresh(refresh, "json", ClientInfo()))
    fresh = _ask(core, tokens.access_token)
    assert isinstance(fresh, Principal) and fresh.role == "viewer"


def test_revoke_session_by_sid() -> None:
    core = _core()
    access, _ = _login(core)
    principal = _ask(core, access)
    assert isinstance(principal, Principal) and principal.sid is not None
    core.revoke_session(principal.sid)
    assert _is_refused(_ask(core, access))


def test_refresh_token_reuse_refuses_the_access_tokens_of_the_family() -> None:
    from tokenguard.auth.service import ClientInfo
    from tokenguard.errors import AuthError

    core = _core()
    _, refresh = _login(core)
    tokens = run_sync(core.auth.refresh(refresh, "json", ClientInfo()))
    assert isinstance(_ask(core, tokens.access_token), Principal)
    try:
        run_sync(core.auth.refresh(refresh, "json", ClientInfo()))  # the old one, again
    except AuthError as error:
        assert error.code == "INVALID_CREDENTIALS"
    assert _is_refused(_ask(core, tokens.access_token))


def test_while_untrusted_the_store_is_asked_and_a_store_down_is_a_503() -> None:
    core = _core()
    access, _ = _login(core)
    rv = core.guard.revocations
    asked: list[tuple[str | None, str | None]] = []

    def check(sid: str | None, user: str | None) -> tuple[int | None, int | None]:
        asked.append((sid, user))
        return (None, None)

    rv.trusted = False
    rv.check = check
    raw = f"Bearer {access}"
    assert isinstance(_ask(core, access, raw), Principal)
    assert isinstance(_ask(core, access, raw), Principal)  # the cached path asks too
    assert core.guard.cached_bearer(raw, "") is None
    assert len(asked) == 2

    def revoked(sid: str | None, user: str | None) -> tuple[int | None, int | None]:
        return (1, None)

    rv.check = revoked
    assert _is_refused(_ask(core, access))

    def down(sid: str | None, user: str | None) -> tuple[int | None, int | None]:
        raise StoreUnavailable("redis", "Redis failed: ConnectionError")

    rv.check = down
    outcome = _ask(core, access)
    assert isinstance(outcome, Refusal) and (outcome.error.status, outcome.error.code) == (
        503,
        "SERVICE_UNAVAILABLE",
    )
    rv.check = None
    outcome = _ask(core, access)
    assert isinstance(outcome, Refusal) and outcome.error.status == 503


def test_a_session_entry_lives_the_access_token_window_only() -> None:
    clock = Clock()
    rv = Revocations(86_460.0, session_window_s=WINDOW, clock=clock)
    start = clock.now
    rv.revoke_session("fam-a")
    rv.revoke_user("u1")
    clock.now = start + WINDOW
    rv.prune()
    # Session-mode tokens are checked against their session anyway; a user's not-before
    # must outlive them (a role change), so it keeps the longer window.
    assert rv.sessions == {} and rv.users == {"u1": start}
    clock.now = start + 86_460.0
    rv.prune()
    assert len(rv) == 0


def test_the_guard_sizes_its_windows_from_the_settings() -> None:
    core = _core()
    rv = core.guard.revocations
    leeway = core.settings.leeway_ms / 1000
    assert rv.session_window_s == 900 + leeway  # ACCESS_TOKEN_TTL
    assert rv.window_s == 86_400 + leeway  # SESSION_COOKIE_TTL


def test_the_async_twins_revoke_too() -> None:
    import asyncio

    core = _core()
    access, _ = _login(core)
    principal = _ask(core, access)
    assert isinstance(principal, Principal) and principal.sid is not None
    asyncio.run(core.arevoke_session(principal.sid))
    assert _is_refused(_ask(core, access))
    other, _ = _login(core)
    assert isinstance(_ask(core, other), Principal)
    asyncio.run(core.arevoke_user(principal.user or ""))
    assert _is_refused(_ask(core, other))


# -- what change of a user revokes -------------------------------------------------------------

_BEFORE = User(
    id="u1",
    email="ada@example.com",
    password_hash="$argon2id$old",
    role="editor",
    admin_access=False,
    app_access=True,
    tfa_secret="sealed",
)
_CHANGES: dict[str, Any] = {
    "role": st.sampled_from([None, "viewer", "administrator"]),
    "admin_access": st.just(True),
    "app_access": st.just(False),
    "status": st.sampled_from(["suspended", "archived", "invited", "draft"]),
    "password_hash": st.just("$argon2id$new"),
    "tfa_secret": st.sampled_from([None, "sealed-again"]),
    "email": st.just("ada@elsewhere.example"),
    "first_name": st.text(max_size=5),
    "last_name": st.text(max_size=5),
    "token_hash": st.sampled_from([None, "f" * 64]),
    "external_identifier": st.sampled_from([None, "sub-ada"]),
}


@settings(max_examples=200, deadline=None)
@given(st.fixed_dictionaries({}, optional=_CHANGES))
def test_a_change_revokes_exactly_when_it_touches_a_privilege(changes: dict[str, Any]) -> None:
    from dataclasses import replace

    after = replace(_BEFORE, **changes)
    reason = revoking_change(_BEFORE, after)
    touched = [n for n in PRIVILEGE_FIELDS if getattr(after, n) != getattr(_BEFORE, n)]
    tfa_removed = after.tfa_secret is None
    if touched:
        assert reason == touched[0]
    elif tfa_removed:
        assert reason == "tfa_secret"
    else:
        assert reason is None  # names, e-mail, identifiers, a new TOTP secret: tokens stay
    assert revoking_change(_BEFORE, _BEFORE) is None
    assert revoking_change(_BEFORE, None) == "deleted"


def test_listeners_hear_every_write_that_records_something() -> None:
    clock = Clock()
    rv = Revocations(WINDOW, clock=clock)
    heard: list[int] = []
    rv.listeners.append(lambda: heard.append(rv.version))

    def broken() -> None:
        raise RuntimeError("a listener's bug")

    rv.listeners.append(broken)
    rv.revoke_user("u1")
    rv.revoke_session("s1")
    assert heard == [1, 2] and rv.version == 2
    # Nothing new (an older time for a user, an entry out of its window): nobody is woken.
    rv.apply([Entry("u", "u1", int((clock.now - 10) * 1000))])
    rv.apply([Entry("s", "s2", int((clock.now - 2 * WINDOW) * 1000))])
    assert heard == [1, 2]
    assert "u1" in rv.users and "s1" in rv.sessions  # the broken listener undid nothing


def test_an_open_connections_principal_is_checked_with_its_authentication_time() -> None:
    clock = Clock()
    rv = Revocations(WINDOW, clock=clock)
    jwt = Principal("u1", "editor", via="jwt", sid="s1", issued_at=clock.now - 5)
    static = Principal("u1", "editor", via="static")
    public = Principal(None, None)
    opened = clock.now - 1
    assert not any(rv.refuses_principal(p, opened) for p in (jwt, static, public))
    rv.revoke_user("u2")
    assert not any(rv.refuses_principal(p, opened) for p in (jwt, static, public))
    clock.now += 1
    rv.revoke_user("u1")
    assert rv.refuses_principal(jwt, opened)
    # A static token has no issue time: the connection's authentication time stands in.
    assert rv.refuses_principal(static, opened)
    assert not rv.refuses_principal(static, clock.now + 0.01)  # re-authenticated since
    assert not rv.refuses_principal(public, opened)
    other = Principal("u3", "editor", via="jwt", sid="s3", issued_at=clock.now)
    rv.revoke_session("s3")
    assert rv.refuses_principal(other, clock.now)


def test_user_changed_revokes_only_what_a_token_rests_on() -> None:
    core = _core()
    access, _ = _login(core)
    user = core.users.get_by_email("ada@example.com")  # type: ignore[union-attr]
    assert user is not None
    renamed = core.users.update(user.id, first_name="Augusta")  # type: ignore[union-attr]
    run_sync(core.auth.user_changed(user, renamed))
    assert isinstance(_ask(core, access), Principal)  # a new name: the token stands
    demoted = core.users.update(user.id, role="viewer")  # type: ignore[union-attr]
    run_sync(core.auth.user_changed(user, demoted))
    assert _is_refused(_ask(core, access))
    # A token issued right after the change is not in the revoked millisecond.
    fresh, _ = _login(core)
    principal = _ask(core, fresh)
    assert isinstance(principal, Principal) and principal.role == "viewer"


# -- exact answers (each found by mutation testing: scripts/mutation.py) ------------------------
# Tokens minted, not logged in: no password hashing, so these tests, which every mutant of the
# token path runs, stay cheap.

USER = "5b0e2c4a-1d3f-4a6b-8c9d-0e1f2a3b4c5d"


def _quick(*, session: bool = False) -> tuple[TokenGuard, str]:
    """A core and an access token (of a live session, in session mode) as a login makes them."""
    core = TokenGuard(secret=SECRET, users=MemoryUserStore(), sessions=MemorySessionStore())
    now_ms = int(time.time() * 1000)
    refresh = FAMILY + "q" * 42
    claims: dict[str, Any] = {"id": USER, "sid": FAMILY, "iat_ms": now_ms, "iat": now_ms // 1000}
    if session:
        core.sessions.create(  # type: ignore[union-attr]
            SessionRecord(refresh_token_key(refresh), FAMILY, USER, now_ms + 3_600_000, now_ms)
        )
        claims["session"] = refresh
    return core, mint(**claims)



def test_the_channel_message_is_compact_json_after_the_mark() -> None:
    message = encode_entries([Entry("s", "fam-a", 1), Entry("u", "u1", 2)])
    assert message == '![["s","fam-a",1],["u","u1",2]]'


def test_a_window_member_names_its_entry() -> None:
    assert entry_from_member("s:fam-a", 7.0) == Entry("s", "fam-a", 7)
    assert entry_from_member("u:u1", 2.0) == Entry("u", "u1", 2)
    assert entry_from_member("S:fam-a", 7.0) is None


def test_the_length_counts_sessions_and_users() -> None:
    rv = Revocations(WINDOW, clock=Clock())
    rv.revoke_session("fam-a")
    rv.revoke_user("u1")
    rv.revoke_user("u2")
    assert len(rv) == 3


def test_prune_at_a_given_time_ignores_the_clock() -> None:
    clock = Clock()
    rv = Revocations(WINDOW, clock=clock)
    rv.revoke_session("fam-a")
    rv.prune(now=clock.now + WINDOW)
    assert len(rv) == 0


def test_the_stores_answer_refuses_what_the_registry_would() -> None:
    rv = Revocations(WINDOW, clock=Clock())
    # (session revoked at ms, user's not-before ms), issued at (s) -> refused?
    assert rv.refuses_stored((None, None), 10.0) is False
    assert rv.refuses_stored((5, None), 10.0) is True
    assert rv.refuses_stored((None, 10_000), 9.999) is True
    assert rv.refuses_stored((None, 10_000), 10.0) is False  # issued at the not-before: good
    assert rv.refuses_stored((None, 10_001), 10.0) is True
    assert rv.refuses_stored((None, 10_000), None) is True  # no iat: refused by any
    assert rv.refuses_stored((None, 10_000), 10.001) is False


def _untrusted(core: TokenGuard, check: Any) -> None:
    core.guard.revocations.trusted = False
    core.guard.revocations.check = check


def _answer(outcome: object) -> tuple[int, str, str, dict[str, Any], bool]:
    assert isinstance(outcome, Refusal), outcome
    error = outcome.error
    return error.status, error.code, error.message, error.extensions, outcome.clear_session_cookie


def test_untrusted_without_a_check_is_a_503_saying_why() -> None:
    core, access = _quick()
    core.guard.revocations.trusted = False  # and no check set: a registry's default
    assert _answer(_ask(core, access)) == (
        503,
        "SERVICE_UNAVAILABLE",
        'Service "redis" is unavailable. revocations not caught up.',
        {"service": "redis", "reason": "revocations not caught up"},
        False,
    )


def test_a_check_that_fails_oddly_is_a_503_and_a_warning_without_the_token(caplog: pytest.LogCaptureFixture) -> None:
    core, access = _quick()

    def broken(sid: str | None, user: str | None) -> tuple[int | None, int | None]:
        raise RuntimeError(f"unexpected reply for {access}")

    _untrusted(core, broken)
    with caplog.at_level(logging.WARNING, logger="tokenguard"):
        outcome = _ask(core, access)
    assert _answer(outcome) == (
        503,
        "SERVICE_UNAVAILABLE",
        'Service "redis" is unavailable. revocation check failed.',
        {"service": "redis", "reason": "revocation check failed"},
        False,
    )
    records = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "tokenguard"]
    assert records == [(logging.WARNING, "revocation check failed: RuntimeError")]
    assert access not in caplog.text


def test_the_stores_not_before_is_compared_with_the_tokens_millisecond() -> None:
    core, access = _quick()
    principal = _ask(core, access)
    assert isinstance(principal, Principal) and principal.issued_at is not None
    issued_ms = round(principal.issued_at * 1000)
    for not_before_ms, refused in ((issued_ms, False), (issued_ms + 1, True)):
        _untrusted(core, lambda sid, user, ms=not_before_ms: (None, ms))
        outcome = _ask(core, access)
        assert isinstance(outcome, Refusal) is refused, (not_before_ms, outcome)


def test_a_revoked_token_from_the_cookie_clears_the_cookie() -> None:
    core, access = _quick()
    _untrusted(core, lambda sid, user: (1, None))
    outcome = core.guard.authenticate(None, "", f"directus_session_token={access}")
    if isinstance(outcome, GeneratorType):
        outcome = run_sync(outcome)
    assert _answer(outcome) == (
        401,
        "INVALID_CREDENTIALS",
        "Invalid user credentials.",
        {},
        True,
    )
    # In the header, the same token refused leaves the cookie alone.
    assert _answer(_ask(core, access))[4] is False


# -- a dead session cookie: the reuse probe ----------------------------------------------------

FAMILY = "R" * 22
OLD = FAMILY + "o" * 42  # rotated away (its grace over)
NEW = FAMILY + "n" * 42  # what it was rotated into


def _rotated_away(store: Any) -> int:
    """``OLD`` rotated into ``NEW`` a second ago, without grace; returns now in ms."""
    now_ms = int(time.time() * 1000)
    expires = now_ms + 3_600_000
    store.create(SessionRecord(refresh_token_key(OLD), FAMILY, "u1", expires, now_ms - 2000))
    outcome = store.rotate(
        refresh_token_key(OLD),
        SessionRecord(refresh_token_key(NEW), FAMILY, "u1", expires, now_ms - 1000),
        now_ms=now_ms - 1000,
        grace_ms=0,
    )
    assert outcome.status == "rotated"
    return now_ms


def _session_guard(store: Any) -> Guard:
    return Guard(Settings(secret=SECRET), MemoryUserStore(), store)


def _present(guard: Guard, session: str) -> object:
    outcome = guard.authenticate(f"Bearer {mint(id='u1', session=session)}", "", None)
    return run_sync(outcome) if isinstance(outcome, GeneratorType) else outcome


def _reuse_revokes_the_family(store: Any) -> None:
    now_ms = _rotated_away(store)
    guard = _session_guard(store)
    assert _answer(_present(guard, OLD)) == (
        401, "INVALID_CREDENTIALS", "Invalid user credentials.", {}, False
    )
    # Someone held a copy of the old session: the whole session ends, its successor too,
    # and every access token of the family (sid) is refused from now on.
    assert store.get(refresh_token_key(NEW), now_ms) is None
    assert list(guard.revocations.sessions) == [FAMILY]
    assert _answer(_present(guard, NEW))[:2] == (401, "INVALID_CREDENTIALS")
    sid_token = mint(id="u1", sid=FAMILY)
    assert _answer(guard.authenticate(f"Bearer {sid_token}", "", None))[:2] == (
        401, "INVALID_CREDENTIALS"
    )


def test_a_rotated_away_session_presented_again_ends_the_session(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="tokenguard"):
        _reuse_revokes_the_family(MemorySessionStore())
    records = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "tokenguard"]
    assert records == [(logging.WARNING, "session cookie reused after rotation: session revoked")]
    assert OLD not in caplog.text and FAMILY not in caplog.text


def test_a_rotated_away_session_presented_again_ends_the_session_in_redis(
    redis_url: str, redis_prefix: str
) -> None:
    store = RedisSessionStore.from_url(redis_url, prefix=redis_prefix)
    try:
        _reuse_revokes_the_family(store)
    finally:
        store.close()


def test_an_unknown_session_is_refused_and_nothing_is_stored() -> None:
    store = MemorySessionStore()
    guard = _session_guard(store)
    assert _answer(_present(guard, FAMILY + "u" * 42)) == (
        401, "INVALID_CREDENTIALS", "Invalid user credentials.", {}, False
    )
    assert len(store) == 0 and len(guard.revocations) == 0


class LateSessions(MemorySessionStore):
    """A session that the store's read misses but its rotation finds live (a read replica
    behind, a clock apart): the race the probe must not turn into a live session."""

    def get(self, token_hash: str, now_ms: int) -> SessionRecord | None:
        return None


def test_a_session_live_again_at_the_probe_keeps_no_probe_and_is_ended() -> None:
    store = LateSessions()
    now_ms = int(time.time() * 1000)
    store.create(SessionRecord(refresh_token_key(OLD), FAMILY, "u1", now_ms + 3_600_000, now_ms))
    guard = _session_guard(store)
    assert _answer(_present(guard, OLD)) == (
        401, "INVALID_CREDENTIALS", "Invalid user credentials.", {}, False
    )
    # The probe rotated the live session: both are dropped (no successor nobody holds is
    # left live); it was no reuse, so no access token of the family is revoked here.
    assert len(store) == 0
    assert len(guard.revocations) == 0


# -- the registry's writes, exactly ------------------------------------------------------------


def test_a_revocation_at_a_given_time_is_recorded_at_that_time() -> None:
    rv = Revocations(WINDOW, clock=Clock())
    at = Clock().now - 10.0
    assert rv.revoke_session("fam-a", at=at) == Entry("s", "fam-a", int(at * 1000))
    assert rv.sessions == {"fam-a": at}
    # A user's not-before is rounded up to the millisecond.
    assert rv.revoke_user("u1", at=at + 0.0001) == Entry("u", "u1", int(at * 1000) + 1)
    assert rv.users == {"u1": (int(at * 1000) + 1) / 1000}


def test_announce_publishes_the_members_and_the_message() -> None:
    rv = Revocations(WINDOW, clock=Clock())
    published: list[tuple[list[tuple[str, int]], str]] = []
    rv.publish = lambda members, message: published.append((members, message))
    entries = [Entry("s", "fam-a", 1), Entry("u", "u1", 2)]
    run_sync(rv.announce(entries))
    assert published == [([("s:fam-a", 1), ("u:u1", 2)], '![["s","fam-a",1],["u","u1",2]]')]
    run_sync(rv.announce([]))  # nothing to tell
    assert len(published) == 1


def test_an_older_entry_in_a_batch_does_not_stop_the_later_ones() -> None:
    clock = Clock()
    rv = Revocations(WINDOW, clock=clock)
    now_ms = int(clock.now * 1000)
    rv.apply([Entry("u", "u1", now_ms)])
    rv.apply([Entry("u", "u1", now_ms - 1000), Entry("u", "u2", now_ms), Entry("s", "fam-a", now_ms)])
    assert rv.users == {"u1": now_ms / 1000, "u2": now_ms / 1000}
    assert rv.sessions == {"fam-a": now_ms / 1000}


def test_a_renewed_entry_outlives_its_first_window() -> None:
    clock = Clock()
    rv = Revocations(WINDOW, clock=clock)
    start = clock.now
    rv.revoke_user("u1", at=start)
    rv.revoke_user("u1", at=start + 100)  # the not-before moved on: its own window
    rv.prune(now=start + WINDOW)
    assert rv.users == {"u1": start + 100}
    rv.prune(now=start + 100 + WINDOW)
    assert rv.users == {}


# -- the guard's revocation checks on every path, exactly --------------------------------------


def _cookie(core: TokenGuard, token: str) -> object:
    outcome = core.guard.authenticate(None, "", f"directus_session_token={token}")
    return run_sync(outcome) if isinstance(outcome, GeneratorType) else outcome


REVOKED = (401, "INVALID_CREDENTIALS", "Invalid user credentials.", {}, False)
REVOKED_COOKIE = (401, "INVALID_CREDENTIALS", "Invalid user credentials.", {}, True)


def test_a_revoked_token_from_the_cookie_clears_it_on_every_path() -> None:
    core, access = _quick()
    principal = _cookie(core, access)
    assert isinstance(principal, Principal) and principal.sid is not None
    core.guard.revocations.revoke_session(principal.sid)
    assert _answer(_cookie(core, access)) == REVOKED_COOKIE  # the cached check
    assert _answer(_ask(core, access)) == REVOKED


def test_the_memo_never_answers_for_a_revoked_user_or_while_untrusted() -> None:
    core, access = _quick()
    raw = f"Bearer {access}"
    for _ in range(2):
        assert isinstance(_ask(core, access, raw), Principal)
    memo = core.guard.cached_bearer(raw, "")
    assert isinstance(memo, Principal) and memo.user is not None
    rv = core.guard.revocations
    rv.trusted = False
    assert core.guard.cached_bearer(raw, "") is None
    rv.trusted = True
    assert core.guard.cached_bearer(raw, "") == memo
    # A not-before older than the token refuses nothing: the memo still answers.
    assert memo.issued_at is not None
    rv.revoke_user(memo.user, at=memo.issued_at - 60)
    assert core.guard.cached_bearer(raw, "") == memo
    rv.revoke_user(memo.user)
    assert core.guard.cached_bearer(raw, "") is None
    assert _answer(_ask(core, access, raw)) == REVOKED


@pytest.mark.parametrize("revoke", ["session", "user"])
def test_a_session_mode_token_is_refused_once_revoked(revoke: str) -> None:
    core, access = _quick(session=True)
    principal = _cookie(core, access)
    assert isinstance(principal, Principal) and principal.via == "session"
    assert principal.sid is not None and principal.user is not None
    if revoke == "session":
        core.guard.revocations.revoke_session(principal.sid)
    else:
        core.guard.revocations.revoke_user(principal.user)
    assert _answer(_cookie(core, access)) == REVOKED_COOKIE
    assert _answer(_ask(core, access)) == REVOKED


def test_a_session_mode_token_while_untrusted_is_what_the_store_says() -> None:
    core, access = _quick(session=True)
    _untrusted(core, lambda sid, user: (None, None))
    principal = _cookie(core, access)
    assert isinstance(principal, Principal) and principal.via == "session"
    _untrusted(core, lambda sid, user: (1, None))
    assert _answer(_cookie(core, access)) == REVOKED_COOKIE
    assert _answer(_ask(core, access)) == REVOKED


def test_the_registry_keeps_the_guards_clock() -> None:
    # A guard on another clock (a test's, a replay's): a revocation made "now" is its now.
    later = time.time() + 10 * 365 * 86_400.0
    guard = Guard(Settings(secret=SECRET), MemoryUserStore(), MemorySessionStore(), clock=lambda: later)
    token = mint(id="u1", iat=int(later) - 10, exp=int(later) + 600)
    assert isinstance(guard.authenticate(f"Bearer {token}", "", None), Principal)
    guard.revocations.revoke_user("u1")
    assert _answer(guard.authenticate(f"Bearer {token}", "", None)) == REVOKED


def test_each_privilege_change_names_its_field_and_two_factor_only_when_removed() -> None:
    from dataclasses import replace

    changed = {
        "role": "viewer",
        "admin_access": True,
        "app_access": False,
        "status": "suspended",
        "password_hash": "$argon2id$new",
    }
    assert PRIVILEGE_FIELDS == ("role", "admin_access", "app_access", "status", "password_hash")
    for name, value in changed.items():
        assert revoking_change(_BEFORE, replace(_BEFORE, **{name: value})) == name
    # Two at once: the first in PRIVILEGE_FIELDS' order.
    assert revoking_change(_BEFORE, replace(_BEFORE, status="draft", role=None)) == "role"
    assert revoking_change(_BEFORE, replace(_BEFORE, tfa_secret=None)) == "tfa_secret"
    assert revoking_change(_BEFORE, replace(_BEFORE, tfa_secret="")) == "tfa_secret"
    # A new TOTP secret, or two-factor turned on: the tokens stand.
    assert revoking_change(_BEFORE, replace(_BEFORE, tfa_secret="sealed-again")) is None
    without = replace(_BEFORE, tfa_secret=None)
    assert revoking_change(without, _BEFORE) is None
    assert revoking_change(without, without) is None
    assert revoking_change(_BEFORE, replace(_BEFORE, email="ada@elsewhere.example")) is None
    assert revoking_change(_BEFORE, None) == "deleted"


def test_an_open_connection_learning_late_of_a_revocation_goes_by_its_tokens_issue_time() -> None:
    # The revocation was made elsewhere before the connection authenticated, and reaches this
    # process after (a feed catching up): the token, issued before it, is void all the same.
    clock = Clock()
    rv = Revocations(WINDOW, clock=clock)
    jwt = Principal("u1", "editor", via="jwt", sid="s1", issued_at=clock.now - 5)
    rv.revoke_user("u1", at=clock.now - 2)
    assert rv.refuses_principal(jwt, clock.now - 1)
    # A token issued after it stands, whenever the connection authenticated.
    later = Principal("u1", "editor", via="jwt", sid="s1", issued_at=clock.now - 1.5)
    assert not rv.refuses_principal(later, clock.now - 3)


def test_an_open_connection_without_a_user_is_refused_by_its_revoked_session() -> None:
    # A JWT may carry a sid and no id (check_claims allows it): the request path refuses it
    # once its session is revoked (Guard._unrevoked), so an open connection must end too.
    core, _ = _quick()
    token = mint(id=DROP, sid="s9-family-0000000000000")
    principal = _ask(core, token)
    assert isinstance(principal, Principal) and principal.user is None
    rv = core.guard.revocations
    since = time.time()
    rv.revoke_user("u1")
    assert not rv.refuses_principal(principal, since)
    rv.revoke_session("s9-family-0000000000000")
    assert _is_refused(_ask(core, token))
    assert rv.refuses_principal(principal, since)
    assert not rv.refuses_principal(Principal(None, None), since)


def test_an_entry_applied_again_wakes_nobody_and_a_failing_listener_is_logged_by_type(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    rv = Revocations(WINDOW, clock=clock)
    heard: list[int] = []
    rv.listeners.append(lambda: heard.append(rv.version))
    entry = rv.revoke_user("u1")
    session = rv.revoke_session("s1")
    assert heard == [1, 2] and rv.version == 2
    # The same times again (a feed's catch-up repeating what this process made): nothing new.
    rv.apply([entry, session])
    assert heard == [1, 2] and rv.version == 2

    def broken() -> None:
        raise RuntimeError("a listener's bug, with a token-xyz in it")

    rv.listeners.insert(0, broken)
    with caplog.at_level(logging.ERROR, logger="tokenguard.guard"):
        rv.revoke_user("u2")
    assert heard == [1, 2, 3] and rv.version == 3
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        ("tokenguard.guard", logging.ERROR, "revocation listener failed: RuntimeError")
    ]


def test_a_refresh_in_the_revoked_millisecond_waits_it_out(monkeypatch: pytest.MonkeyPatch) -> None:
    # A role change revokes the user at a not-before time rounded up to the millisecond; a
    # refresh in that same millisecond would issue a token refused at once (a realtime
    # socket's refresh then fails as a whole and its refresh token is gone). It waits instead.
    from tokenguard.auth.service import ClientInfo

    now = [1_800_000_000.0002]
    users = MemoryUserStore()
    ada = create_user(users, "ada@example.com", password="correct horse", role="editor")
    core = TokenGuard(
        secret=SECRET, users=users, sessions=MemorySessionStore(), login_stall_ms=0,
        clock=lambda: now[0],
    )
    core.guard.revocations.clock = lambda: now[0]
    _, refresh = _login(core)
    users.update(ada.id, role="viewer")
    core.guard.revocations.revoke_user(ada.id)  # not before 1_800_000_000.001
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    monkeypatch.setattr(time, "sleep", sleep)
    tokens = run_sync(core.auth.refresh(refresh, "json", ClientInfo()))
    assert slept and now[0] >= 1_800_000_000.001
    principal = _ask(core, tokens.access_token)
    assert isinstance(principal, Principal) and principal.role == "viewer"


def _login_while(core: TokenGuard, change: Any) -> Any:
    """Log ada in with ``change`` made while her password is being checked (an admin in
    another request, another process); the tokens, or the error raised."""
    from tokenguard.auth.service import ClientInfo, Credentials

    verify = core.auth.passwords.verify

    def verify_during_a_change(password_hash: str | None, password: str) -> bool:
        ok = verify(password_hash, password)
        change()
        return ok

    core.auth.passwords.verify = verify_during_a_change  # type: ignore[method-assign]
    try:
        return run_sync(
            core.auth.login(
                Credentials("ada@example.com", "correct horse"), "json", ClientInfo(), 0.0
            )
        )
    except Exception as error:
        return error


def _live_sessions(core: TokenGuard, user_id: str) -> int:
    return len(core.auth.sessions.sessions(user_id, int(time.time() * 1000)))


def test_a_role_taken_away_during_a_login_is_not_in_its_token() -> None:
    # The user was read before the password check; her role changed (and her tokens until
    # then were revoked, as user_changed does) before the token was issued. The login goes
    # on with the user read again: the token carries the new role and is accepted.
    core = _core()
    ada = core.auth.users.get_by_email("ada@example.com")
    assert ada is not None

    def demote() -> None:
        core.auth.users.update(ada.id, role="viewer")
        core.guard.revocations.revoke_user(ada.id)

    tokens = _login_while(core, demote)
    principal = _ask(core, tokens.access_token)
    assert isinstance(principal, Principal) and principal.role == "viewer"
    assert _live_sessions(core, ada.id) == 1


@pytest.mark.parametrize(
    "change",
    [{"password_hash": "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaA"}, {"status": "suspended"}],
    ids=["password changed", "suspended"],
)
def test_a_login_that_raced_a_change_of_its_credentials_is_refused(
    change: dict[str, str],
) -> None:
    # `users set-password` (or suspend) ends every session and revokes the user; the login
    # that verified the old password meanwhile must not come out with a session of its own.
    from tokenguard.errors import AuthError

    core = _core()
    ada = core.auth.users.get_by_email("ada@example.com")
    assert ada is not None

    def set_password() -> None:
        core.auth.users.update(ada.id, **change)
        core.auth.sessions.revoke_user(ada.id)
        core.guard.revocations.revoke_user(ada.id)

    error = _login_while(core, set_password)
    assert isinstance(error, AuthError)
    assert (error.status, error.code) == (401, "INVALID_CREDENTIALS")
    assert _live_sessions(core, ada.id) == 0


def test_a_revocation_heard_while_the_session_is_written_ends_it() -> None:
    # Another process revoked the user after this one read her again and before it issued:
    # the session just written is ended and the login refused, never a token out of date.
    from tokenguard.errors import AuthError

    core = _core()
    ada = core.auth.users.get_by_email("ada@example.com")
    assert ada is not None
    create = core.auth.sessions.create

    def create_then_hear_a_revocation(record: SessionRecord) -> None:
        create(record)
        core.guard.revocations.revoke_user(ada.id)  # as the feed applies an announcement

    core.auth.sessions.create = create_then_hear_a_revocation  # type: ignore[method-assign]
    from tokenguard.auth.service import ClientInfo, Credentials

    with pytest.raises(AuthError) as raised:
        run_sync(
            core.auth.login(
                Credentials("ada@example.com", "correct horse"), "json", ClientInfo(), 0.0
            )
        )
    assert (raised.value.status, raised.value.code) == (401, "INVALID_CREDENTIALS")
    assert _live_sessions(core, ada.id) == 0


def test_a_login_with_no_revocation_of_its_user_reads_the_user_once() -> None:
    core = _core()
    reads: list[str] = []
    get_by_id = core.auth.users.get_by_id

    def counted(user_id: str) -> User | None:
        reads.append(user_id)
        return get_by_id(user_id)

    core.auth.users.get_by_id = counted  # type: ignore[method-assign]
    core.guard.revocations.revoke_user("someone-else")
    access, _ = _login(core)
    assert reads == []
    assert isinstance(_ask(core, access), Principal)


def test_a_user_revoked_again_and_again_holds_a_bounded_heap() -> None:
    # Each revocation of the same user pushes an expiry item; once the outdated ones make the
    # heap longer than twice the entries plus the slack, it is rebuilt from the tables. What
    # it says stays right: the session and the user go exactly when their windows pass.
    from tokenguard.guard import revocation as module

    assert module._HEAP_SLACK == 1024
    now = [1_800_000_000.0]
    rv = Revocations(100.0, session_window_s=10.0, clock=lambda: now[0])
    rv.revoke_session("s-early")  # at 1_800_000_000.0: goes at + 10 s
    sizes = []
    for _ in range(2 * 1024 + 10):
        now[0] += 0.001
        rv.revoke_user("ada")
        sizes.append(len(rv._expiry))
    limit = 2 * 2 + 1024  # two entries held
    # Grows one item a revocation up to the limit, and is rebuilt to the two live items the
    # revocation after, again and again.
    assert sizes == ([*range(2, limit + 1)] * 3)[: len(sizes)]
    assert len(rv) == 2
    last = rv.users["ada"]
    assert rv.refuses(None, "ada", last - 0.001) and not rv.refuses(None, "ada", last)
    now[0] = 1_800_000_000.0 + 10.0 - 0.0001
    rv.prune()
    assert "s-early" in rv.sessions
    now[0] = 1_800_000_000.0 + 10.0
    rv.prune()
    assert "s-early" not in rv.sessions and "ada" in rv.users
    now[0] = last + 100.0 - 0.0001
    rv.prune()
    assert "ada" in rv.users
    now[0] = last + 100.0
    rv.prune()
    assert len(rv) == 0 and rv._expiry == []


def test_a_login_token_is_dated_as_of_the_read_and_lives_its_ttl_from_the_issue() -> None:
    # iat/iat_ms say when the user was read (a change since then refuses the token); exp
    # counts ACCESS_TOKEN_TTL from the issue, as the answer's `expires` does: dated by the
    # read, a 3 s token of a login whose hash took 0.8 s expired before its client expected.
    import jwt as pyjwt

    from tokenguard.auth.service import ClientInfo, Credentials

    now = [1_800_000_000.6]
    users = MemoryUserStore()
    create_user(users, "ada@example.com", password="correct horse", role="editor")
    core = TokenGuard(
        secret=SECRET,
        users=users,
        sessions=MemorySessionStore(),
        login_stall_ms=0,
        access_token_ttl_ms=3_000,
        clock=lambda: now[0],
    )
    verify = core.auth.passwords.verify

    def slow_verify(password_hash: str | None, password: str) -> bool:
        now[0] += 0.8  # the hash takes its time: the clock crosses a second
        return verify(password_hash, password)

    core.auth.passwords.verify = slow_verify  # type: ignore[method-assign]
    tokens = run_sync(
        core.auth.login(Credentials("ada@example.com", "correct horse"), "json", ClientInfo(), 0.0)
    )
    claims = pyjwt.decode(tokens.access_token, options={"verify_signature": False})
    assert claims["iat_ms"] == 1_800_000_000_600 and claims["iat"] == 1_800_000_000
    assert claims["exp"] == 1_800_000_001 + 3 and tokens.expires_ms == 3_000
