"""tokenguard.client against an in-process fake of Directus's observed /auth wire behaviour.

The fake (an ``httpx.MockTransport``) follows directus-observed.md: login bodies per mode,
cookies, rotation without grace, 204 logout, TOKEN_EXPIRED on an expired access token. The
clock is shared by the fake and the client, so expiry is reached by moving it, not by
sleeping. The real check is tests/e2e/test_client_server.py against the example app.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tokenguard.client as tgc
from tokenguard.client import (
    AsyncClient,
    AuthData,
    Client,
    DirectusError,
    InvalidCredentials,
    InvalidOtp,
    InvalidPayload,
    MemoryStorage,
    RefreshFailed,
    TokenExpired,
)

BASE = "http://api.test"
EMAIL = "admin@example.com"
PASSWORD = "correct horse battery staple"
OTP_EMAIL = "otp@example.com"
OTP = "123456"
TTL_MS = 900_000
SESSION_TTL_MS = 86_400_000


class Clock:
    def __init__(self) -> None:
        self.ms = 1_800_000_000_000
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            return self.ms

    def advance(self, ms: int) -> None:
        with self._lock:
            self.ms += ms


def _error(status: int, code: str, message: str, **ext: Any) -> httpx.Response:
    body = {"errors": [{"message": message, "extensions": {**ext, "code": code}}]}
    return httpx.Response(status, json=body)


def _cookie(header: str | None, name: str) -> str | None:
    for part in (header or "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name and value:
            return value
    return None


@dataclass
class FakeDirectus:
    """Directus's /auth endpoints and /users/me, as observed, over a fake clock."""

    clock: Clock
    ttl_ms: int = TTL_MS
    session_ttl_ms: int = SESSION_TTL_MS
    refresh_delay: float = 0.0
    access: dict[str, tuple[str, int, str | None]] = field(default_factory=dict)  # token -> (user, exp, session)
    sessions: dict[str, str] = field(default_factory=dict)  # refresh/session token -> user
    calls: list[tuple[str, str]] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    statics: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, path: str) -> int:
        return sum(1 for _, p in self.calls if p == path)

    def _issue(self, user: str, ttl: int, session: str | None = None) -> str:
        token = "at-" + secrets.token_urlsafe(16)
        self.access[token] = (user, self.clock() + ttl, session)
        return token

    def _tokens(self, user: str, mode: str, refresh: str) -> httpx.Response:
        if mode == "json":
            data = {"expires": self.ttl_ms, "refresh_token": refresh, "access_token": self._issue(user, self.ttl_ms)}
            return httpx.Response(200, json={"data": data})
        if mode == "cookie":
            data = {"expires": self.ttl_ms, "access_token": self._issue(user, self.ttl_ms)}
            return httpx.Response(
                200,
                json={"data": data},
                headers={"set-cookie": f"directus_refresh_token={refresh}; Max-Age=604800; Path=/; HttpOnly; SameSite=Lax"},
            )
        jwt = self._issue(user, self.session_ttl_ms, session=refresh)
        return httpx.Response(
            200,
            json={"data": {"expires": self.session_ttl_ms}},
            headers={"set-cookie": f"directus_session_token={jwt}; Max-Age=86400; Path=/; HttpOnly; SameSite=Lax"},
        )

    def _authenticate(self, request: httpx.Request) -> str | httpx.Response | None:
        header = request.headers.get("authorization")
        token = header[7:] if header and header.lower().startswith("bearer ") else None
        if token is None:
            token = _cookie(request.headers.get("cookie"), "directus_session_token")
        if token is None:
            return None
        if token in self.statics:
            return self.statics[token]
        entry = self.access.get(token)
        if entry is None:
            return _error(401, "INVALID_CREDENTIALS", "Invalid user credentials.")
        user, exp, session = entry
        if self.clock() >= exp:
            return _error(401, "TOKEN_EXPIRED", "Token expired.")
        if session is not None and session not in self.sessions:
            return _error(401, "INVALID_CREDENTIALS", "Invalid user credentials.")
        return user

    def _presented(self, request: httpx.Request, body: dict[str, Any]) -> tuple[str, str | None]:
        mode = body.get("mode") or ("json" if body.get("refresh_token") else "cookie")
        cookie = request.headers.get("cookie")
        if mode == "json":
            return mode, body.get("refresh_token")
        if mode == "cookie":
            return mode, _cookie(cookie, "directus_refresh_token")
        jwt = _cookie(cookie, "directus_session_token")
        entry = self.access.get(jwt or "")
        return mode, entry[2] if entry else None

    def handle(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.calls.append((request.method, request.url.path))
            self.requests.append(request)
        path = request.url.path
        body = json.loads(request.content) if request.content and path.startswith("/auth/") else {}
        # Directus fails any request carrying a bad credential, even a login.
        if path.startswith("/auth/") and "authorization" in request.headers:
            return _error(400, "TEST_BEARER_ON_AUTH", "the client sent a bearer to /auth")
        if path == "/auth/login":
            mode = body.get("mode", "json")
            if mode not in ("json", "cookie", "session"):
                return _error(400, "INVALID_PAYLOAD", 'Invalid payload. "mode" must be one of [cookie, json, session].',
                              reason='"mode" must be one of [cookie, json, session]')
            if (body.get("email"), body.get("password")) not in ((EMAIL, PASSWORD), (OTP_EMAIL, PASSWORD)):
                return _error(401, "INVALID_CREDENTIALS", "Invalid user credentials.")
            if body["email"] == OTP_EMAIL and body.get("otp") != OTP:
                return _error(401, "INVALID_OTP", "Invalid user OTP.")
            refresh = secrets.token_urlsafe(48)
            with self.lock:
                self.sessions[refresh] = body["email"]
            return self._tokens(body["email"], mode, refresh)
        if path == "/auth/refresh":
            if self.refresh_delay:
                time.sleep(self.refresh_delay)
            mode, token = self._presented(request, body)
            if not token:
                return _error(400, "INVALID_PAYLOAD",
                              "Invalid payload. The refresh token is required in either the payload or cookie.")
            with self.lock:
                user = self.sessions.pop(token, None)
                if user is None:
                    return _error(401, "INVALID_CREDENTIALS", "Invalid user credentials.")
                new = secrets.token_urlsafe(48)
                self.sessions[new] = user
            return self._tokens(user, mode, new)
        if path == "/auth/logout":
            _mode, token = self._presented(request, body)
            if not token:
                return _error(400, "INVALID_PAYLOAD",
                              "Invalid payload. The refresh token is required in either the payload or cookie.")
            with self.lock:
                self.sessions.pop(token, None)
            headers = [("set-cookie", f"{name}=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT")
                       for name in ("directus_refresh_token", "directus_session_token")
                       if _cookie(request.headers.get("cookie"), name)]
            return httpx.Response(204, headers=headers)
        if path == "/users/me":
            who = self._authenticate(request)
            if isinstance(who, httpx.Response):
                return who
            if who is None:
                return _error(401, "INVALID_CREDENTIALS", "Invalid user credentials.")
            return httpx.Response(200, json={"data": {"email": who}})
        if path == "/echo":
            return httpx.Response(200, json={"authorization": request.headers.get("authorization"),
                                             "cookie": request.headers.get("cookie")})
        return _error(404, "ROUTE_NOT_FOUND", f"Route {path} doesn't exist.", path=path)

    async def handle_async(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/auth/refresh" and self.refresh_delay:
            await anyio.sleep(self.refresh_delay)  # lets the other tasks pile up at the lock
            delay, self.refresh_delay = self.refresh_delay, 0.0
            try:
                return self.handle(request)
            finally:
                self.refresh_delay = delay
        await anyio.sleep(0)  # a checkpoint, as a real network round trip has
        return self.handle(request)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake(clock: Clock) -> FakeDirectus:
    return FakeDirectus(clock)


def make_client(fake: FakeDirectus, **kwargs: Any) -> Client:
    http = httpx.Client(transport=httpx.MockTransport(fake.handle))
    return Client(BASE, http=http, clock_ms=fake.clock, **kwargs)


def make_async(fake: FakeDirectus, **kwargs: Any) -> AsyncClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(fake.handle_async))
    return AsyncClient(BASE, http=http, clock_ms=fake.clock, **kwargs)


def body_of(request: httpx.Request) -> Any:
    return json.loads(request.content)


# -- the public surface ----------------------------------------------------------------------


def test_exported_names_are_pinned() -> None:
    assert sorted(tgc.__all__) == sorted(
        [
            "AsyncClient", "AsyncTokenStorage", "AuthData", "AuthFailed", "Client", "DirectusError",
            "FileStorage", "Forbidden", "InvalidCredentials", "InvalidOtp", "InvalidPayload",
            "InvalidToken", "MemoryStorage", "Mode", "RefreshFailed", "RequestsExceeded",
            "RouteNotFound", "ServiceUnavailable", "TokenExpired", "TokenStorage",
            "UnexpectedResponse", "UserSuspended", "check_realtime_auth_reply",
            "error_from_response", "raise_for_error", "realtime_auth_message",
        ]
    )
    for name in tgc.__all__:
        assert getattr(tgc, name) is not None


def test_bad_construction() -> None:
    with pytest.raises(ValueError, match="mode"):
        Client(BASE, mode="bogus")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="absolute"):
        Client("/relative")
    with pytest.raises(ValueError, match="static"):
        Client(BASE, static_token="x", mode="session")
    with pytest.raises(ValueError, match="not both"):
        Client(BASE, static_token="x", storage=MemoryStorage())
    with pytest.raises(ValueError, match="negative"):
        Client(BASE, refresh_margin=-1)
    with pytest.raises(TypeError):
        Client(BASE, http=httpx.Client(), timeout=3)


# -- json mode -------------------------------------------------------------------------------


def test_json_login_refresh_logout(fake: FakeDirectus, clock: Clock) -> None:
    with make_client(fake) as api:
        assert api.get_token() is None
        data = api.login(EMAIL, PASSWORD)
        assert body_of(fake.requests[-1]) == {"email": EMAIL, "password": PASSWORD, "mode": "json"}
        assert data.access_token and data.refresh_token
        assert data.expires == TTL_MS and data.expires_at == clock() + TTL_MS
        assert api.storage.get() == data
        assert api.get_token() == data.access_token

        r = api.get("/users/me")
        assert r.status_code == 200 and r.json() == {"data": {"email": EMAIL}}
        assert fake.requests[-1].headers["authorization"] == f"Bearer {data.access_token}"

        fresh = api.refresh()
        assert body_of(fake.requests[-1]) == {"mode": "json", "refresh_token": data.refresh_token}
        assert "authorization" not in fake.requests[-1].headers
        assert fresh.refresh_token != data.refresh_token and fresh.access_token != data.access_token
        assert api.storage.get() == fresh

        api.logout()
        assert fake.requests[-1].url.path == "/auth/logout"
        assert body_of(fake.requests[-1]) == {"mode": "json", "refresh_token": fresh.refresh_token}
        assert api.storage.get() is None and api.get_token() is None
        assert fresh.refresh_token not in fake.sessions
        # Logged out: the next request is anonymous.
        with pytest.raises(InvalidCredentials):
            api.get("/users/me")
        assert "authorization" not in fake.requests[-1].headers


def test_login_with_otp_and_errors(fake: FakeDirectus) -> None:
    with make_client(fake) as api:
        with pytest.raises(InvalidOtp) as missing:
            api.login(OTP_EMAIL, PASSWORD)
        assert (missing.value.status, missing.value.code) == (401, "INVALID_OTP")
        api.login(OTP_EMAIL, PASSWORD, OTP)
        assert body_of(fake.requests[-1])["otp"] == OTP
        assert api.get("/users/me").json()["data"]["email"] == OTP_EMAIL

        with pytest.raises(InvalidCredentials) as bad:
            api.login(EMAIL, "wrong")
        assert bad.value.status == 401 and bad.value.message == "Invalid user credentials."
        assert PASSWORD not in repr(bad.value) and "wrong" not in str(bad.value)
        with pytest.raises(ValueError):
            api.login(EMAIL, PASSWORD, mode="bogus")  # type: ignore[arg-type]


def test_proactive_refresh_before_expiry(fake: FakeDirectus, clock: Clock) -> None:
    with make_client(fake, refresh_margin=30) as api:
        first = api.login(EMAIL, PASSWORD)
        clock.advance(TTL_MS - 31_000)
        api.get("/users/me")
        assert fake.count("/auth/refresh") == 0
        clock.advance(2_000)  # now 29 s before expiry: within the margin
        r = api.get("/users/me")
        assert r.status_code == 200
        assert fake.count("/auth/refresh") == 1
        stored = api.storage.get()
        assert stored is not None and stored.access_token != first.access_token
        assert fake.requests[-1].headers["authorization"] == f"Bearer {stored.access_token}"


def test_margin_is_at_most_half_the_lifetime(fake: FakeDirectus, clock: Clock) -> None:
    fake.ttl_ms = 2_000
    with make_client(fake, refresh_margin=30) as api:
        api.login(EMAIL, PASSWORD)
        api.get("/users/me")
        clock.advance(900)
        api.get("/users/me")
        assert fake.count("/auth/refresh") == 0
        clock.advance(200)
        api.get("/users/me")
        assert fake.count("/auth/refresh") == 1


def test_token_expired_answer_refreshes_once_and_retries(fake: FakeDirectus, clock: Clock) -> None:
    # The server's clock runs ahead of what the client computed (a token minted with a
    # second-granular iat): the proactive refresh misses, TOKEN_EXPIRED triggers one.
    with make_client(fake, refresh_margin=0) as api:
        api.login(EMAIL, PASSWORD)
        token = api.storage.get().access_token  # type: ignore[union-attr]
        user, _exp, session = fake.access[token]
        fake.access[token] = (user, clock() - 1, session)
        r = api.post("/users/me", json={"x": 1})
        assert r.status_code == 200
        assert [c[1] for c in fake.calls[-3:]] == ["/users/me", "/auth/refresh", "/users/me"]
        assert body_of(fake.requests[-1]) == {"x": 1}  # the body was sent again


def test_token_expired_without_a_refresh_token_is_raised(fake: FakeDirectus, clock: Clock) -> None:
    with make_client(fake) as api:
        api.login(EMAIL, PASSWORD)
        token = api.storage.get().access_token  # type: ignore[union-attr]
        api.set_token(token)
        user, _exp, session = fake.access[token]
        fake.access[token] = (user, clock() - 1, session)
        with pytest.raises(TokenExpired) as info:
            api.get("/users/me")
        assert info.value.status == 401
        assert fake.count("/auth/refresh") == 0


def test_failed_refresh_is_a_clear_exception_and_not_repeated(fake: FakeDirectus, clock: Clock) -> None:
    with make_client(fake) as api:
        api.login(EMAIL, PASSWORD)
        fake.sessions.clear()  # the session was revoked on the server
        clock.advance(TTL_MS)
        with pytest.raises(RefreshFailed) as info:
            api.get("/users/me")
        error = info.value
        assert isinstance(error, DirectusError)
        assert (error.code, error.status) == ("INVALID_CREDENTIALS", 401)
        assert isinstance(error.__cause__, InvalidCredentials)
        assert "log" in str(error) or "refreshed" in str(error)
        # The same dead login is not sent again by the automatic path...
        with pytest.raises(RefreshFailed):
            api.get("/users/me")
        assert fake.count("/auth/refresh") == 1
        # ...but an explicit refresh asks again, and a new login starts afresh.
        with pytest.raises(RefreshFailed):
            api.refresh()
        assert fake.count("/auth/refresh") == 2
        api.login(EMAIL, PASSWORD)
        assert api.get("/users/me").status_code == 200


def test_refresh_with_nothing_stored_is_refused_by_the_server(fake: FakeDirectus) -> None:
    with make_client(fake) as api:
        with pytest.raises(RefreshFailed) as info:
            api.refresh()
        assert (info.value.code, info.value.status) == ("INVALID_PAYLOAD", 400)
        assert isinstance(info.value.__cause__, InvalidPayload)
        assert body_of(fake.requests[-1]) == {"mode": "json"}


def test_logout_when_logged_out_sends_nothing(fake: FakeDirectus) -> None:
    with make_client(fake) as api:
        api.logout()
        assert fake.calls == []


def test_logout_forgets_even_when_the_server_fails(fake: FakeDirectus) -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/auth/logout":
            raise httpx.ConnectError("down", request=request)
        return fake.handle(request)

    api = Client(BASE, http=httpx.Client(transport=httpx.MockTransport(broken)), clock_ms=fake.clock)
    api.login(EMAIL, PASSWORD)
    with pytest.raises(httpx.ConnectError):
        api.logout()
    assert api.storage.get() is None


def test_static_token_client(fake: FakeDirectus, clock: Clock) -> None:
    fake.statics["static-token-1"] = EMAIL
    with make_client(fake, static_token="static-token-1") as api:
        assert api.get_token() == "static-token-1"
        clock.advance(10 * TTL_MS)
        assert api.get("/users/me").json()["data"]["email"] == EMAIL
        assert fake.requests[-1].headers["authorization"] == "Bearer static-token-1"
        assert fake.count("/auth/refresh") == 0


def test_set_token_and_per_request_override(fake: FakeDirectus) -> None:
    fake.statics["other"] = "other@example.com"
    with make_client(fake) as api:
        data = api.login(EMAIL, PASSWORD)
        r = api.get("/users/me", token="other")
        assert r.json()["data"]["email"] == "other@example.com"
        assert fake.requests[-1].headers["authorization"] == "Bearer other"
        # The override is for that request only.
        assert api.get("/users/me").json()["data"]["email"] == EMAIL
        # An explicit Authorization header is the caller's too.
        api.get("/echo", headers={"Authorization": "Token abc"})
        assert fake.requests[-1].headers["authorization"] == "Token abc"
        assert api.storage.get() == data

        api.set_token("other")
        assert api.get_token() == "other"
        assert api.storage.get() == AuthData(access_token="other")
        api.set_token(None)
        assert api.get_token() is None


def test_login_never_leaves_the_origin(fake: FakeDirectus) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if (request.url.scheme, request.url.host, request.url.port) != ("http", "api.test", None):
            seen.append(request)
            return httpx.Response(200, json={})
        return fake.handle(request)

    api = Client(BASE, http=httpx.Client(transport=httpx.MockTransport(handler)), clock_ms=fake.clock)
    api.login(EMAIL, PASSWORD)
    api.get("https://elsewhere.test/steal")
    api.get("http://api.test:8080/other-port")
    api.get("https://api.test/other-scheme")
    assert len(seen) == 3
    assert all("authorization" not in r.headers for r in seen)
    # Same origin, absolute URL: attached.
    api.get("http://api.test/echo")
    assert fake.requests[-1].headers["authorization"].startswith("Bearer at-")


def test_base_path_is_kept() -> None:
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.raw_path.decode())
        return httpx.Response(200, json={"data": {"expires": 1000, "access_token": "a", "refresh_token": "r"}})

    api = Client(BASE + "/api", http=httpx.Client(transport=httpx.MockTransport(handler)))
    api.login(EMAIL, PASSWORD)
    api.get("items/x", params={"q": "1"})
    api.get("/items/y?z=2")
    assert paths == ["/api/auth/login", "/api/items/x?q=1", "/api/items/y?z=2"]


def test_raise_errors_off_returns_the_response(fake: FakeDirectus) -> None:
    with make_client(fake, raise_errors=False) as api:
        r = api.get("/users/me")
        assert r.status_code == 401
        assert tgc.error_from_response(r).code == "INVALID_CREDENTIALS"
        with pytest.raises(InvalidCredentials):
            tgc.raise_for_error(r)
        # login, refresh and logout raise whatever the setting.
        with pytest.raises(InvalidCredentials):
            api.login(EMAIL, "nope")


def test_success_without_tokens_is_unexpected() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": {"expires": 900000}})

    api = Client(BASE, http=httpx.Client(transport=httpx.MockTransport(handler)))
    with pytest.raises(tgc.UnexpectedResponse) as info:
        api.login(EMAIL, PASSWORD)
    assert info.value.status == 200
    assert api.storage.get() is None


def test_sync_client_refuses_an_async_storage(fake: FakeDirectus) -> None:
    class AsyncStore:
        async def get(self) -> AuthData | None:
            return None

        async def set(self, data: AuthData) -> None:
            return None

    api = make_client(fake, storage=AsyncStore())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="AsyncClient"):
        api.get_token()


# -- cookie and session modes ----------------------------------------------------------------


def test_cookie_mode(fake: FakeDirectus) -> None:
    with make_client(fake, mode="cookie") as api:
        data = api.login(EMAIL, PASSWORD)
        assert body_of(fake.requests[-1])["mode"] == "cookie"
        assert data.refresh_token in fake.sessions  # the cookie's value, mirrored
        assert api.http.cookies.get("directus_refresh_token") == data.refresh_token
        assert api.get("/users/me").status_code == 200
        assert fake.requests[-1].headers["authorization"] == f"Bearer {data.access_token}"

        fresh = api.refresh()
        request = fake.requests[-1]
        assert body_of(request) == {"mode": "cookie"}
        assert f"directus_refresh_token={data.refresh_token}" in request.headers["cookie"]
        assert fresh.refresh_token != data.refresh_token
        assert api.http.cookies.get("directus_refresh_token") == fresh.refresh_token

        api.logout()
        assert body_of(fake.requests[-1]) == {"mode": "cookie"}
        assert f"directus_refresh_token={fresh.refresh_token}" in fake.requests[-1].headers["cookie"]
        assert fresh.refresh_token not in fake.sessions
        assert api.http.cookies.get("directus_refresh_token") is None
        assert api.storage.get() is None


def test_session_mode(fake: FakeDirectus, clock: Clock) -> None:
    with make_client(fake, mode="session") as api:
        data = api.login(EMAIL, PASSWORD)
        assert data.refresh_token is None and data.access_token
        assert data.expires == SESSION_TTL_MS
        r = api.get("/users/me")
        assert r.status_code == 200
        request = fake.requests[-1]
        assert "authorization" not in request.headers
        assert request.headers["cookie"] == f"directus_session_token={data.access_token}"

        clock.advance(SESSION_TTL_MS - 1000)
        assert api.get("/users/me").status_code == 200
        refresh = next(r for r in fake.requests if r.url.path == "/auth/refresh")
        assert body_of(refresh) == {"mode": "session"}
        assert "authorization" not in refresh.headers
        fresh = api.storage.get()
        assert fresh is not None and fresh.access_token != data.access_token
        assert api.get_token() == fresh.access_token

        api.logout()
        assert body_of(fake.requests[-1]) == {"mode": "session"}
        assert api.http.cookies.get("directus_session_token") is None
        with pytest.raises(InvalidCredentials):
            api.get("/users/me")


def test_login_mode_override_becomes_the_mode(fake: FakeDirectus) -> None:
    with make_client(fake) as api:
        api.login(EMAIL, PASSWORD, mode="session")
        assert api.mode == "session"
        api.refresh()
        assert body_of(fake.requests[-1]) == {"mode": "session"}


def test_stored_cookie_login_survives_a_new_client(fake: FakeDirectus) -> None:
    storage = MemoryStorage()
    with make_client(fake, mode="cookie", storage=storage) as first:
        first.login(EMAIL, PASSWORD)
    with make_client(fake, mode="cookie", storage=storage) as second:
        assert second.http.cookies.get("directus_refresh_token") is None
        fresh = second.refresh()  # the stored cookie is put back in the new jar
        assert fresh.refresh_token in fake.sessions
    with make_client(fake, mode="session", storage=MemoryStorage()) as third:
        data = third.login(EMAIL, PASSWORD)
        session_store = third.storage
    with make_client(fake, mode="session", storage=session_store) as fourth:
        assert fourth.get("/users/me").status_code == 200
        assert fake.requests[-1].headers["cookie"] == f"directus_session_token={data.access_token}"


def test_stale_session_cookie_is_not_sent_to_login(fake: FakeDirectus) -> None:
    with make_client(fake, mode="session") as api:
        api.http.cookies.set("directus_session_token", "stale", domain="api.test")
        api.login(EMAIL, PASSWORD)
        assert "cookie" not in fake.requests[-1].headers


# -- concurrency -----------------------------------------------------------------------------


def test_threads_at_expiry_share_one_refresh(fake: FakeDirectus, clock: Clock) -> None:
    fake.refresh_delay = 0.05
    with make_client(fake) as api:
        api.login(EMAIL, PASSWORD)
        clock.advance(TTL_MS)
        with ThreadPoolExecutor(max_workers=16) as pool:
            statuses = list(pool.map(lambda _: api.get("/users/me").status_code, range(32)))
        assert statuses == [200] * 32
        assert fake.count("/auth/refresh") == 1


def test_threads_after_token_expired_share_one_refresh(fake: FakeDirectus, clock: Clock) -> None:
    fake.refresh_delay = 0.05
    with make_client(fake, refresh_margin=0) as api:
        api.login(EMAIL, PASSWORD)
        token = api.storage.get().access_token  # type: ignore[union-attr]
        user, _exp, session = fake.access[token]
        fake.access[token] = (user, clock() - 1, session)  # expired before the client thinks
        with ThreadPoolExecutor(max_workers=16) as pool:
            statuses = list(pool.map(lambda _: api.get("/users/me").status_code, range(32)))
        assert statuses == [200] * 32
        assert fake.count("/auth/refresh") == 1


def test_threads_share_one_failed_refresh(fake: FakeDirectus, clock: Clock) -> None:
    fake.refresh_delay = 0.02
    with make_client(fake) as api:
        api.login(EMAIL, PASSWORD)
        fake.sessions.clear()
        clock.advance(TTL_MS)

        def call(_: int) -> str:
            try:
                api.get("/users/me")
            except RefreshFailed as exc:
                return exc.code
            return "ok"

        with ThreadPoolExecutor(max_workers=8) as pool:
            assert list(pool.map(call, range(16))) == ["INVALID_CREDENTIALS"] * 16
        assert fake.count("/auth/refresh") == 1


# -- async -----------------------------------------------------------------------------------


def run(fn: Callable[[], Any]) -> Any:
    return anyio.run(fn)


def test_async_every_method(fake: FakeDirectus, clock: Clock) -> None:
    fake.statics["other"] = "other@example.com"

    async def main() -> None:
        async with make_async(fake) as api:
            data = await api.login(EMAIL, PASSWORD)
            assert await api.get_token() == data.access_token
            assert (await api.get("/users/me")).json()["data"]["email"] == EMAIL
            assert (await api.get("/users/me", token="other")).json()["data"]["email"] == "other@example.com"
            fresh = await api.refresh()
            assert fresh.refresh_token != data.refresh_token
            message = json.loads(await api.realtime_auth_message(uid=7))
            assert message == {"type": "auth", "access_token": fresh.access_token, "uid": 7}
            for method in ("post", "put", "patch", "delete"):
                r = await getattr(api, method)("/echo")
                assert r.json()["authorization"] == f"Bearer {fresh.access_token}"
            await api.logout()
            assert await api.get_token() is None
            with pytest.raises(RuntimeError):
                await api.realtime_auth_message()
            await api.set_token("other")
            assert (await api.get("/users/me")).json()["data"]["email"] == "other@example.com"

    run(main)


def test_async_many_tasks_at_expiry_make_one_refresh(fake: FakeDirectus, clock: Clock) -> None:
    fake.refresh_delay = 0.02

    async def main() -> None:
        async with make_async(fake) as api:
            await api.login(EMAIL, PASSWORD)
            clock.advance(TTL_MS)
            statuses: list[int] = []

            async def one() -> None:
                statuses.append((await api.get("/users/me")).status_code)

            async with anyio.create_task_group() as tg:
                for _ in range(50):
                    tg.start_soon(one)
            assert statuses == [200] * 50
            assert fake.count("/auth/refresh") == 1

    run(main)


def test_async_storage_is_awaited(fake: FakeDirectus) -> None:
    class AsyncStore:
        def __init__(self) -> None:
            self.data: AuthData | None = None
            self.sets = 0

        async def get(self) -> AuthData | None:
            await anyio.sleep(0)
            return self.data

        async def set(self, data: AuthData) -> None:
            await anyio.sleep(0)
            self.sets += 1
            self.data = None if data.empty else data

    store = AsyncStore()

    async def main() -> None:
        async with make_async(fake, storage=store) as api:
            await api.login(EMAIL, PASSWORD)
            assert store.data is not None and store.sets == 1
            assert (await api.get("/users/me")).status_code == 200
            await api.logout()
            assert store.data is None

    run(main)


def test_sync_realtime_message(fake: FakeDirectus) -> None:
    with make_client(fake) as api:
        with pytest.raises(RuntimeError):
            api.realtime_auth_message()
        data = api.login(EMAIL, PASSWORD)
        assert json.loads(api.realtime_auth_message()) == {"type": "auth", "access_token": data.access_token}


# -- properties ------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(
    status=st.integers(min_value=200, max_value=599),
    body=st.one_of(
        st.binary(max_size=200),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=20),
            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
            max_leaves=20,
        ).map(lambda v: json.dumps({"data": v}).encode()),
    ),
)
def test_any_login_answer_is_stored_or_raised_typed(status: int, body: bytes) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body)

    api = Client(BASE, http=httpx.Client(transport=httpx.MockTransport(handler)))
    try:
        data = api.login(EMAIL, PASSWORD)
    except DirectusError as exc:
        assert exc.status == status
        assert api.storage.get() is None
    else:
        assert status < 400
        assert isinstance(data.access_token, str) and isinstance(data.refresh_token, str)
        assert api.storage.get() == data


def _jwt(payload: object) -> str:
    import base64

    def part(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(payload)}.c2ln"


def test_jwt_exp_bounds_the_expiry(clock: Clock) -> None:
    from tokenguard.client._auth import jwt_expiry_ms

    assert jwt_expiry_ms(_jwt({"exp": 1_800_000_001})) == 1_800_000_001_000
    for bad in ("a.b", "x.!!!.y", _jwt([1]), _jwt({"exp": "1"}), _jwt({"exp": True}), _jwt({"exp": -5}), _jwt({})):
        assert jwt_expiry_ms(bad) is None
    # The token says it expires 700 ms before "now + expires" does: the token wins.
    token = _jwt({"exp": (clock() + 1_300) / 1000})

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": {"expires": 2000, "access_token": token, "refresh_token": "r"}})

    api = Client(BASE, http=httpx.Client(transport=httpx.MockTransport(handler)), clock_ms=clock)
    assert api.login(EMAIL, PASSWORD).expires_at == clock() + 1_300


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300) | st.lists(st.text(max_size=40), min_size=3, max_size=3).map(".".join))
def test_jwt_exp_never_raises(token: str) -> None:
    from tokenguard.client._auth import jwt_expiry_ms

    value = jwt_expiry_ms(token)
    assert value is None or isinstance(value, int)


def test_a_streamed_body_is_not_sent_twice(fake: FakeDirectus, clock: Clock) -> None:
    with make_client(fake, refresh_margin=0) as api:
        api.login(EMAIL, PASSWORD)
        token = api.storage.get().access_token  # type: ignore[union-attr]
        user, _exp, session = fake.access[token]
        fake.access[token] = (user, clock() - 1, session)
        with pytest.raises(TokenExpired):
            api.post("/users/me", content=iter([b"chunk"]))
        assert fake.count("/auth/refresh") == 0


@pytest.mark.parametrize("mode", ["cookie", "session"])
def test_threads_in_cookie_modes_share_one_refresh(fake: FakeDirectus, clock: Clock, mode: str) -> None:
    fake.refresh_delay = 0.03
    with make_client(fake, mode=mode) as api:
        api.login(EMAIL, PASSWORD)
        clock.advance(SESSION_TTL_MS)
        with ThreadPoolExecutor(max_workers=16) as pool:
            statuses = list(pool.map(lambda _: api.get("/users/me").status_code, range(48)))
        assert statuses == [200] * 48
        assert fake.count("/auth/refresh") == 1


def test_client_modules_import_only_the_client_package() -> None:
    import ast
    from pathlib import Path

    package = Path(tgc.__file__).parent
    for source in sorted(package.glob("*.py")):
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    assert node.level == 1, f"{source.name} reaches outside tokenguard.client"
                else:
                    assert not (node.module or "").startswith("tokenguard"), source.name
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("tokenguard"), source.name


def test_a_cancelled_caller_does_not_lose_a_rotated_token(fake: FakeDirectus, clock: Clock) -> None:
    fake.refresh_delay = 0.05

    async def main() -> None:
        async with make_async(fake) as api:
            first = await api.login(EMAIL, PASSWORD)
            clock.advance(TTL_MS)
            with anyio.move_on_after(0.01) as scope:
                await api.get("/users/me")
            assert scope.cancelled_caught
            # The refresh the server answered was kept, although its caller gave up.
            stored = api.storage.get()  # type: ignore[union-attr]
            assert stored is not None and stored.refresh_token != first.refresh_token
            assert stored.refresh_token in fake.sessions
            assert (await api.get("/users/me")).status_code == 200
            assert fake.count("/auth/refresh") == 1

    run(main)


def test_no_token_or_password_in_logs(fake: FakeDirectus, clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    with caplog.at_level(logging.DEBUG), make_client(fake, mode="cookie") as api:
        data = api.login(EMAIL, PASSWORD)
        api.get("/users/me")
        clock.advance(TTL_MS)
        fresh = api.get_token()
        api.logout()
        with pytest.raises(InvalidCredentials):
            api.login(EMAIL, "hunter2-wrong")
    assert caplog.records  # httpx did log the requests
    for secret in (PASSWORD, "hunter2-wrong", data.access_token, data.refresh_token, fresh):
        assert secret and secret not in caplog.text
