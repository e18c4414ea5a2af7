"""The /auth endpoints through both shells, byte for byte (frozen clock, exact headers)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import Client as WerkzeugClient

from tests.helpers.auth import (
    EMAIL,
    EPOCH,
    FAST,
    INVALID_CREDENTIALS,
    NEXT_WEEK,
    NO_REFRESH_TOKEN,
    NOW,
    PASSWORD,
    SECRET,
    TOMORROW,
    USER_ID,
    Clock,
    access_jwt,
    error_body,
    invalid_payload_body,
    is_directus_error,
    make_user,
    plain_asgi_app,
    plain_wsgi_app,
)
from tokenguard import TokenGuard, TokenGuardMiddleware, TokenGuardWSGI
from tokenguard.flow import Sleep
from tokenguard.http.views import RequestView
from tokenguard.principal import Principal
from tokenguard.stores.base import StoreUnavailable
from tokenguard.stores.memory import MemorySessionStore, MemoryUserStore

JSON = "application/json; charset=utf-8"
NO_CACHE = [("cache-control", "no-cache"), ("vary", "Origin, Cache-Control")]


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name]

    def json(self) -> Any:
        return json.loads(self.body)

    def cookie(self, name: str) -> str:
        for value in self.all("set-cookie"):
            if value.startswith(name + "="):
                return value.split(";", 1)[0].split("=", 1)[1]
        raise AssertionError(f"no {name} cookie")


class Harness:
    """One wrapped app (ASGI or WSGI) with memory stores and a frozen clock."""

    def __init__(self, kind: str, sessions: Any = None, **options: Any) -> None:
        self.kind = kind
        self.clock = Clock()
        self.users = MemoryUserStore()
        self.users.create(make_user())
        self.sessions = sessions if sessions is not None else MemorySessionStore()
        opts = {"secret": SECRET, "login_stall_ms": 0, **options}
        self.core = TokenGuard(
            users=self.users,
            sessions=self.sessions,
            clock=self.clock,
            passwords=FAST,
            flavour="async" if kind == "asgi" else "sync",
            **opts,
        )
        if kind == "asgi":
            self.asgi = TokenGuardMiddleware(plain_asgi_app, guard=self.core)
        else:
            self.wsgi = WerkzeugClient(
                TokenGuardWSGI(plain_wsgi_app, guard=self.core), use_cookies=False
            )

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        cookies: dict[str, str] | None = None,
    ) -> Reply:
        hdrs = dict(headers or {})
        if json_body is not None:
            content = json.dumps(json_body).encode()
            hdrs.setdefault("content-type", "application/json")
        if cookies:
            hdrs["cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        if self.kind == "asgi":
            return anyio.run(self._asgi, method, path, content, hdrs)
        response = self.wsgi.open(path, method=method, data=content or b"", headers=hdrs)
        return Reply(
            response.status_code,
            [(n.lower(), v) for n, v in response.headers.items()],
            response.get_data(),
        )

    async def _asgi(
        self, method: str, path: str, content: bytes | None, hdrs: dict[str, str]
    ) -> Reply:
        transport = httpx.ASGITransport(app=self.asgi)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.request(method, path, content=content, headers=hdrs)
        return Reply(response.status_code, list(response.headers.multi_items()), response.content)

    def login(self, mode: str | None = "json", **extra: Any) -> Reply:
        body: dict[str, Any] = {"email": EMAIL, "password": PASSWORD, **extra}
        if mode is not None:
            body["mode"] = mode
        return self.request("POST", "/auth/login", json_body=body)


@pytest.fixture(params=["asgi", "wsgi"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def h(kind: str) -> Harness:
    return Harness(kind)


def without_length(reply: Reply) -> list[tuple[str, str]]:
    return [(n, v) for n, v in reply.headers if n != "content-length"]


# -- providers and routing ----------------------------------------------------------------------


def test_providers_list(h: Harness) -> None:
    reply = h.request("GET", "/auth")
    assert reply.status == 200
    assert reply.body == b'{"data":[],"disableDefault":false}'
    assert without_length(reply) == [("content-type", JSON), *NO_CACHE]
    assert reply.header("content-length") == "34"
    head = h.request("HEAD", "/auth")
    assert (head.status, head.body) == (200, b"")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/auth"),
        ("GET", "/auth/login"),
        ("PUT", "/auth/refresh"),
        ("DELETE", "/auth/logout"),
    ],
)
def test_other_methods_on_our_routes_are_route_not_found(
    h: Harness, method: str, path: str
) -> None:
    reply = h.request(method, path)
    assert reply.status == 404
    assert reply.body == error_body("ROUTE_NOT_FOUND", f"Route {path} doesn't exist.", path=path)
    assert reply.header("content-type") == JSON


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/auth/other"),
        ("POST", "/auth/login/github"),
        ("GET", "/authors"),
        ("OPTIONS", "/auth/login"),
        ("GET", "/AUTH"),
    ],
)
def test_paths_that_are_not_ours_reach_the_app(h: Harness, method: str, path: str) -> None:
    reply = h.request(method, path)
    assert (reply.status, reply.body) == (200, f"app {path} user=None".encode())


def test_trailing_slash_matches_like_express(h: Harness) -> None:
    reply = h.request("POST", "/auth/login/", json_body={"email": EMAIL, "password": PASSWORD})
    assert reply.status == 200


def test_custom_prefix(kind: str) -> None:
    h = Harness(kind, auth_prefix="/api/auth")
    assert h.request("GET", "/api/auth").status == 200
    assert h.request("GET", "/auth").body == b"app /auth user=None"


# -- login --------------------------------------------------------------------------------------


def test_login_json_exact(h: Harness) -> None:
    reply = h.login("json")
    token = reply.json()["data"]["refresh_token"]
    assert len(token) == 64
    assert reply.status == 200
    assert reply.body == (
        b'{"data":{"expires":900000,"refresh_token":"'
        + token.encode()
        + b'","access_token":"'
        + access_jwt(900, sid=token[:22]).encode()
        + b'"}}'
    )
    assert without_length(reply) == [("content-type", JSON), *NO_CACHE]


def test_login_defaults_to_json(h: Harness) -> None:
    reply = h.login(None)
    assert list(reply.json()["data"]) == ["expires", "refresh_token", "access_token"]
    assert reply.all("set-cookie") == []


def test_login_cookie_exact(h: Harness) -> None:
    reply = h.login("cookie")
    token = reply.cookie("directus_refresh_token")
    assert (
        reply.body
        == b'{"data":{"expires":900000,"access_token":"'
        + access_jwt(900, sid=token[:22]).encode()
        + b'"}}'
    )
    assert len(token) == 64
    assert reply.all("set-cookie") == [
        f"directus_refresh_token={token}; Max-Age=604800; Path=/; Expires={NEXT_WEEK}; HttpOnly; SameSite=Lax"
    ]


def test_login_session_exact(h: Harness) -> None:
    reply = h.login("session")
    assert reply.body == b'{"data":{"expires":86400000}}'
    cookie = reply.cookie("directus_session_token")
    session = jwt.decode(
        cookie, SECRET, algorithms=["HS256"], options={"verify_exp": False, "verify_iat": False}
    )["session"]
    assert cookie == access_jwt(86_400, session, sid=session[:22])
    assert reply.all("set-cookie") == [
        f"directus_session_token={cookie}; Max-Age=86400; Path=/; Expires={TOMORROW}; HttpOnly; SameSite=Lax"
    ]


def test_cookie_attributes_follow_the_directus_settings(kind: str) -> None:
    h = Harness(
        kind,
        refresh_cookie_name="rt",
        refresh_cookie_secure=True,
        refresh_cookie_same_site="strict",
        refresh_cookie_domain="example.com",
        refresh_token_ttl_ms=3_600_000,
        session_cookie_name="st",
        session_cookie_secure=True,
        session_cookie_same_site="none",
        session_cookie_domain="app.example.com",
        session_cookie_path="/app",
        session_cookie_ttl_ms=7_200_000,
    )
    cookie = h.login("cookie")
    token = cookie.cookie("rt")
    assert cookie.all("set-cookie") == [
        f"rt={token}; Max-Age=3600; Domain=example.com; Path=/; Expires=Fri, 15 Jan 2027 09:00:00 GMT; HttpOnly; Secure; SameSite=Strict"
    ]
    session = h.login("session")
    value = session.cookie("st")
    assert session.body == b'{"data":{"expires":7200000}}'
    assert session.all("set-cookie") == [
        f"st={value}; Max-Age=7200; Domain=app.example.com; Path=/app; Expires=Fri, 15 Jan 2027 10:00:00 GMT; HttpOnly; Secure; SameSite=None"
    ]
    out = h.request(
        "POST", "/auth/logout", json_body={"mode": "cookie"}, cookies={"rt": token, "st": value}
    )
    assert out.all("set-cookie") == [
        f"rt=; Max-Age=0; Domain=example.com; Path=/; Expires={EPOCH}; HttpOnly; Secure; SameSite=Strict",
        f"st=; Max-Age=0; Domain=app.example.com; Path=/app; Expires={EPOCH}; HttpOnly; Secure; SameSite=None",
    ]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({}, '"email" is required'),
        ({"password": PASSWORD}, '"email" is required'),
        ({"email": None, "password": PASSWORD}, '"email" must be a string'),
        ({"email": 5, "password": PASSWORD}, '"email" must be a string'),
        ({"email": "", "password": PASSWORD}, '"email" is not allowed to be empty'),
        ({"email": "notanemail", "password": PASSWORD}, '"email" must be a valid email'),
        ({"email": "x@localhost", "password": PASSWORD}, '"email" must be a valid email'),
        ({"email": "a@b.c", "password": PASSWORD}, '"email" must be a valid email'),
        ({"email": "a b@example.com", "password": PASSWORD}, '"email" must be a valid email'),
        ({"email": "a..b@example.com", "password": PASSWORD}, '"email" must be a valid email'),
        ({"email": "a@-example.com", "password": PASSWORD}, '"email" must be a valid email'),
        ({"email": "a@example.c0m", "password": PASSWORD}, '"email" must be a valid email'),
        ({"email": "notanemail"}, '"email" must be a valid email'),
        ({"email": EMAIL}, '"password" is required'),
        ({"email": EMAIL, "password": ""}, '"password" is not allowed to be empty'),
        ({"email": EMAIL, "password": 123}, '"password" must be a string'),
        (
            {"email": EMAIL, "password": PASSWORD, "mode": "bogus"},
            '"mode" must be one of [cookie, json, session]',
        ),
        (
            {"email": EMAIL, "password": PASSWORD, "mode": None},
            '"mode" must be one of [cookie, json, session]',
        ),
        (
            {"email": EMAIL, "password": PASSWORD, "mode": "JSON"},
            '"mode" must be one of [cookie, json, session]',
        ),
        ({"email": EMAIL, "password": PASSWORD, "otp": 123456}, '"otp" must be a string'),
        ({"email": EMAIL, "password": PASSWORD, "otp": ""}, '"otp" is not allowed to be empty'),
        ([], '"value" must be of type object'),
        ([{"email": EMAIL, "password": PASSWORD}], '"value" must be of type object'),
    ],
)
def test_login_validation_messages(h: Harness, body: Any, reason: str) -> None:
    reply = h.request("POST", "/auth/login", json_body=body)
    assert reply.status == 400
    assert reply.body == invalid_payload_body(reason)
    assert without_length(reply) == [("content-type", JSON)]


def test_login_accepts_unknown_keys_and_unicode_addresses(h: Harness) -> None:
    h.users.create(make_user(id="u2", email="jürgen.o'neil+x@exämple.de"))
    reply = h.request(
        "POST",
        "/auth/login",
        json_body={"email": "jürgen.o'neil+x@exämple.de", "password": PASSWORD, "extra": [1, 2]},
    )
    assert reply.status == 200


@pytest.mark.parametrize(
    ("content", "content_type", "reason"),
    [
        (
            b"{bad",
            "application/json",
            "Expecting property name enclosed in double quotes in JSON at position 1",
        ),
        (
            b'{"email": "a@b.co",}',
            "application/json",
            "Expecting property name enclosed in double quotes in JSON at position 19",
        ),
        # Python 3.13 words trailing commas differently: the answer stays the same.
        (b'{"a": [1, ], "b": 2}', "application/json", "Expecting value in JSON at position 10"),
        (
            b'{"a": 1, \n }',
            "application/json",
            "Expecting property name enclosed in double quotes in JSON at position 11",
        ),
        (b'"just a string"', "application/json", "Unexpected token in JSON at position 0"),
        (b"   ", "application/json", "Unexpected token in JSON at position 3"),
        (b"42", "application/json", "Unexpected token in JSON at position 0"),
        (b'{"a": NaN}', "application/json", "Unexpected token in JSON"),
        (b"[" * 100_000, "application/json", "JSON nested too deeply"),
        (
            b'{"email":"a@example.com"}',
            "text/plain",
            "The request body must be JSON (Content-Type: application/json)",
        ),
        (
            b"email=a%40example.com&password=x",
            "application/x-www-form-urlencoded",
            "The request body must be JSON (Content-Type: application/json)",
        ),
        (
            b'{"email":"a@example.com"}',
            "",
            "The request body must be JSON (Content-Type: application/json)",
        ),
        (
            b'{"email":"a@example.com"}',
            "application/json; charset=latin1",
            'unsupported charset "LATIN1"',
        ),
        (
            b'{"email":"a@example.com"}',
            'application/json; charset="<script>"',
            'unsupported charset "?"',
        ),
    ],
)
@pytest.mark.parametrize("path", ["/auth/login", "/auth/refresh", "/auth/logout"])
def test_unparsable_bodies(
    h: Harness, path: str, content: bytes, content_type: str, reason: str
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    reply = h.request("POST", path, content=content, headers=headers)
    assert reply.status == 400
    assert reply.body == invalid_payload_body(reason)


def test_json_with_charset_and_bom_is_fine(h: Harness) -> None:
    body = "\ufeff" + json.dumps({"email": EMAIL, "password": PASSWORD})
    reply = h.request(
        "POST",
        "/auth/login",
        content=body.encode(),
        headers={"content-type": "Application/JSON; Charset=UTF-8"},
    )
    assert reply.status == 200


@pytest.mark.parametrize("path", ["/auth/login", "/auth/refresh", "/auth/logout"])
def test_bodies_above_max_payload_size_are_refused(h: Harness, path: str) -> None:
    content = b'{"pad":"' + b"x" * (1024 * 1024) + b'"}'
    reply = h.request("POST", path, content=content, headers={"content-type": "application/json"})
    assert reply.status == 400
    assert reply.body == invalid_payload_body("request entity too large")


@pytest.mark.parametrize(
    ("body", "password_ok"),
    [
        ({"email": "nobody@example.com", "password": PASSWORD}, False),
        ({"email": EMAIL, "password": "wrong"}, False),
    ],
)
def test_bad_credentials_exact(h: Harness, body: dict[str, Any], password_ok: bool) -> None:
    reply = h.request("POST", "/auth/login", json_body={**body, "mode": "cookie"})
    assert reply.status == 401
    assert reply.body == INVALID_CREDENTIALS
    assert without_length(reply) == [("content-type", JSON)]


def test_suspended_user_cannot_log_in(h: Harness) -> None:
    h.users.update(USER_ID, status="suspended")
    assert h.login().body == INVALID_CREDENTIALS


def test_a_bad_bearer_fails_even_login(h: Harness) -> None:
    reply = h.request(
        "POST",
        "/auth/login",
        json_body={"email": EMAIL, "password": PASSWORD},
        headers={"authorization": "Bearer not-a-jwt"},
    )
    assert (reply.status, reply.body) == (401, INVALID_CREDENTIALS)
    expired = access_jwt(900, now=NOW - 3600)
    reply = h.request("GET", "/auth", headers={"authorization": f"Bearer {expired}"})
    assert (reply.status, reply.body) == (401, error_body("TOKEN_EXPIRED", "Token expired."))


def test_the_stall_covers_validation_failures(h: Harness) -> None:
    core = h.core
    core.auth._stall_s = 0.5  # as with LOGIN_STALL_TIME=500
    view = RequestView(
        "POST",
        "/auth/login",
        "",
        {"content-type": "application/json"},
        b"{}",
        Principal(None, None),
    )
    steps = list(_steps(core.router.handle(view)))
    assert len(steps) == 1 and isinstance(steps[0], Sleep) and 0.4 < steps[0].seconds <= 0.5
    # A body Express cannot parse is answered before the route runs: no stall, as in Directus.
    view.body = b"{"
    assert list(_steps(core.router.handle(view))) == []


def _steps(flow: Any) -> Any:
    try:
        step = next(flow)
        while True:
            yield step
            step = flow.send(None)
    except StopIteration:
        return


# -- refresh ------------------------------------------------------------------------------------


def test_refresh_json_rotates(h: Harness) -> None:
    old = h.login().json()["data"]["refresh_token"]
    h.clock.advance(60)
    reply = h.request("POST", "/auth/refresh", json_body={"mode": "json", "refresh_token": old})
    new = reply.json()["data"]["refresh_token"]
    assert new != old and new[:22] == old[:22]
    assert reply.body == (
        b'{"data":{"expires":900000,"refresh_token":"'
        + new.encode()
        + b'","access_token":"'
        + access_jwt(900, now=NOW + 60, sid=old[:22]).encode()
        + b'"}}'
    )
    assert without_length(reply) == [("content-type", JSON), *NO_CACHE]
    # No mode, a body token: json mode.
    again = h.request("POST", "/auth/refresh", json_body={"refresh_token": new})
    assert again.status == 200
    # The rotated-away token: 401, and its whole session is revoked.
    stale = h.request("POST", "/auth/refresh", json_body={"refresh_token": old})
    assert (stale.status, stale.body) == (401, INVALID_CREDENTIALS)
    newest = again.json()["data"]["refresh_token"]
    assert h.request("POST", "/auth/refresh", json_body={"refresh_token": newest}).status == 401


def test_refresh_cookie_mode(h: Harness) -> None:
    token = h.login("cookie").cookie("directus_refresh_token")
    for body in ({"mode": "cookie"}, {}, None):
        reply = h.request(
            "POST",
            "/auth/refresh",
            json_body=body,
            cookies={"directus_refresh_token": token},
        )
        assert reply.status == 200, reply.body
        new = reply.cookie("directus_refresh_token")
        assert (
            reply.body
            == b'{"data":{"expires":900000,"access_token":"'
            + access_jwt(900, sid=token[:22]).encode()
            + b'"}}'
        )
        assert reply.all("set-cookie") == [
            f"directus_refresh_token={new}; Max-Age=604800; Path=/; Expires={NEXT_WEEK}; HttpOnly; SameSite=Lax"
        ]
        token = new


def test_refresh_session_mode_and_grace(h: Harness) -> None:
    cookie = h.login("session").cookie("directus_session_token")
    first = h.request(
        "POST",
        "/auth/refresh",
        json_body={"mode": "session"},
        cookies={"directus_session_token": cookie},
    )
    assert first.status == 200
    assert first.body == b'{"data":{"expires":86400000}}'
    assert without_length(first)[:3] == [("content-type", JSON), *NO_CACHE]
    new_cookie = first.cookie("directus_session_token")
    assert new_cookie != cookie
    # Within the grace the old cookie still works and converges on the same new cookie.
    h.clock.advance(0.5)
    assert (
        h.request("GET", "/x", cookies={"directus_session_token": cookie}).body
        == f"app /x user={USER_ID}".encode()
    )
    second = h.request(
        "POST",
        "/auth/refresh",
        json_body={"mode": "session"},
        cookies={"directus_session_token": cookie},
    )
    assert second.all("set-cookie") == first.all("set-cookie")
    # The new cookie keeps working across requests.
    for _ in range(3):
        assert h.request("GET", "/x", cookies={"directus_session_token": new_cookie}).status == 200
    # After the grace the old cookie is refused (and cleared), and refreshing it revokes all.
    h.clock.advance(11)
    stale = h.request("GET", "/x", cookies={"directus_session_token": cookie})
    assert (stale.status, stale.body) == (401, INVALID_CREDENTIALS)
    assert stale.all("set-cookie") == [
        f"directus_session_token=; Max-Age=0; Path=/; Expires={EPOCH}; HttpOnly; SameSite=Lax"
    ]
    # Presenting the rotated-away cookie was reuse: someone holds a copy, so the whole session
    # ended, its successor included.
    for method, path, body in (("GET", "/x", None), ("POST", "/auth/refresh", {"mode": "session"})):
        reply = h.request(method, path, json_body=body, cookies={"directus_session_token": new_cookie})
        assert (reply.status, reply.body) == (401, INVALID_CREDENTIALS)


def test_a_logged_out_session_cookie_is_refused_and_ends_nothing_else(h: Harness) -> None:
    # Not every dead session cookie is reuse: one of a session logged out, or of another
    # login, leaves the user's other sessions alone.
    first = h.login("session").cookie("directus_session_token")
    other = h.login("session").cookie("directus_session_token")
    out = h.request("POST", "/auth/logout", json_body={"mode": "session"}, cookies={"directus_session_token": first})
    assert out.status == 204
    stale = h.request("GET", "/x", cookies={"directus_session_token": first})
    assert (stale.status, stale.body) == (401, INVALID_CREDENTIALS)
    assert h.request("GET", "/x", cookies={"directus_session_token": other}).status == 200


def test_refresh_with_an_expired_session_cookie(h: Harness) -> None:
    cookie = h.login("session").cookie("directus_session_token")
    h.clock.advance(86_400 + 10)
    reply = h.request(
        "POST",
        "/auth/refresh",
        json_body={"mode": "session"},
        cookies={"directus_session_token": cookie},
    )
    assert (reply.status, reply.body) == (401, error_body("TOKEN_EXPIRED", "Token expired."))


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"mode": "json"},
        {"mode": "cookie"},
        {"mode": "session"},
        {"mode": "bogus"},
        {"refresh_token": ""},
        {"mode": "json", "refresh_token": None},
        [],
        None,
    ],
)
@pytest.mark.parametrize("path", ["/auth/refresh", "/auth/logout"])
def test_missing_refresh_token(h: Harness, path: str, body: Any) -> None:
    reply = h.request("POST", path, json_body=body)
    assert (reply.status, reply.body) == (400, NO_REFRESH_TOKEN)


def test_session_mode_ignores_a_foreign_cookie_value(h: Harness) -> None:
    # A session cookie that is not one of our JWTs is no token at all (but fails the guard first).
    static_user = make_user(id="u-static", email="s@example.com", token_hash=None)
    h.users.create(static_user)
    reply = h.request(
        "POST",
        "/auth/refresh",
        json_body={"mode": "session"},
        cookies={"directus_session_token": "not-a-jwt"},
    )
    assert (reply.status, reply.body) == (401, INVALID_CREDENTIALS)


@pytest.mark.parametrize("token", ["short", "x" * 65, "é" * 64, 42, True, ["a"], {"a": 1}])
def test_malformed_refresh_tokens_are_invalid_credentials(h: Harness, token: Any) -> None:
    reply = h.request("POST", "/auth/refresh", json_body={"mode": "json", "refresh_token": token})
    assert (reply.status, reply.body) == (401, INVALID_CREDENTIALS)


# -- logout -------------------------------------------------------------------------------------


def test_logout_json(h: Harness) -> None:
    token = h.login().json()["data"]["refresh_token"]
    reply = h.request("POST", "/auth/logout", json_body={"mode": "json", "refresh_token": token})
    assert (reply.status, reply.body) == (204, b"")
    assert reply.all("set-cookie") == []
    assert ("cache-control", "no-cache") in reply.headers
    assert reply.header("content-length") in (None, "0")
    assert h.request("POST", "/auth/refresh", json_body={"refresh_token": token}).status == 401
    # A dead token: still 204.
    assert h.request("POST", "/auth/logout", json_body={"refresh_token": token}).status == 204
    assert h.request("POST", "/auth/logout", json_body={"refresh_token": "garbage"}).status == 204


def test_logout_cookie_clears_the_cookie(h: Harness) -> None:
    token = h.login("cookie").cookie("directus_refresh_token")
    reply = h.request(
        "POST",
        "/auth/logout",
        json_body={"mode": "cookie"},
        cookies={"directus_refresh_token": token},
    )
    assert reply.status == 204
    assert reply.all("set-cookie") == [
        f"directus_refresh_token=; Max-Age=0; Path=/; Expires={EPOCH}; HttpOnly; SameSite=Lax"
    ]
    again = h.request(
        "POST",
        "/auth/refresh",
        json_body={"mode": "cookie"},
        cookies={"directus_refresh_token": token},
    )
    assert (again.status, again.body) == (401, INVALID_CREDENTIALS)


def test_session_cookie_is_refused_after_logout(h: Harness) -> None:
    cookie = h.login("session").cookie("directus_session_token")
    assert h.request("GET", "/x", cookies={"directus_session_token": cookie}).status == 200
    reply = h.request(
        "POST",
        "/auth/logout",
        json_body={"mode": "session"},
        cookies={"directus_session_token": cookie},
    )
    assert reply.status == 204
    assert reply.all("set-cookie") == [
        f"directus_session_token=; Max-Age=0; Path=/; Expires={EPOCH}; HttpOnly; SameSite=Lax"
    ]
    after = h.request("GET", "/x", cookies={"directus_session_token": cookie})
    assert (after.status, after.body) == (401, INVALID_CREDENTIALS)
    assert after.all("set-cookie") == reply.all("set-cookie")


def test_logout_is_seen_by_another_process_sharing_the_store(kind: str) -> None:
    one = Harness(kind)
    two = Harness(kind, sessions=one.sessions)
    cookie = one.login("session").cookie("directus_session_token")
    assert two.request("GET", "/x", cookies={"directus_session_token": cookie}).status == 200
    one.request(
        "POST",
        "/auth/logout",
        json_body={"mode": "session"},
        cookies={"directus_session_token": cookie},
    )
    assert two.request("GET", "/x", cookies={"directus_session_token": cookie}).status == 401


# -- store down ---------------------------------------------------------------------------------


class DownSessions:
    io_bound = False

    def _fail(self, *args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailable("redis", "Connection refused")

    create = get = rotate = revoke = revoke_user = _fail


def test_store_down_is_503_and_access_tokens_keep_working(kind: str) -> None:
    h = Harness(kind, sessions=DownSessions())
    down = error_body(
        "SERVICE_UNAVAILABLE",
        'Service "redis" is unavailable. Connection refused.',
        service="redis",
        reason="Connection refused",
    )
    token = "A" * 64
    for path, body, cookies in [
        ("/auth/login", {"email": EMAIL, "password": PASSWORD, "mode": "session"}, None),
        ("/auth/refresh", {"refresh_token": token}, None),
        ("/auth/refresh", {"mode": "cookie"}, {"directus_refresh_token": token}),
        ("/auth/logout", {"refresh_token": token}, None),
    ]:
        reply = h.request("POST", path, json_body=body, cookies=cookies)
        assert (reply.status, reply.body) == (503, down), path
        assert reply.all("set-cookie") == []
    ok = h.request("GET", "/x", headers={"authorization": f"Bearer {access_jwt(900)}"})
    assert (ok.status, ok.body) == (200, f"app /x user={USER_ID}".encode())
    # A session cookie cannot be checked: never accepted.
    session = access_jwt(86_400, session="S" * 64)
    refused = h.request("GET", "/x", cookies={"directus_session_token": session})
    assert (refused.status, refused.body) == (503, down)


# -- any input ----------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
field_values = st.one_of(
    json_values,
    st.sampled_from(["json", "cookie", "session", EMAIL, PASSWORD, "A" * 64, "", "a@b.co"]),
)
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "email": field_values,
            "password": field_values,
            "mode": field_values,
            "otp": field_values,
            "refresh_token": field_values,
        },
    ),
)
ALLOWED = {200, 204, 400, 401, 403}

_HARNESSES: dict[str, Harness] = {}


def _harness(kind: str) -> Harness:
    if kind not in _HARNESSES:
        _HARNESSES[kind] = Harness(kind)
    return _HARNESSES[kind]


def _check(reply: Reply) -> None:
    assert reply.status in ALLOWED, (reply.status, reply.body)
    if reply.status == 204:
        assert reply.body == b""
    elif reply.status == 200:
        assert list(reply.json()) == ["data"]
    else:
        assert is_directus_error(reply.body), reply.body
        assert reply.header("content-type") == JSON


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=bodies, path=st.sampled_from(["/auth/login", "/auth/refresh", "/auth/logout"]))
def test_any_json_body_gets_a_directus_answer(kind: str, body: Any, path: str) -> None:
    reply = _harness(kind).request(
        "POST",
        path,
        json_body=body if body is not None else None,
        content=b"null" if body is None else None,
        headers={"content-type": "application/json"},
    )
    _check(reply)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    content=st.binary(max_size=200),
    content_type=st.sampled_from(
        [
            "application/json",
            "text/plain",
            "application/json; charset=utf-16",
            "",
            "application/json;charset",
        ]
    ),
    path=st.sampled_from(["/auth/login", "/auth/refresh", "/auth/logout"]),
    cookie=st.text(
        alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=";"),
        max_size=80,
    ),
)
def test_any_bytes_get_a_directus_answer(
    kind: str, content: bytes, content_type: str, path: str, cookie: str
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    reply = _harness(kind).request(
        "POST",
        path,
        content=content,
        headers=headers,
        cookies={"directus_refresh_token": cookie} if cookie else None,
    )
    _check(reply)


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/plain"],
)
def test_an_empty_form_post_cannot_log_out(h: Harness, content_type: str) -> None:
    token = h.login("cookie").cookie("directus_refresh_token")
    reply = h.request(
        "POST",
        "/auth/logout",
        content=b"",
        headers={"content-type": content_type},
        cookies={"directus_refresh_token": token},
    )
    assert reply.status == 400
    assert reply.body == invalid_payload_body(
        "The request body must be JSON (Content-Type: application/json)"
    )
    # No body and no Content-Type at all is `{}`: cookie mode, as in Directus.
    bare = h.request("POST", "/auth/refresh", cookies={"directus_refresh_token": token})
    assert bare.status == 200


def _together(count: int, call: Callable[[], Reply]) -> list[Reply]:
    barrier = threading.Barrier(count)

    def run() -> Reply:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: run(), range(count)))


@pytest.mark.parametrize("mode", ["json", "cookie"])
def test_threads_refreshing_one_token_get_exactly_one_new_token(h: Harness, mode: str) -> None:
    login = h.login(mode)
    if mode == "json":
        token = login.json()["data"]["refresh_token"]
        replies = _together(
            12, lambda: h.request("POST", "/auth/refresh", json_body={"refresh_token": token})
        )
    else:
        cookie = login.cookie("directus_refresh_token")
        replies = _together(
            12,
            lambda: h.request(
                "POST",
                "/auth/refresh",
                json_body={"mode": "cookie"},
                cookies={"directus_refresh_token": cookie},
            ),
        )
    assert sorted(r.status for r in replies) == [200] + [401] * 11
    assert all(r.body == INVALID_CREDENTIALS for r in replies if r.status == 401)


def test_threads_refreshing_one_session_converge_on_one_cookie(h: Harness) -> None:
    cookie = h.login("session").cookie("directus_session_token")
    replies = _together(
        12,
        lambda: h.request(
            "POST",
            "/auth/refresh",
            json_body={"mode": "session"},
            cookies={"directus_session_token": cookie},
        ),
    )
    assert [r.status for r in replies] == [200] * 12
    assert len({tuple(r.all("set-cookie")) for r in replies}) == 1
