"""The decision, case by case: each request and the exact answer it gets.

Fixed cases, one per line of :mod:`tokenguard.guard.decide` that a mutation run found
unguarded (issue 31). They go through both middlewares (tests/security/harness.py) wherever
the behaviour shows there, so that they hold whatever the pipeline between the shell and the
guard looks like; the guard is asked directly only about what the edge cannot show (how long
a cache entry lives).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from types import GeneratorType
from typing import Any

import pytest

from tests.helpers.auth import NOW, Clock, error_body
from tests.helpers.tokens import DROP, mint
from tests.jose.test_keys import keys_json
from tests.jose.test_keys_remote import Issuer
from tests.security.harness import (
    INVALID_CREDENTIALS,
    INVALID_TOKEN,
    SECRET,
    TOKEN_EXPIRED,
    Shell,
    make_core,
)
from tokenguard.app import TokenGuard
from tokenguard.config import Settings, token_policy
from tokenguard.flow import Call
from tokenguard.guard.decide import Guard
from tokenguard.jose.tokens import hash_token, issue_access_token
from tokenguard.principal import Principal
from tokenguard.stores.base import SessionRecord, StoreUnavailable, User, refresh_token_key
from tokenguard.stores.memory import MemorySessionStore, MemoryUserStore
from tokenguard.stores.redis import RedisSessionStore

KINDS = ["asgi", "wsgi"]
COOKIE = "directus_session_token"
CLEAR_COOKIE = (
    "directus_session_token=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; "
    "HttpOnly; SameSite=Lax"
)
TWO_METHODS_BODY = error_body(
    "INVALID_PAYLOAD",
    "Invalid payload. The request uses more than one method for including an access token.",
    reason="The request uses more than one method for including an access token",
)
DB_DOWN = error_body(
    "SERVICE_UNAVAILABLE",
    'Service "database" is unavailable. locked.',
    service="database",
    reason="locked",
)
JWT_USER = "8f0c2b1e-4c5d-4e6f-9a0b-1c2d3e4f5a6b"  # tests.helpers.tokens.claims()
STATIC_64 = "st4t1c-" + "Q" * 57  # exactly 64 characters, the smallest limit allowed
assert len(STATIC_64) == 64

ShellOf = Callable[..., Shell]


def robot(token: str = STATIC_64) -> User:
    return User(id="u-robot", email="robot@example.com", role="robot", app_access=True, token_hash=hash_token(token))


class CountingUsers(MemoryUserStore):
    """The memory store, counting static-token lookups and the threads they ran on."""

    def __init__(self, *, io_bound: bool = False) -> None:
        super().__init__()
        self.io_bound = io_bound
        self.lookups = 0
        self.threads: list[int] = []

    def get_by_token_hash(self, token_hash: str) -> User | None:
        self.lookups += 1
        self.threads.append(threading.get_ident())
        return super().get_by_token_hash(token_hash)


class AsyncUsers:
    """An async user store holding the robot (only what a static-token request asks)."""

    def __init__(self, *, down: bool = False) -> None:
        self.user = robot()
        self.down = down

    async def get_by_token_hash(self, token_hash: str) -> User | None:
        if self.down:
            raise StoreUnavailable("database", "locked")
        return self.user if token_hash == self.user.token_hash else None

    async def get_by_id(self, user_id: str) -> User | None:
        return self.user if user_id == self.user.id else None

    async def get_by_email(self, email: str) -> User | None:
        return None


class DownIOUsers:
    """A synchronous store doing real I/O (``io_bound``), whose database is down."""

    io_bound = True

    def get_by_token_hash(self, token_hash: str) -> User | None:
        raise StoreUnavailable("database", "locked")

    def get_by_id(self, user_id: str) -> User | None:
        raise StoreUnavailable("database", "locked")

    def get_by_email(self, email: str) -> User | None:
        raise StoreUnavailable("database", "locked")


# --- the length limit, and no store lookup for what cannot be a token ----------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_token_exactly_at_the_length_limit_is_looked_up(shell_of: ShellOf, kind: str) -> None:
    users = CountingUsers()
    users.create(robot())
    s = shell_of(kind, users=users, max_token_length=64)
    reply = s.request("GET", "/items", headers={"authorization": f"Bearer {STATIC_64}"})
    assert (reply.status, reply.body) == (200, b"app u-robot static")
    assert users.lookups == 1


@pytest.mark.parametrize("kind", KINDS)
def test_over_long_and_empty_tokens_are_refused_without_a_store_lookup(shell_of: ShellOf, kind: str) -> None:
    over = STATIC_64 + "x"
    users = CountingUsers()
    users.create(robot(over))  # even a user holding it is never asked for
    s = shell_of(kind, users=users, max_token_length=64)
    for headers in (
        {"authorization": f"Bearer {over}"},
        {"authorization": "Bearer "},
    ):
        reply = s.request("GET", "/items", headers=headers)
        assert (reply.status, reply.body) == (401, INVALID_CREDENTIALS), headers
        assert reply.header("set-cookie") is None
    for query in (f"access_token={over}", "access_token="):
        reply = s.request("GET", f"/items?{query}")
        assert (reply.status, reply.body) == (401, INVALID_CREDENTIALS), query
    reply = s.request("GET", "/items", headers={"cookie": f"{COOKIE}={over}"})
    assert (reply.status, reply.body) == (401, INVALID_CREDENTIALS)
    assert reply.all("set-cookie") == [CLEAR_COOKIE]
    assert users.lookups == 0


# --- a kid the issuer's key set does not hold ----------------------------------------------


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    server = Issuer()
    try:
        yield server
    finally:
        server.close()


def stranger_token(**extra: Any) -> str:
    """A token signed with a key ("ed") the guard does not know before it fetches."""
    signer = Settings(secret=SECRET, jwt_keys=keys_json("ed", "ed"))
    options: dict[str, Any] = {"ttl_ms": 900_000, "now": time.time()}
    options.update(extra)
    return issue_access_token(token_policy(signer), user_id="u1", role="editor", app_access=True, admin_access=False, **options)


@pytest.mark.parametrize("kind", KINDS)
def test_a_kid_unknown_after_the_one_fetch_is_invalid_token(shell_of: ShellOf, kind: str, issuer: Issuer) -> None:
    issuer.publish(keys_json("ec", "ec"))  # not the key the token names
    s = shell_of(kind, jwks_url=issuer.url, jwks_min_refetch_ms=60_000)
    token = stranger_token()
    reply = s.request("GET", "/items", headers={"cookie": f"{COOKIE}={token}"})
    assert (reply.status, reply.body) == (403, INVALID_TOKEN)
    assert reply.all("set-cookie") == [CLEAR_COOKIE]
    assert issuer.requests == 1
    reply = s.request("GET", "/items", headers={"authorization": f"Bearer {token}"})
    assert (reply.status, reply.body) == (403, INVALID_TOKEN)
    assert reply.header("set-cookie") is None
    assert issuer.requests == 1  # the rate bound: no second fetch


@pytest.mark.parametrize("kind", KINDS)
def test_a_kid_still_due_for_a_fetch_after_the_fetch_is_invalid_token(shell_of: ShellOf, kind: str, issuer: Issuer) -> None:
    # The one fetch of the request did not reach the issuer (and so did not start the rate
    # bound either): the key is still "to be fetched", and the request is refused rather
    # than fetched for again.
    s = shell_of(kind, jwks_url=issuer.url)
    remote = s.core.guard.verifier.keys.remote  # type: ignore[union-attr]
    assert remote is not None
    fetches: list[int] = []

    def refresh() -> bool:
        fetches.append(1)
        return False

    remote.refresh = refresh  # type: ignore[method-assign]
    token = stranger_token()
    reply = s.request("GET", "/items", headers={"cookie": f"{COOKIE}={token}"})
    assert (reply.status, reply.body) == (403, INVALID_TOKEN)
    assert reply.all("set-cookie") == [CLEAR_COOKIE]
    assert len(fetches) == 1
    reply = s.request("GET", "/items", headers={"authorization": f"Bearer {token}"})
    assert (reply.status, reply.body) == (403, INVALID_TOKEN)
    assert reply.header("set-cookie") is None
    assert len(fetches) == 2 and issuer.requests == 0


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("where", ["cookie", "header"])
def test_a_new_key_token_already_expired_after_the_fetch_is_token_expired(
    shell_of: ShellOf, kind: str, where: str, issuer: Issuer
) -> None:
    issuer.publish(keys_json("ed", "ed"))  # rotated in at the issuer, not yet fetched here
    s = shell_of(kind, jwks_url=issuer.url, jwks_min_refetch_ms=60_000)
    token = stranger_token(ttl_ms=60_000, now=time.time() - 3600)
    headers = {"cookie": f"{COOKIE}={token}"} if where == "cookie" else {"authorization": f"Bearer {token}"}
    reply = s.request("GET", "/items", headers=headers)
    assert (reply.status, reply.body) == (401, TOKEN_EXPIRED)
    assert reply.header("set-cookie") is None  # an expired session cookie is not cleared
    assert issuer.requests == 1
    # The fetched key verifies a live token of the same signer.
    fresh = s.request("GET", "/items", headers={"authorization": f"Bearer {stranger_token()}"})
    assert (fresh.status, fresh.body) == (200, b"app u1 jwt")


@pytest.mark.parametrize("kind", KINDS)
def test_a_new_key_session_token_is_checked_against_its_session_after_the_fetch(
    shell_of: ShellOf, kind: str, issuer: Issuer
) -> None:
    # After the fetch the token is good, and a session-mode one still needs its store lookup:
    # the flow goes on into the session check instead of ending at the signature.
    issuer.publish(keys_json("ed", "ed"))
    s = shell_of(kind, jwks_url=issuer.url, jwks_min_refetch_ms=60_000)
    refresh = secrets.token_urlsafe(48)
    now_ms = int(time.time() * 1000)
    s.core.sessions.create(SessionRecord(refresh_token_key(refresh), refresh[:22], "u1", now_ms + 600_000, now_ms))
    reply = s.request("GET", "/items", headers={"authorization": f"Bearer {stranger_token(session=refresh)}"})
    assert (reply.status, reply.body) == (200, b"app u1 session")
    assert issuer.requests == 1
    gone = stranger_token(session=secrets.token_urlsafe(48))  # a session the store never had
    reply = s.request("GET", "/items", headers={"authorization": f"Bearer {gone}"})
    assert (reply.status, reply.body) == (401, INVALID_CREDENTIALS)


# --- static tokens against stores that do I/O ------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_static_token_against_a_down_io_bound_store_is_503(shell_of: ShellOf, kind: str) -> None:
    s = shell_of(kind, users=DownIOUsers())
    for _ in range(2):
        reply = s.request("GET", "/items", headers={"authorization": f"Bearer {STATIC_64}"})
        assert (reply.status, reply.body) == (503, DB_DOWN)
    reply = s.request("GET", "/items", headers={"cookie": f"{COOKIE}={STATIC_64}"})
    assert (reply.status, reply.body) == (503, DB_DOWN)
    assert reply.header("set-cookie") is None  # an outage says nothing about the cookie


def test_a_static_token_against_a_down_async_store_is_503(shell_of: ShellOf) -> None:
    s = shell_of("asgi", users=AsyncUsers(down=True))
    reply = s.request("GET", "/items", headers={"authorization": f"Bearer {STATIC_64}"})
    assert (reply.status, reply.body) == (503, DB_DOWN)


def test_an_async_store_is_awaited(shell_of: ShellOf) -> None:
    s = shell_of("asgi", users=AsyncUsers())
    for _ in range(3):
        reply = s.request("GET", "/items", headers={"authorization": f"Bearer {STATIC_64}"})
        assert (reply.status, reply.body) == (200, b"app u-robot static")
    reply = s.request("GET", "/items", headers={"authorization": f"Bearer {STATIC_64[:-1]}Z"})
    assert (reply.status, reply.body) == (401, INVALID_CREDENTIALS)


def test_a_sync_io_bound_store_never_runs_on_the_event_loop(shell_of: ShellOf) -> None:
    users = CountingUsers(io_bound=True)
    users.create(robot())
    s = shell_of("asgi", users=users)
    loop_thread = threading.get_ident()  # the harness runs its event loop on this thread
    for _ in range(3):
        reply = s.request("GET", "/items", headers={"authorization": f"Bearer {STATIC_64}"})
        assert (reply.status, reply.body) == (200, b"app u-robot static")
    assert users.lookups == 3  # asked every time: an I/O-bound store's answer is not memoised
    assert loop_thread not in users.threads


def test_an_in_process_store_is_asked_inline(shell_of: ShellOf) -> None:
    # The counterpart: io_bound = False means cheap and synchronous, asked on the loop.
    users = CountingUsers(io_bound=False)
    users.create(robot())
    s = shell_of("asgi", users=users)
    reply = s.request("GET", "/items", headers={"authorization": f"Bearer {STATIC_64}"})
    assert (reply.status, reply.body) == (200, b"app u-robot static")
    assert users.threads == [threading.get_ident()]


# --- how long a verified token is cached ------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("leeway_ms", [0, 2_000])
def test_the_cache_answers_until_exactly_the_entry_expiry(shell_of: ShellOf, kind: str, leeway_ms: int) -> None:
    clock = Clock(NOW)
    s = shell_of(kind, clock=clock, leeway_ms=leeway_ms)
    exp = int(NOW) + 100
    headers = {"authorization": f"Bearer {mint(secret=SECRET, iat=int(NOW) - 10, exp=exp)}"}
    for _ in range(3):  # verified and cached, then a cache hit that memoises the header
        reply = s.request("GET", "/items", headers=headers)
        assert (reply.status, reply.body) == (200, f"app {JWT_USER} jwt".encode())
    until = exp + leeway_ms / 1000
    clock.now = until - 0.001
    reply = s.request("GET", "/items", headers=headers)
    assert (reply.status, reply.body) == (200, f"app {JWT_USER} jwt".encode())
    clock.now = until
    reply = s.request("GET", "/items", headers=headers)
    assert (reply.status, reply.body) == (401, TOKEN_EXPIRED)


def test_cache_entries_live_until_exp_plus_leeway_or_60_seconds_without_exp() -> None:
    clock = Clock(NOW)
    core = make_core("wsgi", clock=clock, leeway_ms=1_500, allow_tokens_without_exp=True)
    guard = core.guard
    with_exp = mint(secret=SECRET, iat=int(NOW) - 10, exp=int(NOW) + 100)
    without = mint(secret=SECRET, iat=int(NOW) - 10, exp=DROP)
    first = guard.authenticate(f"Bearer {with_exp}", "", None)
    assert isinstance(first, Principal) and first.via == "jwt"
    assert guard.cache.entries[with_exp] == (first, int(NOW) + 101.5)
    first = guard.authenticate(f"Bearer {without}", "", None)
    assert isinstance(first, Principal) and first.expires_at is None
    assert guard.cache.entries[without] == (first, NOW + 60)
    clock.now = NOW + 59.999
    assert guard.authenticate(f"Bearer {without}", "", None) is first  # the cached check
    clock.now = NOW + 60
    again = guard.authenticate(f"Bearer {without}", "", None)
    assert again == first and again is not first  # verified afresh after 60 s
    assert guard.cache.entries[without] == (again, NOW + 120)
    core.close()


# --- the session check's cache never outlives the token ---------------------------------------


@pytest.fixture
def session_core(
    request: pytest.FixtureRequest, redis_url: str, redis_prefix: str
) -> Iterator[tuple[TokenGuard, Clock]]:
    leeway_ms = getattr(request, "param", 0)  # indirect parametrisation sets LEEWAY_MS
    store = RedisSessionStore.from_url(redis_url, prefix=redis_prefix)
    clock = Clock(float(int(time.time())))  # near real time: the invalidation's TTL runs on the wall clock
    core = TokenGuard(
        Settings(
            secret=SECRET,
            redis_url=redis_url,
            redis_prefix=redis_prefix,
            session_cache_ttl_ms=600_000,  # long: only the token's exp may end the entry
            leeway_ms=leeway_ms,
        ),
        users=MemoryUserStore(),
        sessions=store,
        clock=clock,
    )
    try:
        assert core.invalidation is not None and core.invalidation.start(wait_s=5)
        yield core, clock
    finally:
        core.close()
        store.close()


def test_a_cached_session_check_never_outlives_the_token_exp(shell_of: ShellOf, session_core: tuple[TokenGuard, Clock]) -> None:
    core, clock = session_core
    refresh = secrets.token_urlsafe(48)
    now_ms = int(clock.now * 1000)
    core.sessions.create(SessionRecord(refresh_token_key(refresh), refresh[:22], "u1", now_ms + 600_000, now_ms))
    exp = clock.now + 30
    token = issue_access_token(
        token_policy(core.settings), user_id="u1", role="r", app_access=True, admin_access=False,
        ttl_ms=30_000, now=clock.now, session=refresh,
    )  # fmt: skip
    s = shell_of("wsgi", core=core)
    headers = {"cookie": f"{COOKIE}={token}"}
    for _ in range(2):
        reply = s.request("GET", "/items", headers=headers)
        assert (reply.status, reply.body) == (200, b"app u1 session")
    assert token in core.guard.cache  # the session check is cached…
    clock.now = exp - 0.001
    assert s.request("GET", "/items", headers=headers).status == 200
    clock.now = exp  # …and ends with the token, though the session and the TTL go on
    reply = s.request("GET", "/items", headers=headers)
    assert (reply.status, reply.body) == (401, TOKEN_EXPIRED)
    assert reply.header("set-cookie") is None


def session_token(core: TokenGuard, clock: Clock, *, ttl_s: int, session_s: int, **record: Any) -> tuple[str, str]:
    """A session (its refresh token) of user u1 living ``session_s`` seconds, and an access
    token for it living ``ttl_s``."""
    refresh = secrets.token_urlsafe(48)
    now_ms = int(clock.now * 1000)
    core.sessions.create(
        SessionRecord(refresh_token_key(refresh), refresh[:22], "u1", now_ms + session_s * 1000, now_ms, **record)
    )
    token = issue_access_token(
        token_policy(core.settings), user_id="u1", role="r", app_access=True, admin_access=False,
        ttl_ms=ttl_s * 1000, now=clock.now, session=refresh,
    )  # fmt: skip
    return refresh, token


def test_a_cached_session_check_holds_the_principal_until_the_session_ends(shell_of: ShellOf, session_core: tuple[TokenGuard, Clock]) -> None:
    core, clock = session_core
    refresh, token = session_token(core, clock, ttl_s=600, session_s=100)
    reply = shell_of("wsgi", core=core).request("GET", "/items", headers={"authorization": f"Bearer {token}"})
    assert (reply.status, reply.body) == (200, b"app u1 session")
    principal, until = core.guard.cache.entries[token]
    assert (principal.user, principal.via, principal.session) == ("u1", "session", refresh)
    assert until == clock.now + 100  # the session's end, before the token's exp and the TTL


def test_a_cached_session_check_ends_with_a_rotated_sessions_grace(shell_of: ShellOf, session_core: tuple[TokenGuard, Clock]) -> None:
    core, clock = session_core
    now_ms = int(clock.now * 1000)
    _, token = session_token(core, clock, ttl_s=600, session_s=300, next_hash="n" * 64, live_until_ms=now_ms + 50_000)
    reply = shell_of("wsgi", core=core).request("GET", "/items", headers={"authorization": f"Bearer {token}"})
    assert (reply.status, reply.body) == (200, b"app u1 session")
    assert core.guard.cache.entries[token][1] == clock.now + 50  # rotated: live for its grace only


@pytest.mark.parametrize("session_core", [5000], indirect=True)
def test_a_cached_session_check_ends_at_exp_plus_the_leeway(shell_of: ShellOf, session_core: tuple[TokenGuard, Clock]) -> None:
    core, clock = session_core
    _, token = session_token(core, clock, ttl_s=30, session_s=600)
    reply = shell_of("wsgi", core=core).request("GET", "/items", headers={"authorization": f"Bearer {token}"})
    assert (reply.status, reply.body) == (200, b"app u1 session")
    assert core.guard.cache.entries[token][1] == clock.now + 30 + 5


def test_a_revoked_family_drops_the_cached_session_check(shell_of: ShellOf, session_core: tuple[TokenGuard, Clock]) -> None:
    core, clock = session_core
    refresh, token = session_token(core, clock, ttl_s=600, session_s=600)
    s = shell_of("wsgi", core=core)
    headers = {"authorization": f"Bearer {token}"}
    assert s.request("GET", "/items", headers=headers).status == 200
    assert token in core.guard.cache
    core.sessions.revoke(refresh_token_key(refresh))  # a logout
    assert core.invalidation is not None
    core.invalidation.invalidate([refresh[:22]])  # what the store announces, here at once
    assert token not in core.guard.cache
    reply = s.request("GET", "/items", headers=headers)
    assert (reply.status, reply.body) == (401, INVALID_CREDENTIALS)


def test_a_jwt_principal_carries_its_access_flags() -> None:
    guard = Guard(Settings(secret=SECRET), MemoryUserStore(), MemorySessionStore())
    admin = guard.authenticate(f"Bearer {mint(secret=SECRET, admin_access=True, app_access=False)}", "", None)
    assert isinstance(admin, Principal) and (admin.admin, admin.app, admin.via) == (True, False, "jwt")
    user = guard.authenticate(f"Bearer {mint(secret=SECRET, admin_access=False, app_access=True)}", "", None)
    assert isinstance(user, Principal) and (user.admin, user.app) == (False, True)


class AsyncInProcessUsers(AsyncUsers):
    """An async store that says it does no I/O: still a coroutine, so still driven by a Call."""

    io_bound = False


def test_an_async_store_is_never_asked_inline_whatever_it_says(shell_of: ShellOf) -> None:
    users = AsyncInProcessUsers()
    guard = Guard(Settings(secret=SECRET), users, MemorySessionStore())  # type: ignore[arg-type]
    assert guard.settings.secret == SECRET
    assert isinstance(guard.authenticate(f"Bearer {STATIC_64}", "", None), GeneratorType)
    s = shell_of("asgi", users=users)
    reply = s.request("GET", "/items", headers={"authorization": f"Bearer {STATIC_64}"})
    assert (reply.status, reply.body) == (200, b"app u-robot static")


# --- the session store is asked at the request's time ---------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_session_past_its_expiry_in_the_store_is_refused(shell_of: ShellOf, kind: str) -> None:
    s = shell_of(kind)
    clock = Clock(float(int(time.time())))
    _, live = session_token(s.core, clock, ttl_s=600, session_s=600)
    _, gone = session_token(s.core, clock, ttl_s=600, session_s=-1)  # the store says expired
    reply = s.request("GET", "/items", headers={"authorization": f"Bearer {live}"})
    assert (reply.status, reply.body) == (200, b"app u1 session")
    reply = s.request("GET", "/items", headers={"authorization": f"Bearer {gone}"})
    assert (reply.status, reply.body) == (401, INVALID_CREDENTIALS)


# --- a static token refused through a store that does I/O -----------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_an_unknown_static_cookie_through_an_io_store_clears_the_cookie(shell_of: ShellOf, kind: str) -> None:
    s = shell_of(kind, core=make_core(kind, users=CountingUsers(io_bound=True)))
    reply = s.request("GET", "/items", headers={"cookie": f"{COOKIE}={STATIC_64}"})
    assert (reply.status, reply.body) == (401, INVALID_CREDENTIALS)
    assert reply.header("set-cookie") == CLEAR_COOKIE


class LooseIndexUsers(MemoryUserStore):
    """A store whose token index is loose (case-insensitive, prefix…): it finds the robot
    for any hash at all."""

    def get_by_token_hash(self, token_hash: str) -> User | None:
        return robot()


@pytest.mark.parametrize("kind", KINDS)
def test_a_user_the_store_found_under_another_hash_is_refused(shell_of: ShellOf, kind: str) -> None:
    s = shell_of(kind, core=make_core(kind, users=LooseIndexUsers()))
    reply = s.request("GET", "/items", headers={"authorization": f"Bearer {STATIC_64}"})
    assert (reply.status, reply.body) == (200, b"app u-robot static")
    other = "st4t1c-" + "R" * 57
    reply = s.request("GET", "/items", headers={"authorization": f"Bearer {other}"})
    assert (reply.status, reply.body) == (401, INVALID_CREDENTIALS)


# --- the raw-header memo and a query name beyond ASCII -------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ["tok\xff", "\xffx"])
def test_the_memo_meets_a_query_name_with_y_diaeresis(shell_of: ShellOf, kind: str, name: str) -> None:
    s = shell_of(kind, query_params=("access_token", name))
    headers = {"authorization": f"Bearer {mint(secret=SECRET)}"}
    cold = s.request("GET", f"/items?{name}=x", headers=headers)
    assert (cold.status, cold.body) == (400, TWO_METHODS_BODY)
    for _ in range(3):  # now the header alone is memoised
        reply = s.request("GET", "/items", headers=headers)
        assert (reply.status, reply.body) == (200, f"app {JWT_USER} jwt".encode())
    warm = s.request("GET", f"/items?a=1&{name}=x", headers=headers)
    assert (warm.status, warm.body) == (400, TWO_METHODS_BODY)
    # The name alone, as the query token, is a token like any other.
    only = s.request("GET", f"/items?{name}={STATIC_64}")
    assert (only.status, only.body) == (401, INVALID_CREDENTIALS)


class PlainUsers(CountingUsers):
    """A synchronous store that does not say whether it does I/O: assumed to."""

    def __getattribute__(self, name: str) -> Any:
        if name == "io_bound":
            raise AttributeError(name)
        return super().__getattribute__(name)


@pytest.mark.parametrize(
    ("make_users", "inline"),
    # Factories, not instances: a store made at collection would keep its user into a second
    # run of the test in the same process (the mutation run does exactly that).
    [
        (lambda: CountingUsers(io_bound=False), True),
        (lambda: CountingUsers(io_bound=True), False),
        (PlainUsers, False),
    ],
    ids=["in-process", "io-bound", "undeclared"],
)
def test_only_an_in_process_store_is_asked_without_a_call(
    make_users: Callable[[], CountingUsers], inline: bool
) -> None:
    # What the edge cannot show: whether the guard asks the store itself or hands the shell
    # a Call to drive (in a worker thread, for a store doing I/O under ASGI).
    users = make_users()
    users.create(robot())
    guard = Guard(Settings(secret=SECRET), users, MemorySessionStore())
    outcome = guard.authenticate(f"Bearer {STATIC_64}", "", None)
    if inline:
        assert isinstance(outcome, Principal) and outcome.via == "static"
        assert users.lookups == 1
        return
    assert isinstance(outcome, GeneratorType)
    step = next(outcome)
    assert isinstance(step, Call) and step.fn == users.get_by_token_hash
    assert users.lookups == 0  # not asked until the Call is driven
    try:
        outcome.send(users.get_by_token_hash(*step.args))
    except StopIteration as done:
        assert isinstance(done.value, Principal) and done.value.via == "static"
    else:
        raise AssertionError("one lookup, then the answer")
