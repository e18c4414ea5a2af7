"""Cookie modes against cross-site request forgery, through both shells.

A session cookie (or a refresh cookie) is sent by the browser on its own; an unsafe request
it authenticates must come from a trusted origin. Bearer and query tokens are untouched.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers.auth import EMAIL, PASSWORD, USER_ID
from tests.security.harness import Reply, Shell, make_shell
from tokenguard.guard.csrf import CROSS_ORIGIN, NO_ORIGIN, CsrfPolicy, origin_of
from tokenguard.jose.tokens import hash_token

pytestmark = pytest.mark.parametrize("kind", ["asgi", "wsgi"])

HOST = "api.example.test"
SELF = f"http://{HOST}"
EVIL = "https://evil.example"


def forbidden(reason: str) -> bytes:
    import json

    return json.dumps(
        {"errors": [{"message": reason, "extensions": {"reason": reason, "code": "FORBIDDEN"}}]},
        separators=(",", ":"),
    ).encode()


def cookie_of(reply: Reply, name: str) -> str:
    for value in reply.all("set-cookie"):
        if value.startswith(f"{name}="):
            return value.split(";", 1)[0]
    raise AssertionError(f"no {name} cookie in {reply.headers}")


def session_login(shell: Shell) -> str:
    reply = shell.request(
        "POST", "/auth/login", json_body={"email": EMAIL, "password": PASSWORD, "mode": "session"},
        headers={"Origin": SELF},
    )
    assert reply.status == 200, reply.body
    set_cookie = next(v for v in reply.all("set-cookie") if v.startswith("directus_session_token="))
    assert "SameSite=Lax" in set_cookie and "HttpOnly" in set_cookie  # the first layer
    return cookie_of(reply, "directus_session_token")


def post(shell: Shell, cookie: str, **headers: str) -> Reply:
    return shell.request("POST", "/items", headers={"Cookie": cookie, **headers})


# -- app routes -------------------------------------------------------------------------------


def test_cross_site_post_with_the_session_cookie_is_refused(kind: str) -> None:
    shell = make_shell(kind)
    cookie = session_login(shell)
    reply = post(shell, cookie, Origin=EVIL)
    assert (reply.status, reply.body) == (403, forbidden(CROSS_ORIGIN))


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "PROPFIND"])
def test_every_unsafe_method_is_checked(kind: str, method: str) -> None:
    shell = make_shell(kind)
    cookie = session_login(shell)
    reply = shell.request(method, "/items", headers={"Cookie": cookie, "Origin": EVIL})
    assert (reply.status, reply.body) == (403, forbidden(CROSS_ORIGIN))


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
def test_safe_methods_are_not_checked(kind: str, method: str) -> None:
    shell = make_shell(kind)
    cookie = session_login(shell)
    reply = shell.request(method, "/items", headers={"Cookie": cookie, "Origin": EVIL})
    assert reply.status == 200


def test_same_origin_post_passes(kind: str) -> None:
    shell = make_shell(kind)
    cookie = session_login(shell)
    reply = post(shell, cookie, Origin=SELF)
    assert (reply.status, reply.body) == (200, f"app {USER_ID} session".encode())


def test_https_origin_behind_a_tls_terminating_proxy_passes(kind: str) -> None:
    shell = make_shell(kind)
    cookie = session_login(shell)
    assert post(shell, cookie, Origin=f"https://{HOST}").status == 200


def test_http_origin_for_an_https_request_is_refused(kind: str) -> None:
    shell = make_shell(kind)
    cookie = session_login(shell)
    reply = shell.request("POST", "/items", headers={"Cookie": cookie, "Origin": SELF}, scheme="https")
    assert reply.status == 403


def test_same_host_other_port_is_another_origin(kind: str) -> None:
    shell = make_shell(kind)
    cookie = session_login(shell)
    assert post(shell, cookie, Origin=f"http://{HOST}:8080").status == 403


def test_referer_is_used_when_origin_is_missing(kind: str) -> None:
    shell = make_shell(kind)
    cookie = session_login(shell)
    assert post(shell, cookie, Referer=f"{SELF}/admin/page?x=1").status == 200
    reply = post(shell, cookie, Referer=f"{EVIL}/{HOST}/")
    assert (reply.status, reply.body) == (403, forbidden(CROSS_ORIGIN))


@pytest.mark.parametrize("origin", ["null", "", "file://", "chrome-extension://abc", "http://", "not a url"])
def test_null_and_garbage_origins_are_refused(kind: str, origin: str) -> None:
    shell = make_shell(kind)
    cookie = session_login(shell)
    assert post(shell, cookie, Origin=origin).status == 403


def test_lookalike_origins_are_refused(kind: str) -> None:
    shell = make_shell(kind)
    cookie = session_login(shell)
    for origin in (f"http://{HOST}.evil.example", f"http://evil{HOST}", f"http://{HOST}@evil.example"):
        assert post(shell, cookie, Origin=origin).status == 403, origin


def test_missing_origin_passes_by_default_and_is_refused_when_required(kind: str) -> None:
    shell = make_shell(kind)
    cookie = session_login(shell)
    assert post(shell, cookie).status == 200
    strict = make_shell(kind, csrf_require_origin=True)
    cookie = session_login(strict)
    reply = post(strict, cookie)
    assert (reply.status, reply.body) == (403, forbidden(NO_ORIGIN))


def test_trusted_origins_and_public_url(kind: str) -> None:
    shell = make_shell(kind, csrf_trusted_origins=("https://app.example.test",), public_url="https://public.example.test/")
    cookie = session_login(shell)
    assert post(shell, cookie, Origin="https://app.example.test").status == 200
    assert post(shell, cookie, Origin="https://public.example.test").status == 200
    assert post(shell, cookie, Origin="https://other.example.test").status == 403


def test_protection_can_be_turned_off(kind: str) -> None:
    shell = make_shell(kind, csrf_protection=False)
    cookie = session_login(shell)
    assert post(shell, cookie, Origin=EVIL).status == 200


def test_bearer_requests_are_not_affected(kind: str) -> None:
    shell = make_shell(kind)
    reply = shell.request("POST", "/auth/login", json_body={"email": EMAIL, "password": PASSWORD})
    token = reply.json()["data"]["access_token"]
    reply = shell.request("POST", "/items", headers={"Authorization": f"Bearer {token}", "Origin": EVIL})
    assert (reply.status, reply.body) == (200, f"app {USER_ID} jwt".encode())
    reply = shell.request("POST", f"/items?access_token={token}", headers={"Origin": EVIL})
    assert reply.status == 200


def test_bearer_wins_over_a_cookie_and_is_not_checked(kind: str) -> None:
    shell = make_shell(kind)
    cookie = session_login(shell)
    token = shell.request("POST", "/auth/login", json_body={"email": EMAIL, "password": PASSWORD}).json()["data"][
        "access_token"
    ]
    reply = shell.request(
        "POST", "/items", headers={"Authorization": f"Bearer {token}", "Cookie": cookie, "Origin": EVIL}
    )
    assert reply.status == 200


def test_a_static_token_in_the_cookie_is_checked_too(kind: str) -> None:
    from tests.helpers.auth import make_user
    from tokenguard.stores.memory import MemoryUserStore

    users = MemoryUserStore()
    users.create(make_user(token_hash=hash_token("static-token-0123456789")))
    shell = make_shell(kind, users=users)
    cookie = "directus_session_token=static-token-0123456789"
    assert post(shell, cookie, Origin=SELF).status == 200
    assert post(shell, cookie, Origin=EVIL).status == 403


def test_anonymous_requests_are_not_checked(kind: str) -> None:
    shell = make_shell(kind)
    reply = shell.request("POST", "/items", headers={"Cookie": "theme=dark", "Origin": EVIL})
    assert (reply.status, reply.body) == (200, b"app None public")


# -- /auth in cookie and session modes --------------------------------------------------------


def test_refresh_by_cookie_from_another_site_is_refused(kind: str) -> None:
    shell = make_shell(kind)
    reply = shell.request(
        "POST", "/auth/login", json_body={"email": EMAIL, "password": PASSWORD, "mode": "cookie"}
    )
    refresh = cookie_of(reply, "directus_refresh_token")
    reply = shell.request("POST", "/auth/refresh", headers={"Cookie": refresh, "Origin": EVIL})
    assert (reply.status, reply.body) == (403, forbidden(CROSS_ORIGIN))
    # The token was not rotated by the forged request: the owner can still use it.
    reply = shell.request("POST", "/auth/refresh", headers={"Cookie": refresh, "Origin": SELF})
    assert reply.status == 200


def test_session_refresh_from_another_site_is_refused(kind: str) -> None:
    shell = make_shell(kind)
    cookie = session_login(shell)
    reply = shell.request("POST", "/auth/refresh", json_body={"mode": "session"}, headers={"Cookie": cookie, "Origin": EVIL})
    assert reply.status == 403
    reply = shell.request("POST", "/auth/refresh", json_body={"mode": "session"}, headers={"Cookie": cookie, "Origin": SELF})
    assert reply.status == 200


def test_logout_from_another_site_does_not_end_the_session(kind: str) -> None:
    shell = make_shell(kind)
    cookie = session_login(shell)
    reply = shell.request("POST", "/auth/logout", json_body={"mode": "session"}, headers={"Cookie": cookie, "Origin": EVIL})
    assert reply.status == 403
    assert reply.all("set-cookie") == []
    assert shell.request("GET", "/items", headers={"Cookie": cookie}).body == f"app {USER_ID} session".encode()


def test_login_into_cookie_mode_from_another_site_is_refused(kind: str) -> None:
    # Login CSRF: planting the attacker's session in the victim's browser.
    shell = make_shell(kind)
    reply = shell.request(
        "POST",
        "/auth/login",
        json_body={"email": EMAIL, "password": PASSWORD, "mode": "session"},
        headers={"Origin": EVIL},
    )
    assert (reply.status, reply.all("set-cookie")) == (403, [])


def test_json_mode_is_not_affected(kind: str) -> None:
    shell = make_shell(kind)
    reply = shell.request(
        "POST", "/auth/login", json_body={"email": EMAIL, "password": PASSWORD}, headers={"Origin": EVIL}
    )
    assert reply.status == 200
    refresh = reply.json()["data"]["refresh_token"]
    reply = shell.request("POST", "/auth/refresh", json_body={"refresh_token": refresh}, headers={"Origin": EVIL})
    assert reply.status == 200


# -- the policy on its own --------------------------------------------------------------------


@given(
    method=st.sampled_from(["POST", "PUT", "GET", "DELETE", "x"]),
    origin=st.one_of(st.none(), st.text(max_size=60)),
    referer=st.one_of(st.none(), st.text(max_size=60)),
    host=st.one_of(st.none(), st.text(max_size=40)),
    scheme=st.sampled_from(["http", "https"]),
)
@settings(max_examples=300)
def test_policy_never_raises_and_answers_403_or_none(
    kind: str, method: str, origin: Any, referer: Any, host: Any, scheme: str
) -> None:
    del kind
    policy = CsrfPolicy(trusted_origins=("https://app.example",))
    result = policy.check(method, origin, referer, host, scheme)
    assert result is None or (result.status, result.code) == (403, "FORBIDDEN")
    if result is None and method.upper() not in ("GET", "HEAD", "OPTIONS", "TRACE"):
        # Let through only with no origin at all, a trusted one, or our own.
        claimed = origin_of(origin) if origin is not None else (origin_of(referer) if referer else None)
        assert (origin is None and not referer) or claimed is not None


@given(url=st.text(max_size=80))
@settings(max_examples=300)
def test_origin_of_never_raises(kind: str, url: str) -> None:
    del kind
    result = origin_of(url)
    assert result is None or result.startswith(("http://", "https://"))


def test_origin_of_normalises(kind: str) -> None:
    del kind
    assert origin_of("HTTPS://App.Example:443/x?y") == "https://app.example"
    assert origin_of("http://a.example:8080/") == "http://a.example:8080"
    assert origin_of("http://[::1]:3000") == "http://[::1]:3000"
    assert origin_of("null") is None


def test_two_factor_changes_from_another_site_are_refused(kind: str) -> None:
    # Routes served by tokenguard beyond /auth (here Directus's /users/me/tfa/*) get the same
    # check when the session cookie is the credential.
    shell = make_shell(kind)
    cookie = session_login(shell)
    for action in ("generate", "enable", "disable"):
        reply = shell.request(
            "POST", f"/users/me/tfa/{action}", json_body={"password": PASSWORD}, headers={"Cookie": cookie, "Origin": EVIL}
        )
        assert (reply.status, reply.body) == (403, forbidden(CROSS_ORIGIN)), action
    reply = shell.request(
        "POST", "/users/me/tfa/generate", json_body={"password": PASSWORD}, headers={"Cookie": cookie, "Origin": SELF}
    )
    assert reply.status == 200, reply.body
