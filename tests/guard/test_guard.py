"""The guard: from raw request parts to a principal or a Directus refusal."""

from __future__ import annotations

import time
from types import GeneratorType

from hypothesis import example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.helpers.oracle import names_issuer
from tests.helpers.tokens import OTHER_SECRET, SECRET, mint
from tokenguard.config import Settings, token_policy
from tokenguard.flow import run_sync
from tokenguard.guard.decide import Guard, Refusal
from tokenguard.jose.tokens import hash_token, issue_access_token
from tokenguard.principal import Principal
from tokenguard.stores.base import SessionRecord, StoreUnavailable, User, refresh_token_key
from tokenguard.stores.memory import MemorySessionStore, MemoryUserStore

JWT_USER = "8f0c2b1e-4c5d-4e6f-9a0b-1c2d3e4f5a6b"  # tests.helpers.tokens.claims()
STATIC = "st4t1c-T0ken-for-tests-9f8e7d6c5b4a3210"
SESSION_TOKEN = "F" * 22 + "s" * 42


def make_guard(**overrides: object) -> Guard:
    users = MemoryUserStore()
    users.create(User(id="u-static", email="s@example.com", role="robot", app_access=True, token_hash=hash_token(STATIC)))
    users.create(User(id="u-gone", email="g@example.com", role="robot", status="suspended", token_hash=hash_token("suspended-token-0123456789")))
    sessions = MemorySessionStore()
    now_ms = int(time.time() * 1000)
    sessions.create(SessionRecord(refresh_token_key(SESSION_TOKEN), SESSION_TOKEN[:22], "u1", now_ms + 60_000))
    return Guard(Settings(secret=SECRET, **overrides), users, sessions)  # type: ignore[arg-type]


def resolve(guard: Guard, authorization: str | None = None, query: str = "", cookie: str | None = None) -> Principal | Refusal:
    outcome = guard.authenticate(authorization, query, cookie)
    if isinstance(outcome, GeneratorType):
        outcome = run_sync(outcome)
    assert isinstance(outcome, (Principal, Refusal))
    return outcome


def refusal(outcome: object) -> tuple[int, str, bool]:
    assert isinstance(outcome, Refusal), outcome
    return outcome.error.status, outcome.error.code, outcome.clear_session_cookie


def test_no_token_is_public_with_configured_role() -> None:
    assert resolve(make_guard()) == Principal(user=None, role=None, via="public")
    assert resolve(make_guard(public_role="public")) == Principal(user=None, role="public", via="public")


def test_jwt_principal() -> None:
    p = resolve(make_guard(), f"Bearer {mint()}")
    assert isinstance(p, Principal)
    assert (p.user, p.role, p.app, p.admin, p.via) == ("8f0c2b1e-4c5d-4e6f-9a0b-1c2d3e4f5a6b", "editor-role", True, False, "jwt")
    assert p.expires_at is not None and p.is_authenticated


def test_repeated_jwt_comes_from_cache_and_still_expires() -> None:
    clock = [time.time()]
    g = make_guard(leeway_ms=0)
    g.clock = lambda: clock[0]
    token = mint(exp=int(clock[0]) + 2)
    first = resolve(g, f"Bearer {token}")
    assert isinstance(first, Principal) and len(g.cache) == 1
    assert resolve(g, f"Bearer {token}") is first
    clock[0] += 5
    assert refusal(resolve(g, f"Bearer {token}")) == (401, "TOKEN_EXPIRED", False)


def test_bad_tokens_are_refused_never_public() -> None:
    g = make_guard()
    assert refusal(resolve(g, "Bearer not-a-jwt")) == (401, "INVALID_CREDENTIALS", False)
    assert refusal(resolve(g, "Bearer ")) == (401, "INVALID_CREDENTIALS", False)
    assert refusal(resolve(g, None, "access_token=")) == (401, "INVALID_CREDENTIALS", False)
    assert refusal(resolve(g, f"Bearer {mint(secret=OTHER_SECRET)}")) == (403, "INVALID_TOKEN", False)
    assert refusal(resolve(g, f"Bearer {mint(exp=int(time.time()) - 3600)}")) == (401, "TOKEN_EXPIRED", False)
    assert refusal(resolve(g, f"Bearer {mint(iss='other')}")) == (401, "INVALID_CREDENTIALS", False)


def test_two_methods_is_400() -> None:
    assert refusal(resolve(make_guard(), f"Bearer {mint()}", f"access_token={mint()}")) == (400, "INVALID_PAYLOAD", False)


def test_static_token() -> None:
    p = resolve(make_guard(), f"Bearer {STATIC}")
    assert p == Principal(user="u-static", role="robot", admin=False, app=True, via="static")
    assert resolve(make_guard(), None, f"access_token={STATIC}") == p


def test_static_token_of_suspended_user_is_refused() -> None:
    assert refusal(resolve(make_guard(), "Bearer suspended-token-0123456789")) == (401, "INVALID_CREDENTIALS", False)


def test_token_over_the_limit_is_refused_before_parsing() -> None:
    g = make_guard(max_token_length=100)
    assert refusal(resolve(g, "Bearer " + "x" * 101)) == (401, "INVALID_CREDENTIALS", False)
    assert refusal(resolve(g, None, None or "", "directus_session_token=" + "x" * 101)) == (401, "INVALID_CREDENTIALS", True)


def session_jwt(session: str, user: str = "u1", **kw: object) -> str:
    return issue_access_token(
        token_policy(Settings(secret=SECRET)), user_id=user, role="r", app_access=True, admin_access=False,
        ttl_ms=60_000, now=time.time(), session=session, **kw,  # type: ignore[arg-type]
    )


def test_session_cookie_checked_against_store() -> None:
    g = make_guard()
    p = resolve(g, None, "", f"directus_session_token={session_jwt(SESSION_TOKEN)}")
    assert isinstance(p, Principal) and p.via == "session" and p.session == SESSION_TOKEN and p.user == "u1"
    # The same JWT as a Bearer header works too (observed).
    assert isinstance(resolve(g, f"Bearer {session_jwt(SESSION_TOKEN)}"), Principal)


def test_session_gone_is_invalid_credentials_and_clears_cookie() -> None:
    g = make_guard()
    g.sessions.revoke(refresh_token_key(SESSION_TOKEN))  # type: ignore[union-attr]
    cookie = f"directus_session_token={session_jwt(SESSION_TOKEN)}"
    assert refusal(resolve(g, None, "", cookie)) == (401, "INVALID_CREDENTIALS", True)
    # From a header, the cookie is not cleared (Directus T22).
    assert refusal(resolve(g, f"Bearer {session_jwt(SESSION_TOKEN)}")) == (401, "INVALID_CREDENTIALS", False)


def test_session_of_another_user_is_refused() -> None:
    assert refusal(resolve(make_guard(), f"Bearer {session_jwt(SESSION_TOKEN, user='u2')}")) == (401, "INVALID_CREDENTIALS", False)


def test_invalid_cookie_clears_it_but_not_for_expiry() -> None:
    g = make_guard()
    assert refusal(resolve(g, None, "", "directus_session_token=garbage")) == (401, "INVALID_CREDENTIALS", True)
    assert refusal(resolve(g, None, "", f"directus_session_token={mint(secret=OTHER_SECRET)}")) == (403, "INVALID_TOKEN", True)
    expired = mint(exp=int(time.time()) - 3600)
    assert refusal(resolve(g, None, "", f"directus_session_token={expired}")) == (401, "TOKEN_EXPIRED", False)


class DownStore:
    io_bound = False

    def get(self, *args: object) -> None:
        raise StoreUnavailable("redis", "Connection refused")

    def get_by_token_hash(self, *args: object) -> None:
        raise StoreUnavailable("database", "locked")


def test_store_down_is_503_never_acceptance() -> None:
    g = Guard(Settings(secret=SECRET), DownStore(), DownStore())  # type: ignore[arg-type]
    status, code, _ = refusal(resolve(g, f"Bearer {session_jwt(SESSION_TOKEN)}"))
    assert (status, code) == (503, "SERVICE_UNAVAILABLE")
    assert refusal(resolve(g, f"Bearer {STATIC}"))[:2] == (503, "SERVICE_UNAVAILABLE")
    # Ordinary access tokens need no store and keep working.
    assert isinstance(resolve(g, f"Bearer {mint()}"), Principal)


@hsettings(max_examples=300)
@given(
    authorization=st.one_of(st.none(), st.text(max_size=300), st.builds(lambda t: "Bearer " + t, st.text(max_size=300))),
    query=st.text(max_size=300),
    cookie=st.one_of(st.none(), st.text(max_size=300)),
)
def test_no_client_input_authenticates_without_a_valid_token(authorization: str | None, query: str, cookie: str | None) -> None:
    outcome = resolve(make_guard(), authorization, query, cookie)
    if isinstance(outcome, Principal):
        assert outcome.via == "public" and outcome.user is None
    else:
        assert outcome.error.status in (400, 401, 403)
        assert outcome.error.body.startswith(b'{"errors":[{"message":')


@hsettings(max_examples=200)
@given(st.binary(max_size=200), st.one_of(st.none(), st.integers(min_value=0)))
@example(b"y", None)  # puts back the very character it replaces: the token itself
@example(b" ", None)
@example(b"A", -1)  # the signature's last character: its unused bits
def test_mutated_valid_token_never_authenticates_as_someone_else(noise: bytes, at: int | None) -> None:
    token = mint()
    # Where the noise goes: after as many characters as it has, or anywhere.
    i = (len(noise) if at is None else at) % len(token)
    mutated = token[:i] + noise.decode("latin-1") + token[i + 1 :]
    outcome = resolve(make_guard(), f"Bearer {mutated}")
    if mutated == token:
        assert isinstance(outcome, Principal) and (outcome.user, outcome.via) == (JWT_USER, "jwt")
        return
    # Strict canonical base64 leaves no byte of a signed token free to change: refused, or
    # public when the header no longer reads as "Bearer <token>" (a space in the noise).
    if len(f"Bearer {mutated}".split(" ")) != 2:
        assert outcome == Principal(user=None, role=None, via="public")
        return
    verdict = refusal(outcome)
    if verdict == (403, "INVALID_TOKEN", False):  # a forgery of one of ours
        assert names_issuer(mutated, "directus", 4096, strict=False), mutated
    else:  # not one of ours: a static token nobody holds
        assert verdict == (401, "INVALID_CREDENTIALS", False), (verdict, mutated)
        assert not names_issuer(mutated, "directus", 4096, strict=True), mutated
