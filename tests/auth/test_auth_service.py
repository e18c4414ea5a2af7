"""The login / refresh / logout flows over every store backend, driven sync and async."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import jwt
import pyotp
import pytest
from anyio.from_thread import start_blocking_portal

from tests.helpers.auth import EMAIL, FAST, PASSWORD, ROLE, SECRET, USER_ID, Clock, make_user
from tokenguard.auth.passwords import Passwords, hash_password, verify_password
from tokenguard.auth.refresh_tokens import RefreshTokens, is_refresh_token
from tokenguard.auth.service import AuthService, ClientInfo, Credentials, Tokens
from tokenguard.config import Settings
from tokenguard.errors import AuthError
from tokenguard.flow import Call, Sleep, run_async, run_sync
from tokenguard.stores.base import StoreUnavailable, refresh_token_key
from tokenguard.stores.memory import MemorySessionStore, MemoryUserStore

CLIENT = ClientInfo("203.0.113.7", "pytest-agent", "https://app.example")


class Driver:
    """Runs flows the way one of the shells would."""

    def __init__(self, run: Any) -> None:
        self.run = run


def open_sessions(
    backend: str, stack: ExitStack, tmp_path: Path, request: Any
) -> tuple[Any, Driver]:
    if backend == "memory":
        return MemorySessionStore(), Driver(run_sync)
    if backend == "sqlite":
        from tokenguard.stores.sqlite import SQLiteSessionStore

        store = SQLiteSessionStore(tmp_path / "sessions.db")
        stack.callback(store.close)
        return store, Driver(run_sync)
    url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_prefix")
    if backend == "redis":
        from tokenguard.stores.redis import RedisSessionStore

        redis_store = RedisSessionStore.from_url(url, prefix=prefix)
        stack.callback(redis_store.close)
        return redis_store, Driver(run_sync)
    from tokenguard.stores.redis import AsyncRedisSessionStore

    portal = stack.enter_context(start_blocking_portal())
    async_store = AsyncRedisSessionStore.from_url(url, prefix=prefix)
    stack.callback(portal.call, async_store.aclose)
    return async_store, Driver(lambda flow: portal.call(functools.partial(run_async, flow)))


@pytest.fixture(params=["memory", "sqlite", "redis", "redis-async"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    backend = request.param
    if backend.startswith("redis"):
        request.applymarker(pytest.mark.redis)
    with ExitStack() as stack:
        sessions, driver = open_sessions(backend, stack, tmp_path, request)
        users = MemoryUserStore()
        users.create(make_user())
        # Redis expires keys on its own clock: start at the real time.
        clock = Clock(time.time())
        settings = Settings(secret=SECRET, login_stall_ms=0)
        service = AuthService(settings, users, sessions, clock=clock, passwords=FAST)
        yield _Env(service, driver, users, sessions, clock)


class _Env:
    def __init__(
        self, service: AuthService, driver: Driver, users: Any, sessions: Any, clock: Clock
    ):
        self.service, self.driver, self.users, self.sessions, self.clock = (
            service,
            driver,
            users,
            sessions,
            clock,
        )

    def login(
        self,
        mode: str = "json",
        password: str = PASSWORD,
        email: str = EMAIL,
        otp: str | None = None,
    ) -> Tokens:
        flow = self.service.login(Credentials(email, password, otp), mode, CLIENT, time.monotonic())  # type: ignore[arg-type]
        return self.driver.run(flow)  # type: ignore[no-any-return]

    def refresh(self, token: Any, mode: str = "json") -> Tokens:
        return self.driver.run(self.service.refresh(token, mode, CLIENT))  # type: ignore[arg-type,no-any-return]

    def logout(self, token: Any) -> None:
        self.driver.run(self.service.logout(token))

    def error(self, fn: Any, *args: Any, **kwargs: Any) -> AuthError:
        with pytest.raises(AuthError) as info:
            fn(*args, **kwargs)
        return info.value

    def claims(self, token: str) -> dict[str, Any]:
        return jwt.decode(
            token,
            SECRET,
            algorithms=["HS256"],
            issuer="directus",
            options={"verify_exp": False, "verify_iat": False},
        )


# -- login --------------------------------------------------------------------------------------


def test_login_json_issues_directus_tokens_and_records_the_session(env: _Env) -> None:
    tokens = env.login("json")
    assert tokens.mode == "json" and tokens.expires_ms == 900_000
    assert is_refresh_token(tokens.refresh_token)
    claims = env.claims(tokens.access_token)
    now = int(env.clock.now)
    assert claims == {
        "id": USER_ID,
        "role": ROLE,
        "app_access": True,
        "admin_access": False,
        # The session the token belongs to (its family, never the refresh token itself).
        "sid": tokens.refresh_token[:22],
        "iat": now,
        "iat_ms": int(env.clock.now * 1000),
        "exp": now + 900,
        "iss": "directus",
    }
    assert list(claims) == [
        "id", "role", "app_access", "admin_access", "sid", "iat", "iat_ms", "exp", "iss"
    ]
    record = env.driver.run(_get(env, tokens.refresh_token))
    assert record is not None
    assert record.user_id == USER_ID
    assert record.family == tokens.refresh_token[:22]
    assert record.expires_at_ms == int(env.clock.now * 1000) + 7 * 86_400_000
    assert (record.ip, record.user_agent, record.origin) == (
        "203.0.113.7",
        "pytest-agent",
        "https://app.example",
    )


def _get(env: _Env, token: str) -> Any:
    return (yield Call(env.sessions.get, (refresh_token_key(token), int(env.clock.now * 1000))))


def test_login_session_mode_puts_the_refresh_token_in_a_one_day_jwt(env: _Env) -> None:
    tokens = env.login("session")
    assert tokens.expires_ms == 86_400_000
    claims = env.claims(tokens.access_token)
    assert claims["session"] == tokens.refresh_token
    assert claims["exp"] - claims["iat"] == 86_400
    # The row itself starts with REFRESH_TOKEN_TTL, as in Directus.
    record = env.driver.run(_get(env, tokens.refresh_token))
    assert record.expires_at_ms == int(env.clock.now * 1000) + 7 * 86_400_000


def test_email_is_matched_case_insensitively(env: _Env) -> None:
    assert env.login(email="ADA@Example.COM").mode == "json"


@pytest.mark.parametrize(
    "change",
    [
        {"status": "suspended"},
        {"status": "invited"},
        {"status": "archived"},
        {"provider": "github"},
        {"password_hash": None},
        {"password_hash": "not-an-argon2-hash"},
    ],
)
def test_unusable_accounts_are_indistinguishable_from_a_wrong_password(
    env: _Env, change: dict[str, Any]
) -> None:
    wrong = env.error(env.login, password="wrong password")
    env.users.update(USER_ID, **change)
    refused = env.error(env.login)
    assert refused == wrong
    assert refused.body == wrong.body
    assert (refused.status, refused.code) == (401, "INVALID_CREDENTIALS")


def test_unknown_user_costs_an_argon2_verification(env: _Env) -> None:
    calls: list[str] = []
    passwords = env.service.passwords
    original = passwords.burn
    passwords.burn = lambda password: (calls.append("burn"), original(password))[1]  # type: ignore[method-assign]
    try:
        error = env.error(env.login, email="nobody@example.com")
    finally:
        passwords.burn = original  # type: ignore[method-assign]
    assert error.code == "INVALID_CREDENTIALS"
    assert calls == ["burn"]


def test_two_factor_users_need_a_valid_current_code(env: _Env) -> None:
    import time

    # Codes are checked against the current 30 s step only (window 0, as Directus): start
    # early in a step, so that a loaded machine cannot carry the last login into the next.
    left = 30 - time.time() % 30
    if left < 5:
        time.sleep(left + 0.05)
    secret = pyotp.random_base32()
    env.users.update(USER_ID, tfa_secret=secret)
    assert env.error(env.login).code == "INVALID_OTP"
    assert (
        env.error(
            env.login, otp="000000" if pyotp.TOTP(secret).now() != "000000" else "111111"
        ).code
        == "INVALID_OTP"
    )
    assert env.error(env.login, otp="12345").code == "INVALID_OTP"
    # The password is checked first: a wrong one with a right code is still bad credentials.
    code = pyotp.TOTP(secret).now()
    assert env.error(env.login, password="nope", otp=code).code == "INVALID_CREDENTIALS"
    assert env.login(otp=pyotp.TOTP(secret).now()).mode == "json"


def test_login_stall_applies_to_failures_and_success() -> None:
    """The flow asks for a pause of whatever is left of LOGIN_STALL_TIME (no real sleeping)."""
    ticks = iter([10.0, 10.2])  # started=10.0 is passed in; then one reading at the end
    users = MemoryUserStore()
    users.create(make_user())
    settings = Settings(secret=SECRET, login_stall_ms=500)
    service = AuthService(
        settings, users, MemorySessionStore(), monotonic=lambda: next(ticks), passwords=FAST
    )

    def steps(password: str) -> list[Any]:
        flow = service.login(Credentials(EMAIL, password), "json", CLIENT, next(ticks))
        seen: list[Any] = []
        send: Any = None
        try:
            while True:
                step = flow.send(send)
                seen.append(step)
                send = None if isinstance(step, Sleep) else step.fn(*step.args, **step.kwargs)
        except StopIteration:
            return seen
        except AuthError:
            return seen

    failed = steps("wrong")
    assert isinstance(failed[-1], Sleep) and failed[-1].seconds == pytest.approx(0.3)
    ticks = iter([20.0, 20.0])
    succeeded = steps(PASSWORD)
    assert isinstance(succeeded[-1], Sleep) and succeeded[-1].seconds == pytest.approx(0.5)
    ticks = iter([30.0, 31.0])  # already slower than the stall: no extra pause
    assert not any(isinstance(s, Sleep) for s in steps("wrong"))


def test_a_throttled_login_is_a_tarpit_pause_an_event_loop_waits_and_wsgi_skips(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The 429 of the per-account limit comes after the stall where waiting is free (an
    event loop: a flood's clients cannot spin on instant refusals) and at once under WSGI
    (a waiting thread per request of the flood is what a throttle must not cost)."""
    import asyncio

    now = [100.0]
    users = MemoryUserStore()
    users.create(make_user())
    settings = Settings(secret=SECRET, login_stall_ms=500, login_account_points=1)
    service = AuthService(
        settings, users, MemorySessionStore(), monotonic=lambda: now[0], passwords=FAST
    )

    def attempt() -> tuple[AuthError, list[Any]]:
        flow = service.login(Credentials(EMAIL, "wrong"), "json", CLIENT, now[0])
        seen: list[Any] = []
        send: Any = None
        try:
            while True:
                step = flow.send(send)
                seen.append(step)
                send = None if isinstance(step, Sleep) else step.fn(*step.args, **step.kwargs)
        except AuthError as error:
            return error, seen
        raise AssertionError("the login succeeded")

    first, _ = attempt()
    assert first.code == "INVALID_CREDENTIALS"
    throttled, steps = attempt()
    assert (throttled.status, throttled.code) == (429, "REQUESTS_EXCEEDED")
    assert steps[-1] == Sleep(0.5, tarpit=True)
    # The password was never checked: nothing but the limit, the audit and the pause ran.
    assert not any(isinstance(s, Call) and s.blocking for s in steps)

    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)

    def tarpit_then(value: str) -> Any:
        yield Sleep(0.5, tarpit=True)
        yield Sleep(0.25)
        return value

    assert run_sync(tarpit_then("sync")) == "sync"
    assert slept == [0.25]  # the tarpit pause skipped, the stall kept

    waited: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waited.append(seconds)

    import anyio

    monkeypatch.setattr(anyio, "sleep", fake_sleep)
    assert asyncio.run(run_async(tarpit_then("async"))) == "async"
    assert waited == [0.5, 0.25]


# -- refresh ------------------------------------------------------------------------------------


def test_json_refresh_rotates_and_reuse_revokes_the_whole_session(env: _Env) -> None:
    first = env.login()
    second = env.refresh(first.refresh_token)
    assert second.refresh_token != first.refresh_token
    assert second.refresh_token[:22] == first.refresh_token[:22]
    assert env.refresh(second.refresh_token, "json").refresh_token  # the new one works
    third_source = env.login()
    rotated = env.refresh(third_source.refresh_token)
    # Presenting the rotated-away token: Directus's 401, and the session is gone.
    reused = env.error(env.refresh, third_source.refresh_token)
    assert (reused.status, reused.code) == (401, "INVALID_CREDENTIALS")
    gone = env.error(env.refresh, rotated.refresh_token)
    assert gone.code == "INVALID_CREDENTIALS"


def test_cookie_refresh_has_no_grace(env: _Env) -> None:
    tokens = env.login("cookie")
    env.refresh(tokens.refresh_token, "cookie")
    assert env.error(env.refresh, tokens.refresh_token, "cookie").code == "INVALID_CREDENTIALS"


def test_session_refresh_converges_within_the_grace_period(env: _Env) -> None:
    tokens = env.login("session")
    a = env.refresh(tokens.refresh_token, "session")
    env.clock.advance(5)
    b = env.refresh(tokens.refresh_token, "session")
    assert a.refresh_token == b.refresh_token
    assert env.claims(b.access_token)["session"] == a.refresh_token
    assert env.claims(b.access_token)["exp"] - env.claims(b.access_token)["iat"] == 86_400
    # The new session row lives SESSION_COOKIE_TTL from this refresh.
    record = env.driver.run(_get(env, a.refresh_token))
    assert record.expires_at_ms == int(env.clock.now * 1000) + 86_400_000
    # Outside the grace, the old token is a stolen one: refused, and the session revoked.
    env.clock.advance(6)
    assert env.error(env.refresh, tokens.refresh_token, "session").code == "INVALID_CREDENTIALS"
    assert env.error(env.refresh, a.refresh_token, "session").code == "INVALID_CREDENTIALS"


def test_refresh_of_a_suspended_user_revokes_the_session(env: _Env) -> None:
    tokens = env.login()
    env.users.update(USER_ID, status="suspended")
    error = env.error(env.refresh, tokens.refresh_token)
    assert (error.status, error.code, error.message) == (401, "USER_SUSPENDED", "User suspended.")
    env.users.update(USER_ID, status="active")
    assert env.error(env.refresh, tokens.refresh_token).code == "INVALID_CREDENTIALS"


def test_refresh_of_a_deleted_user_is_refused(env: _Env) -> None:
    tokens = env.login()
    env.users.delete(USER_ID)
    assert env.error(env.refresh, tokens.refresh_token).code == "INVALID_CREDENTIALS"


def test_refresh_carries_role_changes(env: _Env) -> None:
    tokens = env.login()
    env.users.update(USER_ID, role="new-role", admin_access=True)
    claims = env.claims(env.refresh(tokens.refresh_token).access_token)
    assert (claims["role"], claims["admin_access"]) == ("new-role", True)


def test_expired_refresh_token_is_refused(env: _Env) -> None:
    tokens = env.login()
    env.clock.advance(7 * 86_400 + 1)
    assert env.error(env.refresh, tokens.refresh_token).code == "INVALID_CREDENTIALS"


class ExplodingSessions:
    """Any call is a failure of the test: malformed tokens must never reach a store."""

    io_bound = False

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"store.{name} called")


@pytest.mark.parametrize(
    "token",
    ["", "short", "x" * 63, "x" * 65, "!" * 64, "é" * 64, 12345, None, ["x" * 64], {"a": 1}],
)
def test_malformed_refresh_tokens_never_reach_the_store(token: Any) -> None:
    settings = Settings(secret=SECRET, login_stall_ms=0)
    service = AuthService(settings, MemoryUserStore(), ExplodingSessions(), passwords=FAST)  # type: ignore[arg-type]
    with pytest.raises(AuthError) as info:
        run_sync(service.refresh(token, "json", CLIENT))
    assert info.value.code == "INVALID_CREDENTIALS"
    assert run_sync(service.logout(token)) is None


# -- logout -------------------------------------------------------------------------------------


def test_logout_revokes_and_is_idempotent(env: _Env) -> None:
    tokens = env.login()
    env.logout(tokens.refresh_token)
    assert env.error(env.refresh, tokens.refresh_token).code == "INVALID_CREDENTIALS"
    env.logout(tokens.refresh_token)  # a dead token: no error
    env.logout(RefreshTokens.new())  # an unknown one: no error


def test_logout_with_a_rotated_away_token_ends_the_session(env: _Env) -> None:
    tokens = env.login()
    newer = env.refresh(tokens.refresh_token)
    env.logout(tokens.refresh_token)
    assert env.error(env.refresh, newer.refresh_token).code == "INVALID_CREDENTIALS"


# -- unavailable stores -------------------------------------------------------------------------


class DownSessions:
    io_bound = False

    def __init__(self, error: Exception) -> None:
        self.error = error

    def _fail(self, *args: Any, **kwargs: Any) -> Any:
        raise self.error

    create = get = rotate = revoke = revoke_user = _fail


@pytest.mark.parametrize(
    ("error", "service_name", "reason"),
    [
        (
            StoreUnavailable("redis", "Timeout reading from socket"),
            "redis",
            "Timeout reading from socket",
        ),
        (ConnectionResetError("boom"), "database", "Couldn't reach the store"),
    ],
)
def test_a_store_that_cannot_answer_is_a_503_never_an_acceptance(
    error: Exception, service_name: str, reason: str
) -> None:
    users = MemoryUserStore()
    users.create(make_user())
    good = AuthService(
        Settings(secret=SECRET, login_stall_ms=0), users, MemorySessionStore(), passwords=FAST
    )
    token = run_sync(good.login(Credentials(EMAIL, PASSWORD), "json", CLIENT, 0.0)).refresh_token
    down = AuthService(
        Settings(secret=SECRET, login_stall_ms=0),
        users,
        DownSessions(error),
        passwords=FAST,  # type: ignore[arg-type]
    )
    expected = {
        "message": f'Service "{service_name}" is unavailable. {reason}.',
        "extensions": {"service": service_name, "reason": reason, "code": "SERVICE_UNAVAILABLE"},
    }
    for flow in (
        down.login(Credentials(EMAIL, PASSWORD), "json", CLIENT, 0.0),
        down.refresh(token, "json", CLIENT),
        down.refresh(token, "session", CLIENT),
        down.logout(token),
    ):
        with pytest.raises(AuthError) as info:
            run_sync(flow)
        assert info.value.status == 503
        assert info.value.to_dict() == expected


# -- pieces ---------------------------------------------------------------------------------------


def test_successors_are_derived_from_the_secret_and_keep_the_family() -> None:
    tokens = RefreshTokens(SECRET.encode())
    token = tokens.new()
    assert is_refresh_token(token)
    nxt = tokens.successor(token)
    assert is_refresh_token(nxt) and nxt[:22] == token[:22] and nxt != token
    assert tokens.successor(token) == nxt
    assert RefreshTokens(b"another-secret-of-enough-length-0123456789").successor(token) != nxt
    assert len({RefreshTokens.new()[:22] for _ in range(200)}) == 200


def test_passwords_are_argon2id_and_never_crash() -> None:
    stored = FAST.hash(PASSWORD)
    assert stored.startswith("$argon2id$")
    assert FAST.verify(stored, PASSWORD)
    assert not FAST.verify(stored, PASSWORD + " ")
    assert not FAST.verify(None, PASSWORD)
    assert not FAST.verify("garbage", PASSWORD)
    odd = "\ud800 lone surrogate"
    assert FAST.verify(FAST.hash(odd), odd)
    assert not FAST.needs_rehash(stored)
    assert Passwords().needs_rehash(stored)  # cheaper parameters than the defaults
    default = hash_password("pw")
    assert default.startswith("$argon2id$") and verify_password(default, "pw")


def test_a_json_twin_that_read_the_clock_first_is_still_reuse(env: _Env) -> None:
    """Concurrent twins: one read the clock a millisecond before the winner rotated."""
    tokens = env.login()
    winner = env.refresh(tokens.refresh_token)
    env.clock.advance(-0.001)
    assert env.error(env.refresh, tokens.refresh_token).code == "INVALID_CREDENTIALS"
    env.clock.advance(0.001)
    assert env.error(env.refresh, winner.refresh_token).code == "INVALID_CREDENTIALS"
