"""The Django integration through Django's own test clients (WSGI ``Client`` and ASGI
``AsyncClient``): statuses, bodies and cookies exact, with a frozen clock and memory stores.

Django's settings are configured once for this process (no other test module uses Django);
each test gets its own guard through ``override_settings(TOKENGUARD=...)``.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import django
import jwt
import pytest
from django.conf import settings as django_settings

from tests.helpers import django_site
from tests.helpers.django_site import SETTINGS
from tests.helpers.servers import free_port

if not django_settings.configured:
    django_settings.configure(**SETTINGS)
    django.setup()

from asgiref.sync import async_to_sync
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse
from django.test import AsyncClient, Client, override_settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.helpers.auth import (
    EMAIL,
    EPOCH,
    FAST,
    INVALID_CREDENTIALS,
    NEXT_WEEK,
    NOW,
    PASSWORD,
    ROLE,
    SECRET,
    TOMORROW,
    USER_ID,
    Clock,
    access_jwt,
    error_body,
    is_directus_error,
    make_user,
)
from tokenguard import TokenGuard
from tokenguard.integrations.django import (
    TokenGuardUser,
    close_guard,
    get_guard,
)
from tokenguard.integrations.django.responses import ExactCookie
from tokenguard.jose.tokens import hash_token
from tokenguard.principal import Principal
from tokenguard.stores.memory import MemorySessionStore, MemoryUserStore
from tokenguard.stores.redis import AsyncRedisSessionStore, RedisSessionStore

JSON = "application/json; charset=utf-8"
STATIC = "static-token-for-django-Qm4Xv8Lp2Zr6"
ADMIN_ID = "0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
FORBIDDEN = error_body("FORBIDDEN", "You don't have permission to access this.")
_CROSS = (
    "Cross-site request refused: the Origin of a request authenticated by cookie is not trusted"
)
CROSS_SITE = error_body("FORBIDDEN", _CROSS, reason=_CROSS)


def options(**changes: Any) -> dict[str, Any]:
    users = MemoryUserStore()
    users.create(make_user())
    users.create(
        make_user(
            id=ADMIN_ID,
            email="root@example.com",
            role="administrator",
            admin_access=True,
            token_hash=hash_token(STATIC),
        )
    )
    base: dict[str, Any] = {
        "secret": SECRET,
        "users": users,
        "sessions": MemorySessionStore(),
        "clock": Clock(),
        "passwords": FAST,
        "login_stall_ms": 0,
        "public_role": "public",
    }
    base.update(changes)
    return base


class Site:
    """Django's WSGI test client or its ASGI one, called the same way."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        # Browsers always send Host (Django's WSGI test client does not by default).
        headers = {"Host": "testserver"}
        self.client: Any = (
            Client(headers=headers) if kind == "wsgi" else AsyncClient(headers=headers)
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> HttpResponse:
        kwargs: dict[str, Any] = {"headers": headers or {}, **extra}
        if json_body is not None:
            kwargs["data"] = json.dumps(json_body)
            kwargs["content_type"] = "application/json"
        call = getattr(self.client, method.lower())
        if self.kind == "asgi":

            async def send() -> HttpResponse:
                return await call(path, **kwargs)  # type: ignore[no-any-return]

            return async_to_sync(send)()
        return call(path, **kwargs)  # type: ignore[no-any-return]

    def get(self, path: str, **kwargs: Any) -> HttpResponse:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> HttpResponse:
        return self.request("POST", path, **kwargs)

    def login(self, mode: str | None = "json") -> HttpResponse:
        body: dict[str, Any] = {"email": EMAIL, "password": PASSWORD}
        if mode is not None:
            body["mode"] = mode
        return self.post("/auth/login", json_body=body)


def set_cookies(response: HttpResponse) -> list[str]:
    """The Set-Cookie lines as Django's handlers write them."""
    return [c.output(header="").strip() for c in response.cookies.values()]


def cookie_value(response: HttpResponse, name: str) -> str:
    return str(response.cookies[name].value)


@pytest.fixture(params=["wsgi", "asgi"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def site(kind: str) -> Iterator[Site]:
    with override_settings(TOKENGUARD=options()):
        yield Site(kind)


# -- who the request speaks for ------------------------------------------------------------


@pytest.mark.parametrize("path", ["/whoami", "/awhoami"])
def test_no_token_is_the_public_caller(site: Site, path: str) -> None:
    r = site.get(path)
    assert r.status_code == 200
    data = r.json()
    assert data["user"] == {
        "pk": None,
        "id": None,
        "username": "",
        "is_authenticated": False,
        "is_anonymous": True,
        "is_active": False,
        "is_staff": False,
        "is_superuser": False,
        "has_perm": False,
        "role": "public",
    }
    assert (data["via"], data["auth_role"]) == ("public", "public")


@pytest.mark.parametrize("path", ["/whoami", "/awhoami"])
def test_bearer_jwt(site: Site, path: str) -> None:
    r = site.get(path, headers={"Authorization": f"Bearer {access_jwt()}"})
    assert r.status_code == 200
    data = r.json()
    assert data["user"] == {
        "pk": USER_ID,
        "id": USER_ID,
        "username": USER_ID,
        "is_authenticated": True,
        "is_anonymous": False,
        "is_active": True,
        "is_staff": False,
        "is_superuser": False,
        "has_perm": False,
        "role": ROLE,
    }
    assert (data["via"], data["auth_role"]) == ("jwt", ROLE)
    # The second time the guard's cache answers: same principal.
    again = site.get(path, headers={"Authorization": f"Bearer {access_jwt()}"})
    assert again.json() == data


def test_admin_jwt_is_staff_and_superuser(site: Site) -> None:
    token = access_jwt(role="administrator", admin_access=True)
    user = site.get("/whoami", headers={"Authorization": f"Bearer {token}"}).json()["user"]
    assert (user["is_staff"], user["is_superuser"], user["has_perm"]) == (True, True, True)


def test_static_token(site: Site) -> None:
    r = site.get("/whoami", headers={"Authorization": f"Bearer {STATIC}"})
    data = r.json()
    assert (data["user"]["pk"], data["via"], data["auth_role"]) == (
        ADMIN_ID,
        "static",
        "administrator",
    )
    assert data["user"]["is_superuser"] is True


@pytest.mark.parametrize("path", ["/whoami", "/awhoami"])
def test_query_token_is_stripped(site: Site, path: str) -> None:
    r = site.get(f"{path}?page=2&access_token={STATIC}&sort=id")
    assert r.status_code == 200
    data = r.json()
    assert data["via"] == "static"
    assert data["GET"] == {"page": "2", "sort": "id"}
    assert data["QUERY_STRING"] == "page=2&sort=id"
    assert data["full_path"] == f"{path}?page=2&sort=id"
    # Under ASGI the server's access log reads the scope: it lost the token too.
    assert data["scope_query"] == (None if site.kind == "wsgi" else "page=2&sort=id")


def test_only_query_token(site: Site) -> None:
    data = site.get(f"/whoami?access_token={STATIC}").json()
    assert (data["GET"], data["QUERY_STRING"], data["full_path"]) == ({}, "", "/whoami")


def test_query_token_kept_when_stripping_is_off(kind: str) -> None:
    with override_settings(TOKENGUARD=options(strip_query_token=False)):
        data = Site(kind).get(f"/whoami?access_token={STATIC}").json()
    assert data["GET"] == {"access_token": STATIC}


# -- refusals -------------------------------------------------------------------------------


def test_bad_tokens_get_the_directus_error(site: Site) -> None:
    cases = [
        ("Bearer not-a-jwt", 401, INVALID_CREDENTIALS),
        (
            f"Bearer {jwt.encode(jwt.decode(access_jwt(), SECRET, algorithms=['HS256'], options={'verify_exp': False, 'verify_iat': False}), 'another-secret-of-forty-bytes-Zq8Wv3Lm', algorithm='HS256')}",
            403,
            error_body("INVALID_TOKEN", "Invalid token."),
        ),
        (
            f"Bearer {access_jwt(iat=int(NOW) - 2000, exp=int(NOW) - 1000)}",
            401,
            error_body("TOKEN_EXPIRED", "Token expired."),
        ),
    ]
    for header, status, body in cases:
        for path in ("/whoami", "/awhoami", "/auth/login"):
            r = site.get(path, headers={"Authorization": header})
            assert (r.status_code, r.content) == (status, body), (header, path)
            assert r["Content-Type"] == JSON
            assert r["Content-Length"] == str(len(body))
            assert set_cookies(r) == []


def test_bad_query_token_and_two_methods(site: Site) -> None:
    r = site.get("/whoami?access_token=nope")
    assert (r.status_code, r.content) == (401, INVALID_CREDENTIALS)
    r = site.get(f"/whoami?access_token={STATIC}", headers={"Authorization": f"Bearer {STATIC}"})
    assert r.status_code == 400 and is_directus_error(r.content)
    assert json.loads(r.content)["errors"][0]["extensions"]["code"] == "INVALID_PAYLOAD"


def test_repeated_authorization_headers_joined_are_400(kind: str) -> None:
    # Django's ASGI request (like WSGI servers) joins repeated headers with commas.
    with override_settings(TOKENGUARD=options()):
        r = Site(kind).get(
            "/whoami", headers={"Authorization": f"Bearer {STATIC}, Bearer {STATIC}"}
        )
    assert r.status_code == 400 and is_directus_error(r.content)


def test_bad_session_cookie_is_refused_and_cleared(site: Site) -> None:
    site.client.cookies["directus_session_token"] = "garbage"
    r = site.get("/whoami")
    assert (r.status_code, r.content) == (401, INVALID_CREDENTIALS)
    assert set_cookies(r) == [
        f"directus_session_token=; Max-Age=0; Path=/; Expires={EPOCH}; HttpOnly; SameSite=Lax"
    ]
    # Django's client keeps the emptied cookie; an empty cookie is no credential.
    assert site.get("/whoami").json()["via"] == "public"


# -- the /auth routes ----------------------------------------------------------------------


def test_login_json(site: Site) -> None:
    r = site.login("json")
    assert r.status_code == 200
    assert (r["Content-Type"], r["Cache-Control"], r["Vary"]) == (
        JSON,
        "no-cache",
        "Origin, Cache-Control",
    )
    data = r.json()["data"]
    assert list(data) == ["expires", "refresh_token", "access_token"]
    assert data["access_token"] == access_jwt(900, sid=data["refresh_token"][:22])
    assert data["expires"] == 900_000
    assert set_cookies(r) == []
    assert r["Content-Length"] == str(len(r.content))
    me = site.get("/whoami", headers={"Authorization": f"Bearer {data['access_token']}"}).json()
    assert (me["user"]["pk"], me["via"]) == (USER_ID, "jwt")
    # Refresh in json mode: the token in the body.
    refreshed = site.post("/auth/refresh", json_body={"refresh_token": data["refresh_token"]})
    assert refreshed.status_code == 200 and set_cookies(refreshed) == []
    new = refreshed.json()["data"]
    assert new["refresh_token"] != data["refresh_token"]
    assert new["access_token"] == access_jwt(900, sid=new["refresh_token"][:22])
    out = site.post("/auth/logout", json_body={"refresh_token": new["refresh_token"]})
    assert (out.status_code, out.content, set_cookies(out)) == (204, b"", [])
    assert "Content-Type" not in out
    again = site.post("/auth/refresh", json_body={"refresh_token": new["refresh_token"]})
    assert (again.status_code, again.content) == (401, INVALID_CREDENTIALS)


def test_login_refresh_logout_cookie_mode(site: Site) -> None:
    r = site.login("cookie")
    assert r.status_code == 200
    token = cookie_value(r, "directus_refresh_token")
    assert (
        r.content
        == b'{"data":{"expires":900000,"access_token":"'
        + access_jwt(900, sid=token[:22]).encode()
        + b'"}}'
    )
    assert len(token) == 64
    assert set_cookies(r) == [
        f"directus_refresh_token={token}; Max-Age=604800; Path=/; Expires={NEXT_WEEK}; HttpOnly; SameSite=Lax"
    ]
    # The client sends the cookie back by itself.
    refreshed = site.post("/auth/refresh", json_body={"mode": "cookie"})
    assert refreshed.status_code == 200, refreshed.content
    new = cookie_value(refreshed, "directus_refresh_token")
    assert new != token
    assert set_cookies(refreshed) == [
        f"directus_refresh_token={new}; Max-Age=604800; Path=/; Expires={NEXT_WEEK}; HttpOnly; SameSite=Lax"
    ]
    out = site.post("/auth/logout", json_body={"mode": "cookie"})
    assert out.status_code == 204
    assert set_cookies(out) == [
        f"directus_refresh_token=; Max-Age=0; Path=/; Expires={EPOCH}; HttpOnly; SameSite=Lax"
    ]
    site.client.cookies["directus_refresh_token"] = new
    again = site.post("/auth/refresh", json_body={"mode": "cookie"})
    assert (again.status_code, again.content) == (401, INVALID_CREDENTIALS)


def test_login_refresh_logout_session_mode(site: Site) -> None:
    r = site.login("session")
    assert (r.status_code, r.content) == (200, b'{"data":{"expires":86400000}}')
    cookie = cookie_value(r, "directus_session_token")
    session = jwt.decode(
        cookie, SECRET, algorithms=["HS256"], options={"verify_exp": False, "verify_iat": False}
    )["session"]
    assert cookie == access_jwt(86_400, session, sid=session[:22])
    assert set_cookies(r) == [
        f"directus_session_token={cookie}; Max-Age=86400; Path=/; Expires={TOMORROW}; HttpOnly; SameSite=Lax"
    ]
    for path in ("/whoami", "/awhoami"):
        me = site.get(path).json()
        assert (me["user"]["pk"], me["via"], me["user"]["is_authenticated"]) == (
            USER_ID,
            "session",
            True,
        )
    refreshed = site.post(
        "/auth/refresh", json_body={"mode": "session"}, headers={"Origin": "http://testserver"}
    )
    assert (refreshed.status_code, refreshed.content) == (200, b'{"data":{"expires":86400000}}')
    new = cookie_value(refreshed, "directus_session_token")
    assert new != cookie
    assert set_cookies(refreshed) == [
        f"directus_session_token={new}; Max-Age=86400; Path=/; Expires={TOMORROW}; HttpOnly; SameSite=Lax"
    ]
    assert site.get("/whoami").json()["via"] == "session"
    out = site.post("/auth/logout", json_body={"mode": "session"})
    assert out.status_code == 204
    assert set_cookies(out) == [
        f"directus_session_token=; Max-Age=0; Path=/; Expires={EPOCH}; HttpOnly; SameSite=Lax"
    ]
    assert site.get("/whoami").json()["via"] == "public"
    site.client.cookies["directus_session_token"] = new
    after = site.get("/whoami")
    assert (after.status_code, after.content) == (401, INVALID_CREDENTIALS)
    assert set_cookies(after) == set_cookies(out)


def test_wrong_password_and_unknown_route_method(site: Site) -> None:
    r = site.post("/auth/login", json_body={"email": EMAIL, "password": "wrong"})
    assert (r.status_code, r.content) == (401, INVALID_CREDENTIALS)
    r = site.get("/auth/login")
    assert (
        r.status_code == 404
        and json.loads(r.content)["errors"][0]["extensions"]["code"] == "ROUTE_NOT_FOUND"
    )
    providers = site.get("/auth")
    assert providers.status_code == 200 and providers.json() == {
        "data": [],
        "disableDefault": False,
    }


def test_login_body_too_large(kind: str) -> None:
    with override_settings(TOKENGUARD=options(max_payload_bytes=64)):
        r = Site(kind).post("/auth/login", json_body={"email": EMAIL, "password": "x" * 100})
    assert r.status_code == 400 and is_directus_error(r.content)
    assert json.loads(r.content)["errors"][0]["extensions"]["code"] == "INVALID_PAYLOAD"


def test_head_on_providers_has_no_body(site: Site) -> None:
    r = site.request("HEAD", "/auth")
    assert r.status_code == 200 and r.content == b""
    assert r["Content-Length"] == str(len(site.get("/auth").content))


# -- cross-site requests --------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/private", "/aprivate"])
def test_cross_site_session_cookie_post_is_refused(site: Site, path: str) -> None:
    assert site.login("session").status_code == 200
    r = site.post(path, headers={"Origin": "https://evil.example"})
    assert (r.status_code, r.content) == (403, CROSS_SITE)
    assert r["Content-Type"] == JSON
    assert site.post(path, headers={"Referer": "https://evil.example/page"}).status_code == 403
    ok = site.post(path, headers={"Origin": "http://testserver"})
    assert (ok.status_code, ok.json()) == (200, {"method": "POST", "user": USER_ID})
    # No Origin and no Referer: not a browser (TOKENGUARD_CSRF_REQUIRE_ORIGIN is off).
    assert site.post(path).status_code == 200
    # A safe method is never checked.
    assert site.get(path, headers={"Origin": "https://evil.example"}).status_code == 200


def test_cross_site_bearer_post_is_not_checked(site: Site) -> None:
    r = site.post(
        "/private",
        headers={"Authorization": f"Bearer {access_jwt()}", "Origin": "https://evil.example"},
    )
    assert r.status_code == 200


def test_trusted_origins(kind: str) -> None:
    with override_settings(TOKENGUARD=options(csrf_trusted_origins=("https://app.example",))):
        s = Site(kind)
        s.login("session")
        assert s.post("/private", headers={"Origin": "https://app.example"}).status_code == 200
        assert s.post("/private", headers={"Origin": "https://other.example"}).status_code == 403


def test_djangos_csrf_middleware_guards_the_views_not_the_auth_routes(kind: str) -> None:
    middleware = [
        "django.middleware.csrf.CsrfViewMiddleware",
        "tokenguard.integrations.django.TokenGuardMiddleware",
    ]
    with override_settings(TOKENGUARD=options(), MIDDLEWARE=middleware):
        s = Site(kind)
        s.client = (Client if kind == "wsgi" else AsyncClient)(
            enforce_csrf_checks=True, headers={"Host": "testserver"}
        )
        login = s.login("json")
        assert login.status_code == 200  # answered before Django's CSRF check would run
        bearer = {"Authorization": f"Bearer {login.json()['data']['access_token']}"}
        r = s.post("/private", headers=bearer)
        assert r.status_code == 403 and b"CSRF" in r.content  # Django's own refusal: @csrf_exempt


# -- decorators -----------------------------------------------------------------------------


def test_requires_role(site: Site) -> None:
    assert (site.get("/admin").status_code, site.get("/admin").content) == (
        401,
        INVALID_CREDENTIALS,
    )
    editor = {"Authorization": f"Bearer {access_jwt(role='editor-role')}"}
    r = site.get("/admin", headers=editor)
    assert (r.status_code, r.content, r["Content-Type"]) == (403, FORBIDDEN, JSON)
    assert site.get("/admin", headers={"Authorization": f"Bearer {STATIC}"}).json() == {
        "admin": True
    }
    # Async view, admin_ok=False: the administrator is refused, the editor passes.
    assert site.get("/editors", headers=editor).json() == {"editor": True}
    r = site.get("/editors", headers={"Authorization": f"Bearer {STATIC}"})
    assert (r.status_code, r.content) == (403, FORBIDDEN)
    assert site.get("/editors").content == INVALID_CREDENTIALS


def test_requires_user(site: Site) -> None:
    for path in ("/private", "/aprivate"):
        r = site.get(path)
        assert (r.status_code, r.content) == (401, INVALID_CREDENTIALS)
        ok = site.get(path, headers={"Authorization": f"Bearer {access_jwt()}"})
        assert ok.json() == {"method": "GET", "user": USER_ID}


def test_class_based_view(site: Site) -> None:
    editor = {"Authorization": f"Bearer {access_jwt(role='editor-role')}"}
    assert site.get("/reports", headers=editor).json() == {"reports": [], "user": USER_ID}
    assert site.get("/reports").content == INVALID_CREDENTIALS


def test_decorator_without_the_middleware_is_a_configuration_error(kind: str) -> None:
    with (
        override_settings(TOKENGUARD=options(), MIDDLEWARE=[]),
        pytest.raises(ImproperlyConfigured, match="TokenGuardMiddleware is not in MIDDLEWARE"),
    ):
        Site(kind).get("/admin")


# -- rate limits ----------------------------------------------------------------------------


def test_rate_limit_refusal_strips_the_query_token(kind: str) -> None:
    with override_settings(TOKENGUARD=options(rate_limiter_enabled=True, rate_limiter_points=2)):
        s = Site(kind)
        assert s.get("/whoami").status_code == 200
        assert s.get("/whoami").status_code == 200
        r = s.get(f"/whoami?access_token={STATIC}")
    assert r.status_code == 429 and is_directus_error(r.content)
    assert json.loads(r.content)["errors"][0]["extensions"]["code"] == "REQUESTS_EXCEEDED"
    assert int(r["Retry-After"]) >= 1
    request = r.wsgi_request if kind == "wsgi" else r.asgi_request
    assert request.META["QUERY_STRING"] == ""


def test_a_session_store_that_is_down_is_a_503(kind: str) -> None:
    # Nothing listens there: the store refuses at once, and the guard fails closed.
    sessions = RedisSessionStore.from_url(
        f"redis://127.0.0.1:{free_port()}/0", prefix="tg-django-test:"
    )
    try:
        with override_settings(TOKENGUARD=options(sessions=sessions)):
            s = Site(kind)
            r = s.get(
                "/whoami", headers={"Authorization": f"Bearer {access_jwt(session='a' * 64)}"}
            )
            assert r.status_code == 503 and is_directus_error(r.content)
            assert json.loads(r.content)["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
            login = s.login("session")
            assert login.status_code == 503 and is_directus_error(login.content)
            assert set_cookies(login) == []
    finally:
        sessions.close()


# -- settings, the guard's life, django.contrib.auth ---------------------------------------


def test_the_guard_is_built_once_and_closed_when_the_settings_change() -> None:
    with override_settings(TOKENGUARD=options()):
        first = get_guard()
        assert get_guard() is first
        Site("wsgi").get("/whoami")
        assert get_guard() is first
    assert first.closed
    with override_settings(TOKENGUARD=options()):
        assert get_guard() is not first


@pytest.mark.parametrize("by", ["object", "dotted path"])
def test_a_given_guard_is_used_and_left_open(by: str, monkeypatch: pytest.MonkeyPatch) -> None:
    opts = options()
    guard = TokenGuard(**opts)
    monkeypatch.setattr(django_site, "GUARD", guard, raising=False)
    given = guard if by == "object" else "tests.helpers.django_site.GUARD"
    try:
        with override_settings(TOKENGUARD={"guard": given}):
            assert get_guard() is guard
            assert (
                Site("wsgi")
                .get("/whoami", headers={"Authorization": f"Bearer {STATIC}"})
                .json()["via"]
                == "static"
            )
        assert not guard.closed
    finally:
        guard.close()


def test_bad_settings_are_improperly_configured() -> None:
    for bad in ({"secret": "short"}, {"no_such_setting": 1}, {"flavour": "async"}, {"guard": 42}):
        with (
            override_settings(TOKENGUARD=bad),
            pytest.raises(ImproperlyConfigured, match="TOKENGUARD"),
        ):
            get_guard()
    # Never connected: the check looks at the store's methods only.
    sessions = AsyncRedisSessionStore.from_url("redis://127.0.0.1:9/0", prefix="tg-django-test:")
    async_guard = TokenGuard(**options(sessions=sessions), flavour="async")
    with (
        override_settings(TOKENGUARD={"guard": async_guard}),
        pytest.raises(ImproperlyConfigured, match="asynchronous stores"),
    ):
        get_guard()
    close_guard()
    async_guard.close()


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    monkeypatch.setenv("SECRET", SECRET)
    monkeypatch.setenv("TOKENGUARD_PUBLIC_ROLE", "visitors")
    with override_settings(TOKENGUARD=None):
        data = Site(kind).get("/whoami").json()
        assert data["auth_role"] == "visitors"
        r = Site(kind).get("/whoami", headers={"Authorization": "Bearer not-a-jwt"})
        assert r.content == INVALID_CREDENTIALS


CONTRIB = {
    "INSTALLED_APPS": [
        "django.contrib.contenttypes",
        "django.contrib.auth",
        "django.contrib.sessions",
    ],
    "SESSION_ENGINE": "django.contrib.sessions.backends.signed_cookies",
}


def test_with_django_contrib_auth_after_authentication_middleware(kind: str) -> None:
    middleware = [
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "tokenguard.integrations.django.TokenGuardMiddleware",
    ]
    with override_settings(TOKENGUARD=options(), MIDDLEWARE=middleware, **CONTRIB):
        s = Site(kind)
        assert s.get("/whoami").json()["user"]["is_anonymous"] is True
        data = s.get("/awhoami", headers={"Authorization": f"Bearer {STATIC}"}).json()
        assert (data["user"]["pk"], data["user"]["is_superuser"]) == (ADMIN_ID, True)
        assert s.get("/admin", headers={"Authorization": f"Bearer {STATIC}"}).status_code == 200
        # django.contrib.auth's own decorator reads request.user.is_authenticated.
        r = s.get("/login-required")
        assert (r.status_code, r["Location"]) == (302, "/accounts/login/?next=/login-required")
        assert s.get("/login-required", headers={"Authorization": f"Bearer {STATIC}"}).json() == {
            "user": ADMIN_ID
        }


def test_before_authentication_middleware_django_sets_request_user(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    middleware = [
        "django.contrib.sessions.middleware.SessionMiddleware",
        "tokenguard.integrations.django.TokenGuardMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
    ]
    with override_settings(TOKENGUARD=options(), MIDDLEWARE=middleware, **CONTRIB):
        with caplog.at_level(logging.WARNING, logger="tokenguard"):
            s = Site(kind)
            r = s.get("/private", headers={"Authorization": f"Bearer {STATIC}"})
        # request.principal is still tokenguard's: the decorators read it.
        assert r.status_code == 200 and r.json()["user"] is None  # Django's AnonymousUser.pk
        assert s.get("/private").content == INVALID_CREDENTIALS
    assert "comes before django.contrib.auth.middleware.AuthenticationMiddleware" in caplog.text


def test_the_integration_does_not_import_django_contrib_auth() -> None:
    code = """
import io, os, sys
from django.conf import settings
settings.configure(SECRET_KEY="x" * 50, ROOT_URLCONF=__name__, ALLOWED_HOSTS=["*"], INSTALLED_APPS=[],
    MIDDLEWARE=["tokenguard.integrations.django.TokenGuardMiddleware"],
    TOKENGUARD={"secret": os.environ["SECRET"], "public_role": "public"})
import django
django.setup()
from django.http import JsonResponse
from django.urls import path
def view(request):
    return JsonResponse({"authenticated": request.user.is_authenticated, "role": request.auth_role})
urlpatterns = [path("", view)]
from django.core.handlers.wsgi import WSGIHandler
app = WSGIHandler()
out = []
body = app({"REQUEST_METHOD": "GET", "PATH_INFO": "/", "SERVER_NAME": "h", "SERVER_PORT": "80",
            "wsgi.input": io.BytesIO(), "wsgi.url_scheme": "http"}, lambda s, h: out.append(s))
print(out[0], b"".join(body).decode(), "django.contrib.auth" in sys.modules)
"""
    env = {**os.environ, "SECRET": SECRET}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '200 OK {"authenticated": false, "role": "public"} False'


# -- values ---------------------------------------------------------------------------------


def test_user_object() -> None:
    public = TokenGuardUser(Principal(None, "public"))
    admin = TokenGuardUser(Principal(ADMIN_ID, "administrator", admin=True, via="jwt"))
    assert str(public) == "AnonymousUser" and str(admin) == ADMIN_ID
    assert admin.has_perms(["a.b", "c.d"]) and admin.has_module_perms("app")
    assert not public.has_perms(["a.b"]) and not public.has_module_perms("app")
    with pytest.raises(ValueError):
        admin.has_perms("a.b")
    assert admin.get_all_permissions() == set()
    assert admin == TokenGuardUser(Principal(ADMIN_ID, "administrator", admin=True, via="jwt"))
    assert len({admin, TokenGuardUser(admin.principal)}) == 1
    for call in (admin.save, admin.delete):
        with pytest.raises(NotImplementedError):
            call()
    assert "secret-id" not in repr(
        TokenGuardUser(Principal("u", "r", via="session", session="secret-id"))
    )


def test_exact_cookie_survives_pickling() -> None:
    header = f"directus_refresh_token=abc%2Fdef; Max-Age=604800; Path=/; Expires={NEXT_WEEK}; HttpOnly; SameSite=Lax"
    morsel = ExactCookie(header)
    assert (morsel.key, morsel.value, morsel.coded_value) == (
        "directus_refresh_token",
        "abc/def",
        "abc%2Fdef",
    )
    copy = pickle.loads(pickle.dumps(morsel))
    assert copy.output(header="").strip() == header


# -- client-controlled input ------------------------------------------------------------------

HEADER_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=120)


@pytest.fixture
def fuzz_client() -> Iterator[Any]:
    # One client for all of Hypothesis's examples; a 500 comes back as a response.
    with override_settings(TOKENGUARD=options()):
        yield Client(raise_request_exception=False)


@hsettings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    value=st.one_of(
        HEADER_TEXT,
        HEADER_TEXT.map(lambda s: "Bearer " + s),
        st.sampled_from(
            ["Bearer", "Bearer ", "bearer " + STATIC, "Basic Zm9vOmJhcg==", "Bearer a, Bearer b"]
        ),
    ),
    query=st.sampled_from(
        ["", "access_token=", "access_token=x", "a=1&access_token=%ZZ", "access_token=" + STATIC]
    ),
    cookie=st.one_of(
        st.just(""), HEADER_TEXT, HEADER_TEXT.map(lambda s: "directus_session_token=" + s)
    ),
)
def test_authorization_values_never_give_a_500(
    fuzz_client: Any, value: str, query: str, cookie: str
) -> None:
    fuzz_client.cookies.clear()  # the cookie is the example's, not one a refusal left behind
    path = "/whoami?" + query if query else "/whoami"
    r = fuzz_client.get(path, HTTP_AUTHORIZATION=value, HTTP_COOKIE=cookie)
    assert r.status_code in (200, 400, 401, 403), (value, query, r.status_code)
    if r.status_code != 200:
        assert is_directus_error(r.content)
        assert r["Content-Type"] == JSON
    else:
        assert "access_token" not in r.json()["QUERY_STRING"]
    post = fuzz_client.post(
        path, HTTP_AUTHORIZATION=value, HTTP_COOKIE=cookie, HTTP_ORIGIN="https://evil.example"
    )
    assert post.status_code in (200, 400, 401, 403), (value, query, cookie, post.status_code)


class RecordingUsers(MemoryUserStore):
    """A user store that says it blocks (as SQLite does), and notes where it was asked."""

    io_bound = True

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[int] = []

    def get_by_token_hash(self, token_hash: str) -> Any:
        self.threads.append(threading.get_ident())
        return super().get_by_token_hash(token_hash)


def test_blocking_store_calls_leave_the_event_loop(kind: str) -> None:
    users = RecordingUsers()
    for user in options()["users"].list_users():
        users.create(user)
    with override_settings(TOKENGUARD=options(users=users)):
        r = Site(kind).get("/loop-thread", headers={"Authorization": f"Bearer {STATIC}"})
    assert r.json()["via"] == "static" and len(users.threads) == 1
    if kind == "asgi":
        # run_async moved the lookup to a worker thread: the loop went on serving.
        assert users.threads[0] != r.json()["thread"]
    else:
        assert users.threads[0] == threading.get_ident()  # run_sync: the request's own thread


def test_the_middleware_follows_the_handler_mode() -> None:
    from asgiref.sync import iscoroutinefunction

    from tokenguard.integrations.django import TokenGuardMiddleware

    async def async_view(request: Any) -> HttpResponse:
        return HttpResponse(b"async")

    with override_settings(TOKENGUARD=options()):
        assert iscoroutinefunction(TokenGuardMiddleware(async_view))
        assert not iscoroutinefunction(TokenGuardMiddleware(lambda request: HttpResponse(b"sync")))
