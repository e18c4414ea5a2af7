"""Two-factor login with TOTP: enrolment endpoints, login with `otp`, replay protection and
encryption at rest, through the WSGI shell with a settable clock."""

from __future__ import annotations

from typing import Any

import pyotp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.test import Client

from tests.helpers.auth import (
    EMAIL,
    FAST,
    PASSWORD,
    SECRET,
    USER_ID,
    Clock,
    make_user,
    plain_wsgi_app,
)
from tokenguard import TokenGuard, TokenGuardWSGI
from tokenguard.auth.totp import SecretBox, otpauth_url, totp_at
from tokenguard.stores.memory import MemorySessionStore, MemoryUserStore
from tokenguard.stores.once import MemoryOnceStore, SQLiteOnceStore

INVALID_OTP = {"errors": [{"message": "Invalid user OTP.", "extensions": {"code": "INVALID_OTP"}}]}


class Setup:
    def __init__(self) -> None:
        self.users = MemoryUserStore()
        self.users.create(make_user())
        self.clock = Clock()
        self.core = TokenGuard(
            secret=SECRET,
            users=self.users,
            sessions=MemorySessionStore(),
            passwords=FAST,
            clock=self.clock,
            login_stall_ms=0,
        )
        self.client = Client(TokenGuardWSGI(plain_wsgi_app, guard=self.core))

    def login(self, otp: str | None = None) -> Any:
        body = {"email": EMAIL, "password": PASSWORD}
        if otp is not None:
            body["otp"] = otp
        return self.client.post("/auth/login", json=body)

    def bearer(self) -> dict[str, str]:
        return {"authorization": "Bearer " + self.login().json["data"]["access_token"]}

    def code(self, secret: str) -> str:
        return totp_at(secret, self.clock())

    def enrol(self) -> str:
        headers = self.bearer()
        reply = self.client.post(
            "/users/me/tfa/generate", json={"password": PASSWORD}, headers=headers
        )
        assert reply.status_code == 200, reply.data
        secret = reply.json["data"]["secret"]
        reply = self.client.post(
            "/users/me/tfa/enable",
            json={"secret": secret, "otp": self.code(secret)},
            headers=headers,
        )
        assert (reply.status_code, reply.data) == (204, b"")
        self.clock.advance(30)  # the enrolment code is spent; the next step's is fresh
        return secret


def error(reply: Any) -> tuple[int, str, str]:
    body = reply.json["errors"][0]
    return reply.status_code, body["extensions"]["code"], body["message"]


def test_generate_returns_a_secret_and_an_otpauth_url() -> None:
    s = Setup()
    reply = s.client.post("/users/me/tfa/generate", json={"password": PASSWORD}, headers=s.bearer())
    data = reply.json["data"]
    assert list(data) == ["secret", "otpauth_url"]
    assert len(data["secret"]) == 32
    assert (
        data["otpauth_url"]
        == f"otpauth://totp/tokenguard:ada@example.com?secret={data['secret']}&issuer=tokenguard"
    )
    assert s.users.get_by_id(USER_ID).tfa_secret is None  # nothing stored yet
    parsed = pyotp.parse_uri(data["otpauth_url"])
    assert parsed.secret == data["secret"] and parsed.issuer == "tokenguard"


def test_generate_needs_a_user_and_the_password() -> None:
    s = Setup()
    anonymous = s.client.post("/users/me/tfa/generate", json={"password": PASSWORD})
    assert error(anonymous)[:2] == (401, "INVALID_CREDENTIALS")
    wrong = s.client.post("/users/me/tfa/generate", json={"password": "nope"}, headers=s.bearer())
    assert error(wrong)[:2] == (401, "INVALID_CREDENTIALS")
    missing = s.client.post("/users/me/tfa/generate", json={}, headers=s.bearer())
    assert error(missing) == (400, "INVALID_PAYLOAD", 'Invalid payload. "password" is required.')


def test_enrolled_login_requires_a_fresh_code_once() -> None:
    s = Setup()
    secret = s.enrol()
    stored = s.users.get_by_id(USER_ID).tfa_secret
    assert stored.startswith("tg1.") and secret not in stored
    assert s.login().json == INVALID_OTP
    assert s.login("000000" if s.code(secret) != "000000" else "111111").json == INVALID_OTP
    code = s.code(secret)
    assert s.login(code).status_code == 200
    assert s.login(code).json == INVALID_OTP  # replayed within its step
    s.clock.advance(30)
    assert s.login(code if s.code(secret) == code else s.code(secret)).status_code == 200


def test_codes_from_the_previous_or_next_step_are_refused() -> None:
    s = Setup()
    secret = s.enrol()
    assert s.login(totp_at(secret, s.clock() - 30)).json == INVALID_OTP or totp_at(
        secret, s.clock() - 30
    ) == s.code(secret)
    assert s.login(totp_at(secret, s.clock() + 30)).json == INVALID_OTP or totp_at(
        secret, s.clock() + 30
    ) == s.code(secret)


def test_enable_errors() -> None:
    s = Setup()
    headers = s.bearer()
    secret = pyotp.random_base32()
    post = lambda body: s.client.post("/users/me/tfa/enable", json=body, headers=headers)  # noqa: E731
    assert error(post({"otp": "123456"})) == (
        400,
        "INVALID_PAYLOAD",
        'Invalid payload. "secret" is required.',
    )
    assert error(post({"secret": secret})) == (
        400,
        "INVALID_PAYLOAD",
        'Invalid payload. "otp" is required.',
    )
    minted = s.core.extras.two_factor.mint_secret(USER_ID)
    wrong = "000000" if s.code(minted) != "000000" else "111111"
    assert error(post({"secret": minted, "otp": wrong})) == (
        400,
        "INVALID_PAYLOAD",
        'Invalid payload. "otp" is invalid.',
    )
    assert error(post({"secret": "not base32!", "otp": "123456"}))[:2] == (400, "INVALID_PAYLOAD")
    # A secret that `generate` did not make for this user cannot be planted.
    planted = post({"secret": secret, "otp": s.code(secret)})
    assert error(planted) == (400, "INVALID_PAYLOAD", 'Invalid payload. "secret" is invalid.')
    other = s.core.extras.two_factor.mint_secret("another-user")
    assert error(post({"secret": other, "otp": s.code(other)}))[:2] == (400, "INVALID_PAYLOAD")
    secret = s.core.extras.two_factor.mint_secret(USER_ID)
    assert post({"secret": secret, "otp": s.code(secret)}).status_code == 204
    again = post({"secret": secret, "otp": s.code(secret)})
    assert error(again) == (
        400,
        "INVALID_PAYLOAD",
        "Invalid payload. TFA Secret is already set for this user.",
    )


def test_disable_needs_a_fresh_code() -> None:
    s = Setup()
    secret = s.enrol()
    code = s.code(secret)
    headers = {"authorization": "Bearer " + s.login(code).json["data"]["access_token"]}
    # The code just used to log in cannot also disable two-factor.
    reply = s.client.post("/users/me/tfa/disable", json={"otp": code}, headers=headers)
    assert error(reply) == (400, "INVALID_PAYLOAD", 'Invalid payload. "otp" is invalid.')
    s.clock.advance(30)
    reply = s.client.post("/users/me/tfa/disable", json={"otp": s.code(secret)}, headers=headers)
    assert (reply.status_code, reply.data) == (204, b"")
    assert s.users.get_by_id(USER_ID).tfa_secret is None
    # Disabling two-factor voids the access tokens issued before it (README "Revocation").
    again = s.client.post("/users/me/tfa/disable", json={"otp": "123456"}, headers=headers)
    assert error(again) == (401, "INVALID_CREDENTIALS", "Invalid user credentials.")
    fresh = s.login()
    assert fresh.status_code == 200
    headers = {"authorization": "Bearer " + fresh.json["data"]["access_token"]}
    none = s.client.post("/users/me/tfa/disable", json={"otp": "123456"}, headers=headers)
    assert error(none) == (
        400,
        "INVALID_PAYLOAD",
        f'Invalid payload. User "{USER_ID}" doesn\'t have TFA enabled.',
    )


def test_tfa_prefix_is_configurable() -> None:
    users = MemoryUserStore()
    users.create(make_user())
    core = TokenGuard(
        secret=SECRET,
        users=users,
        sessions=MemorySessionStore(),
        passwords=FAST,
        login_stall_ms=0,
        tfa_prefix="/account/tfa",
    )
    client = Client(TokenGuardWSGI(plain_wsgi_app, guard=core))
    token = client.post("/auth/login", json={"email": EMAIL, "password": PASSWORD}).json["data"][
        "access_token"
    ]
    headers = {"authorization": f"Bearer {token}"}
    assert (
        client.post(
            "/account/tfa/generate", json={"password": PASSWORD}, headers=headers
        ).status_code
        == 200
    )
    assert client.post(
        "/users/me/tfa/generate", json={"password": PASSWORD}, headers=headers
    ).data.startswith(b"app ")


def test_secret_box_binds_ciphertext_to_the_user_and_key() -> None:
    box = SecretBox(SECRET.encode())
    sealed = box.seal("u1", "JBSWY3DPEHPK3PXP")
    assert box.open("u1", sealed) == "JBSWY3DPEHPK3PXP"
    assert box.open("u2", sealed) is None
    assert SecretBox(b"another-secret-of-enough-length-xyz").open("u1", sealed) is None
    assert box.open("u1", sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]) is None
    assert box.open("u1", "JBSWY3DPEHPK3PXP") == "JBSWY3DPEHPK3PXP"  # Directus's plain base32
    assert box.open("u1", "tg1.!!!") is None and box.open("u1", None) is None
    assert box.seal("u1", "JBSWY3DPEHPK3PXP") != sealed  # fresh nonce


def test_a_plain_directus_secret_still_works() -> None:
    s = Setup()
    secret = pyotp.random_base32()
    s.users.update(USER_ID, tfa_secret=secret)
    assert s.login(s.code(secret)).status_code == 200


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=12))
def test_arbitrary_otp_strings_never_pass_or_crash(otp: str) -> None:
    two_factor = _shared.core.extras.two_factor
    user = _shared.users.get_by_id(USER_ID)
    from tokenguard.flow import run_sync

    expected = totp_at(_shared_secret, _shared.clock())
    assert run_sync(two_factor.check(user, otp)) is False or otp == expected


_shared = Setup()
_shared_secret = pyotp.random_base32()
_shared.users.update(USER_ID, tfa_secret=SecretBox(SECRET.encode()).seal(USER_ID, _shared_secret))


@pytest.mark.parametrize("make", [MemoryOnceStore, "sqlite"])
def test_once_store_claims(make: Any, tmp_path: Any) -> None:
    store = SQLiteOnceStore(str(tmp_path / "once.db")) if make == "sqlite" else make()
    assert store.claim("k", 1000, 0) is True
    assert store.claim("k", 1000, 999) is False
    assert store.claim("other", 1000, 999) is True
    assert store.claim("k", 1000, 1000) is True  # forgotten once its time is over


@pytest.mark.redis
def test_redis_once_store(redis_url: str, redis_prefix: str) -> None:
    import redis

    from tokenguard.stores.once import RedisOnceStore

    client = redis.Redis.from_url(redis_url)
    store = RedisOnceStore(client, prefix=redis_prefix)
    assert store.claim("k", 10_000, 0) is True
    assert store.claim("k", 10_000, 0) is False
    [key] = list(client.scan_iter(match=f"{redis_prefix}*"))
    assert (
        key.startswith(f"{redis_prefix}once:".encode()) and b"k" not in key[len(redis_prefix) + 5 :]
    )
    assert 0 < client.pttl(key) <= 10_000
    client.close()


def test_otpauth_url_escapes_the_label() -> None:
    assert (
        otpauth_url("ABC", "a b@example.com", "My App")
        == "otpauth://totp/My%20App:a%20b@example.com?secret=ABC&issuer=My%20App"
    )


@pytest.mark.redis
def test_replay_is_refused_across_asgi_workers_sharing_redis(
    redis_url: str, redis_prefix: str
) -> None:
    """Two middleware instances (two workers) on one Redis: a code used on one is dead on the other."""
    import anyio
    import httpx

    from tests.helpers.auth import plain_asgi_app
    from tokenguard import TokenGuardMiddleware
    from tokenguard.stores.once import AsyncRedisOnceStore
    from tokenguard.stores.redis import AsyncRedisSessionStore

    users = MemoryUserStore()
    secret = pyotp.random_base32()
    users.create(make_user(tfa_secret=SecretBox(SECRET.encode()).seal(USER_ID, secret)))
    clock = Clock()

    def worker() -> TokenGuardMiddleware:
        sessions = AsyncRedisSessionStore.from_url(redis_url, prefix=redis_prefix)
        core = TokenGuard(
            secret=SECRET,
            users=users,
            sessions=sessions,
            passwords=FAST,
            clock=clock,
            login_stall_ms=0,
            flavour="async",
            redis_prefix=redis_prefix,
        )
        assert isinstance(core.extras.once, AsyncRedisOnceStore)
        return TokenGuardMiddleware(plain_asgi_app, guard=core)

    one, two = worker(), worker()
    code = totp_at(secret, clock())
    body = {"email": EMAIL, "password": PASSWORD, "otp": code}

    async def main() -> None:
        async with (
            httpx.AsyncClient(transport=httpx.ASGITransport(app=one), base_url="http://a") as a,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=two), base_url="http://b") as b,
        ):
            assert (await a.post("/auth/login", json=body)).status_code == 200
            replay = await b.post("/auth/login", json=body)
            assert replay.status_code == 401
            assert replay.json() == INVALID_OTP

    anyio.run(main)
