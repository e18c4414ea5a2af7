"""tokenguard.client against the Starlette example app served by a real uvicorn on 127.0.0.1.

The server runs with ``ACCESS_TOKEN_TTL=2s``, ``SESSION_COOKIE_TTL=3s``, no login stall and
no verification leeway, so that tokens really expire during the tests. Requests are
counted with httpx event hooks on the client side (what the client sent is what matters).
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from tests.helpers.servers import Server, serve
from tests.helpers.tokens import OTHER_SECRET, SECRET, mint
from tokenguard.client import (
    AsyncClient,
    AuthData,
    Client,
    FileStorage,
    Forbidden,
    InvalidCredentials,
    InvalidPayload,
    InvalidToken,
    MemoryStorage,
    RefreshFailed,
    RouteNotFound,
    TokenExpired,
    UnexpectedResponse,
)

pytestmark = pytest.mark.e2e

EMAIL = "admin@example.com"
PASSWORD = "correct horse battery staple"
STATIC = "admin-static-token-Xq8Wv2Lk9Pz4"
ENV = {
    "SECRET": SECRET,
    "ADMIN_EMAIL": EMAIL,
    "ADMIN_PASSWORD": PASSWORD,
    "ADMIN_TOKEN": STATIC,
    "TOKENGUARD_PUBLIC_ROLE": "public",
    "ACCESS_TOKEN_TTL": "2s",
    "SESSION_COOKIE_TTL": "3s",
    "LOGIN_STALL_TIME": "0",
    "TOKENGUARD_JWT_LEEWAY": "0",
}
ACCESS_TTL_MS = 2000
SESSION_TTL_MS = 3000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    argv = [sys.executable, "-m", "examples.starlette_app.app"]
    with serve(argv, ENV, tmp_path_factory.mktemp("client-e2e")) as srv:
        yield srv


class Sent:
    """Counts what a client sent and what came back, per (method, path)."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str]] = Counter()
        self.log: list[tuple[str, str, int]] = []

    def on_request(self, request: httpx.Request) -> None:
        self.requests[(request.method, request.url.path)] += 1

    def on_response(self, response: httpx.Response) -> None:
        request = response.request
        self.log.append((request.method, request.url.path, response.status_code))

    async def aon_request(self, request: httpx.Request) -> None:
        self.on_request(request)

    async def aon_response(self, response: httpx.Response) -> None:
        self.on_response(response)

    @property
    def refreshes(self) -> int:
        return self.requests[("POST", "/auth/refresh")]


def sync_client(server: Server, sent: Sent | None = None, **kwargs: Any) -> Client:
    hooks = {"request": [sent.on_request], "response": [sent.on_response]} if sent else {}
    return Client(server.url, http=httpx.Client(event_hooks=hooks, timeout=10), **kwargs)


def async_client(server: Server, sent: Sent | None = None, **kwargs: Any) -> AsyncClient:
    hooks = {"request": [sent.aon_request], "response": [sent.aon_response]} if sent else {}
    return AsyncClient(server.url, http=httpx.AsyncClient(event_hooks=hooks, timeout=10), **kwargs)


def me(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return str(response.json()["data"]["email"])


def wait_until_expired(data: AuthData) -> None:
    """Sleep until the server sees ``data``'s access token as expired (exp is whole seconds)."""
    assert data.expires_at is not None
    delay = data.expires_at / 1000 - time.time() + 1.1
    if delay > 0:
        time.sleep(delay)


# -- every method, per mode --------------------------------------------------------------------


def test_json_mode_every_method(server: Server) -> None:
    sent = Sent()
    with sync_client(server, sent) as api:
        assert api.get_token() is None
        data = api.login(EMAIL, PASSWORD)
        assert data.expires == ACCESS_TTL_MS
        assert data.access_token and data.refresh_token and len(data.refresh_token) == 64
        assert api.get_token() == data.access_token
        assert me(api.get("/users/me")) == EMAIL
        assert api.get("/admin").json() == {"data": {"secret": "for administrators only"}}

        fresh = api.refresh()
        assert fresh.refresh_token != data.refresh_token
        assert fresh.refresh_token[:22] == data.refresh_token[:22]  # same family, rotated
        assert api.storage.get() == fresh
        assert me(api.get("/users/me")) == EMAIL

        api.logout()
        assert api.storage.get() is None and api.get_token() is None
        assert sent.log[-1] == ("POST", "/auth/logout", 204)
        with pytest.raises(InvalidCredentials):
            api.get("/users/me")
        # The logged-out refresh token is dead on the server.
        api.storage.set(fresh)
        with pytest.raises(RefreshFailed) as info:
            api.refresh()
        assert (info.value.code, info.value.status) == ("INVALID_CREDENTIALS", 401)


def test_async_json_mode_every_method(server: Server) -> None:
    async def main() -> None:
        async with async_client(server) as api:
            data = await api.login(EMAIL, PASSWORD)
            assert await api.get_token() == data.access_token
            assert me(await api.get("/users/me")) == EMAIL
            fresh = await api.refresh()
            assert fresh.access_token and fresh.refresh_token != data.refresh_token
            assert me(await api.get("/users/me", token=STATIC)) == EMAIL
            await api.set_token(STATIC)
            assert me(await api.get("/users/me")) == EMAIL
            await api.set_token(None)
            with pytest.raises(InvalidCredentials):
                await api.get("/users/me")
            await api.login(EMAIL, PASSWORD)
            await api.logout()
            assert await api.get_token() is None

    anyio.run(main)


def test_cookie_mode(server: Server) -> None:
    sent = Sent()
    with sync_client(server, sent, mode="cookie") as api:
        data = api.login(EMAIL, PASSWORD)
        cookie = api.http.cookies.get("directus_refresh_token")
        assert cookie is not None and data.refresh_token == cookie and len(cookie) == 64
        assert me(api.get("/users/me")) == EMAIL

        fresh = api.refresh()
        assert fresh.refresh_token == api.http.cookies.get("directus_refresh_token") != cookie
        assert me(api.get("/users/me")) == EMAIL

        api.logout()
        assert sent.log[-1] == ("POST", "/auth/logout", 204)
        assert api.http.cookies.get("directus_refresh_token") is None
        assert api.storage.get() is None


def test_session_mode(server: Server) -> None:
    sent = Sent()
    with sync_client(server, sent, mode="session", refresh_margin=1.0) as api:
        data = api.login(EMAIL, PASSWORD)
        assert data.expires == SESSION_TTL_MS and data.refresh_token is None
        assert api.http.cookies.get("directus_session_token") == data.access_token
        assert me(api.get("/users/me")) == EMAIL

        fresh = api.refresh()
        assert fresh.access_token != data.access_token
        assert me(api.get("/users/me")) == EMAIL
        # The session JWT is a bearer token too (the realtime helper sends it).
        assert me(httpx.get(server.url + "/users/me", headers={"Authorization": f"Bearer {fresh.access_token}"})) == EMAIL

        api.logout()
        assert sent.log[-1] == ("POST", "/auth/logout", 204)
        assert api.http.cookies.get("directus_session_token") is None
        with pytest.raises(InvalidCredentials):
            api.get("/users/me")
        # Session tokens are revocable: the old cookie is dead once logged out.
        r = httpx.get(server.url + "/users/me", headers={"Cookie": f"directus_session_token={fresh.access_token}"})
        assert r.status_code == 401


def test_static_token_client(server: Server) -> None:
    sent = Sent()
    with sync_client(server, sent, static_token=STATIC) as api:
        assert me(api.get("/users/me")) == EMAIL
        assert api.get_token() == STATIC
        assert sent.refreshes == 0


# -- automatic refresh -------------------------------------------------------------------------


def test_auto_refresh_across_short_token_lifetimes(server: Server) -> None:
    sent = Sent()
    with sync_client(server, sent, refresh_margin=0.7) as api:
        api.login(EMAIL, PASSWORD)
        deadline = time.monotonic() + 5.5
        calls = 0
        while time.monotonic() < deadline:
            assert me(api.get("/users/me")) == EMAIL
            calls += 1
            time.sleep(0.2)
        assert calls >= 10
        # Five and a half seconds of 2 s tokens: refreshed along the way, every call answered.
        assert sent.refreshes >= 2


def test_session_mode_auto_refresh(server: Server) -> None:
    sent = Sent()
    with sync_client(server, sent, mode="session", refresh_margin=1.0) as api:
        api.login(EMAIL, PASSWORD)
        deadline = time.monotonic() + 4.5
        while time.monotonic() < deadline:
            assert me(api.get("/users/me")) == EMAIL
            time.sleep(0.25)
        assert sent.refreshes >= 1


def test_token_expired_answer_refreshes_and_retries(server: Server) -> None:
    sent = Sent()
    with sync_client(server, sent) as api:
        data = api.login(EMAIL, PASSWORD)
        # The client believes the token is good for an hour; the server knows better.
        api.storage.set(replace(data, expires_at=data.expires_at + 3_600_000))  # type: ignore[operator]
        wait_until_expired(data)
        assert me(api.get("/users/me", params={"fields": "email"})) == EMAIL
        assert sent.log[-3:] == [
            ("GET", "/users/me", 401),
            ("POST", "/auth/refresh", 200),
            ("GET", "/users/me", 200),
        ]


def test_expired_token_without_refresh_token_raises(server: Server) -> None:
    with sync_client(server) as api:
        data = api.login(EMAIL, PASSWORD)
        api.set_token(data.access_token)
        wait_until_expired(data)
        with pytest.raises(TokenExpired) as info:
            api.get("/users/me")
        assert (info.value.status, info.value.message) == (401, "Token expired.")


def test_many_async_requests_at_expiry_make_exactly_one_refresh(server: Server) -> None:
    sent = Sent()

    async def main() -> None:
        async with async_client(server, sent, refresh_margin=0.2) as api:
            data = await api.login(EMAIL, PASSWORD)
            wait_until_expired(data)  # both the client and the server see it expired
            results: list[str] = []

            async def one() -> None:
                results.append(me(await api.get("/users/me")))

            async with anyio.create_task_group() as tg:
                for _ in range(40):
                    tg.start_soon(one)
            assert results == [EMAIL] * 40
            assert sent.refreshes == 1

    anyio.run(main)


def test_many_async_requests_answered_token_expired_make_exactly_one_refresh(server: Server) -> None:
    sent = Sent()

    async def main() -> None:
        storage = MemoryStorage()
        async with async_client(server, sent, storage=storage, refresh_margin=0.2) as api:
            data = await api.login(EMAIL, PASSWORD)
            storage.set(replace(data, expires_at=data.expires_at + 3_600_000))  # type: ignore[operator]
            wait_until_expired(data)  # only the server knows
            results: list[str] = []

            async def one() -> None:
                results.append(me(await api.get("/users/me")))

            async with anyio.create_task_group() as tg:
                for _ in range(40):
                    tg.start_soon(one)
            assert results == [EMAIL] * 40
            assert sent.refreshes == 1
            statuses = Counter(s for m, p, s in sent.log if p == "/users/me")
            assert statuses[200] == 40 and set(statuses) <= {200, 401}

    anyio.run(main)


def test_many_threads_at_expiry_make_exactly_one_refresh(server: Server) -> None:
    sent = Sent()
    with sync_client(server, sent, refresh_margin=0.2) as api:
        data = api.login(EMAIL, PASSWORD)
        wait_until_expired(data)
        with ThreadPoolExecutor(max_workers=16) as pool:
            emails = list(pool.map(lambda _: me(api.get("/users/me")), range(32)))
        assert emails == [EMAIL] * 32
        assert sent.refreshes == 1


# -- storage across runs -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["json", "cookie", "session"])
def test_file_storage_keeps_the_login_across_runs(server: Server, tmp_path: Path, mode: str) -> None:
    path = tmp_path / "state" / "login.json"
    with sync_client(server, mode=mode, storage=FileStorage(path), refresh_margin=1.0) as first:  # type: ignore[arg-type]
        first.login(EMAIL, PASSWORD)
    assert path.stat().st_mode & 0o777 == 0o600

    # A new process: a new client, a new (empty) cookie jar, the same file.
    sent = Sent()
    with sync_client(server, sent, mode=mode, storage=FileStorage(path), refresh_margin=1.0) as second:  # type: ignore[arg-type]
        assert me(second.get("/users/me")) == EMAIL
        before = FileStorage(path).get()
        second.refresh()
        after = FileStorage(path).get()
        assert before is not None and after is not None and after != before
        assert me(second.get("/users/me")) == EMAIL
        second.logout()
        assert sent.log[-1] == ("POST", "/auth/logout", 204)
    assert not path.exists()


# -- errors ------------------------------------------------------------------------------------


def test_error_mapping(server: Server) -> None:
    with sync_client(server) as api:
        with pytest.raises(InvalidCredentials) as bad:
            api.login(EMAIL, "wrong password")
        assert (bad.value.status, bad.value.code, bad.value.message) == (401, "INVALID_CREDENTIALS", "Invalid user credentials.")
        with pytest.raises(InvalidCredentials):
            api.login("nobody@example.com", PASSWORD)
        with pytest.raises(InvalidPayload) as payload:
            api.login("not-an-email", PASSWORD)
        assert payload.value.status == 400
        assert payload.value.extensions["reason"] == '"email" must be a valid email'
        assert api.storage.get() is None

        with pytest.raises(InvalidToken) as forged:
            api.get("/users/me", token=mint(secret=OTHER_SECRET))
        assert forged.value.status == 403
        with pytest.raises(TokenExpired):
            api.get("/users/me", token=mint(exp=1000, iat=900))
        with pytest.raises(Forbidden) as forbidden:
            api.get("/admin", token=mint(role="editor"))
        assert forbidden.value.status == 403
        with pytest.raises(RouteNotFound) as missing:
            api.get("/auth/login")
        assert (missing.value.status, missing.value.extensions["path"]) == (404, "/auth/login")
        with pytest.raises(UnexpectedResponse) as plain:
            api.get("/no/such/page")  # Starlette's own plain-text 404
        assert plain.value.status == 404

        with pytest.raises(RefreshFailed) as nothing:
            api.refresh()
        assert (nothing.value.code, nothing.value.status) == ("INVALID_PAYLOAD", 400)


def test_revoked_session_fails_refresh_clearly(server: Server) -> None:
    sent = Sent()
    storage = MemoryStorage()
    with sync_client(server, sent, storage=storage) as api:
        data = api.login(EMAIL, PASSWORD)
        # Another client logs this session out (as an admin revoking it would).
        with sync_client(server, storage=MemoryStorage(data)) as other:
            other.logout()
        wait_until_expired(data)
        with pytest.raises(RefreshFailed) as info:
            api.get("/users/me")
        assert (info.value.code, info.value.status) == ("INVALID_CREDENTIALS", 401)
        with pytest.raises(RefreshFailed):
            api.get("/users/me")
        assert sent.refreshes == 1  # the dead login is not sent again
        api.login(EMAIL, PASSWORD)
        assert me(api.get("/users/me")) == EMAIL


def test_realtime_message_carries_a_fresh_token(server: Server) -> None:
    import json

    sent = Sent()
    with sync_client(server, sent, refresh_margin=0.2) as api:
        data = api.login(EMAIL, PASSWORD)
        wait_until_expired(data)
        message = json.loads(api.realtime_auth_message(uid="u1"))
        assert sent.refreshes == 1
        token = api.get_token()
        assert message == {"type": "auth", "access_token": token, "uid": "u1"}
        assert me(httpx.get(server.url + "/users/me", headers={"Authorization": f"Bearer {token}"})) == EMAIL
