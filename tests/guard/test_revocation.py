"""Revoked access tokens: the per-process registry, and the guard refusing what it names."""

from __future__ import annotations

import time
from types import GeneratorType
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers.tokens import SECRET
from tokenguard.app import TokenGuard
from tokenguard.flow import run_sync
from tokenguard.guard.decide import Refusal
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
from tokenguard.stores.base import StoreUnavailable, User
from tokenguard.stores.memory import MemorySessionStore, MemoryUserStore
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
