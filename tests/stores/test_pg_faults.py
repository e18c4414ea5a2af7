"""PostgreSQL stopped mid-test, on a cluster of the test's own: every operation is a
``StoreUnavailable`` (503 through the middleware, nothing accepted), and the stores work
again by themselves once the server is back."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from werkzeug.test import Client as WerkzeugClient

from tests.helpers.auth import (
    EMAIL,
    FAST,
    PASSWORD,
    SECRET,
    USER_ID,
    error_body,
    make_user,
    plain_asgi_app,
    plain_wsgi_app,
)
from tests.helpers.pg_server import PgServer
from tokenguard import TokenGuardMiddleware
from tokenguard.app import TokenGuard
from tokenguard.shells.wsgi import TokenGuardWSGI
from tokenguard.stores.base import StoreUnavailable
from tokenguard.stores.postgres import PgUserStore

from .conftest import new_token, open_session_store, real_now_ms, record

pytestmark = pytest.mark.pg

HOUR = 3_600_000
# A liveness bound, not a speed claim: the pool waits 2 s for a connection.
HANG = 30
RECOVERY = 30

DOWN = error_body(
    "SERVICE_UNAVAILABLE",
    "Service \"database\" is unavailable. Couldn't reach PostgreSQL.",
    service="database",
    reason="Couldn't reach PostgreSQL",
)


def bounded(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args, **kwargs).result(timeout=HANG)


@pytest.mark.parametrize("flavour", ["pg", "pg-async"])
def test_a_stopped_server_is_unavailable_then_works_again(
    own_pg: PgServer, flavour: str, tmp_path: Any
) -> None:
    with ExitStack() as stack:
        store = open_session_store(flavour, stack, tmp_path, None, None, own_pg.conninfo)
        now = real_now_ms()
        before = record(new_token(), expires_at_ms=now + HOUR)
        store.create(before)
        assert store.get(before.token_hash, now) == before

        own_pg.stop()
        old = record(new_token(), expires_at_ms=now + HOUR)
        nxt = record(new_token(old.family), expires_at_ms=now + HOUR)
        for operation in (
            lambda: store.create(old),
            lambda: store.get(before.token_hash, now),
            lambda: store.rotate(before.token_hash, nxt, now_ms=now, grace_ms=0),
            lambda: store.revoke(before.token_hash),
            lambda: store.revoke_user("user-1"),
        ):
            with pytest.raises(StoreUnavailable) as info:
                bounded(operation)
            assert (info.value.service, info.value.reason) == (
                "database", "Couldn't reach PostgreSQL"
            )

        own_pg.start()  # same port, same data: the pool reconnects by itself
        assert wait_for(lambda: store.get(before.token_hash, now)) == before
        successor = record(new_token(before.family), expires_at_ms=now + HOUR)
        assert store.rotate(before.token_hash, successor, now_ms=now, grace_ms=0).status == (
            "rotated"
        )


def wait_for(probe: Callable[[], Any]) -> Any:
    """``probe()`` once it stops raising StoreUnavailable (bounded)."""
    deadline = time.monotonic() + RECOVERY
    while True:
        try:
            return bounded(probe)
        except StoreUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


class App:
    """The middleware (WSGI or ASGI) over ``DB_CLIENT=pg`` stores, requests as in a browser."""

    def __init__(self, kind: str, conninfo: str, portal: Any) -> None:
        self.kind = kind
        self.portal = portal
        seed = PgUserStore(conninfo)
        seed.create(make_user())
        seed.close()
        options: dict[str, Any] = {
            "secret": SECRET,
            "db_client": "pg",
            "db_connection_string": conninfo,
            "login_stall_ms": 0,
        }
        if kind == "asgi":
            self.core = portal.call(self._async_core, options)
            self.app: Any = TokenGuardMiddleware(plain_asgi_app, guard=self.core)
        else:
            self.core = TokenGuard(passwords=FAST, **options)
            self.client = WerkzeugClient(
                TokenGuardWSGI(plain_wsgi_app, guard=self.core), use_cookies=False
            )

    @staticmethod
    async def _async_core(options: dict[str, Any]) -> TokenGuard:
        return TokenGuard(passwords=FAST, flavour="async", **options)

    def request(
        self, method: str, path: str, body: Any = None, cookie: str | None = None
    ) -> tuple[int, bytes, list[str]]:
        headers = {"content-type": "application/json"}
        if cookie:
            headers["cookie"] = cookie
        content = json.dumps(body).encode() if body is not None else b""
        if self.kind == "asgi":
            return self.portal.call(self._asgi, method, path, content, headers)  # type: ignore[no-any-return]
        response = self.client.open(path, method=method, data=content, headers=headers)
        return response.status_code, response.get_data(), response.headers.getlist("set-cookie")

    async def _asgi(
        self, method: str, path: str, content: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes, list[str]]:
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            r = await c.request(method, path, content=content, headers=headers)
        return r.status_code, r.content, r.headers.get_list("set-cookie")

    def close(self) -> None:
        if self.kind == "asgi":
            self.portal.call(self.core.aclose)
        else:
            self.core.close()


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_through_the_middleware_a_stopped_database_is_503_then_recovers(
    own_pg: PgServer, kind: str
) -> None:
    from anyio.from_thread import start_blocking_portal

    with start_blocking_portal() as portal:
        app = App(kind, own_pg.conninfo, portal)
        try:
            status, body, _ = app.request(
                "POST", "/auth/login", {"email": EMAIL, "password": PASSWORD, "mode": "session"}
            )
            assert status == 200, body
            status, _, cookies = app.request(
                "POST", "/auth/login", {"email": EMAIL, "password": PASSWORD, "mode": "session"}
            )
            session = cookies[0].split(";")[0]
            status, body, _ = app.request("GET", "/x", cookie=session)
            assert (status, body) == (200, f"app /x user={USER_ID}".encode())
            status, body, _ = app.request(
                "POST", "/auth/login", {"email": EMAIL, "password": PASSWORD}
            )
            refresh_token = json.loads(body)["data"]["refresh_token"]
            # a session logged out before the outage must stay dead through it and after
            _, _, cookies = app.request(
                "POST", "/auth/login", {"email": EMAIL, "password": PASSWORD, "mode": "session"}
            )
            revoked = cookies[0].split(";")[0]
            status, _, _ = app.request("POST", "/auth/logout", {"mode": "session"}, revoked)
            assert status == 204
            assert app.request("GET", "/x", cookie=revoked)[0] == 401

            own_pg.stop()
            for method, path, payload, cookie in (
                ("POST", "/auth/login", {"email": EMAIL, "password": PASSWORD}, None),
                ("POST", "/auth/refresh", {"refresh_token": refresh_token}, None),
                ("POST", "/auth/refresh", {"mode": "session"}, session),
                ("GET", "/x", None, session),  # a session cookie cannot be checked
                ("GET", "/x", None, revoked),  # nor a revoked one: 503, never a 200
            ):
                status, body, set_cookies = bounded(app.request, method, path, payload, cookie)
                assert (status, body, set_cookies) == (503, DOWN, []), path

            own_pg.start()
            deadline = time.monotonic() + RECOVERY
            while True:
                status, body, _ = bounded(app.request, "GET", "/x", None, session)
                if status != 503 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert (status, body) == (200, f"app /x user={USER_ID}".encode())
            assert app.request("GET", "/x", cookie=revoked)[0] == 401
            # the refresh token was never used during the outage: it still rotates, once
            status, body, _ = app.request(
                "POST", "/auth/refresh", {"refresh_token": refresh_token}
            )
            assert status == 200, body
            again = app.request("POST", "/auth/refresh", {"refresh_token": refresh_token})
            assert again[0] == 401
        finally:
            app.close()
