"""End to end: a real uvicorn server running the ASGI middleware, a real (tiny) OpenID
provider, and an HTTP client acting as the browser (cookies, redirects), all on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from tests.helpers.auth import FAST, SECRET, plain_asgi_app
from tests.helpers.oidc_provider import CLIENT_ID, CLIENT_SECRET, OIDCProvider, running_provider
from tests.helpers.servers import free_port
from tokenguard import TokenGuard, TokenGuardMiddleware
from tokenguard.stores.memory import MemorySessionStore, MemoryUserStore


@pytest.fixture
def stack() -> Iterator[tuple[str, MemoryUserStore]]:
    for public, users, _ in _running({}):
        yield public, users


@pytest.fixture
def mapped() -> Iterator[tuple[str, MemoryUserStore, OIDCProvider]]:
    """The provider's ``groups`` claim picks the role (``AUTH_IDP_ROLE_MAPPING``)."""
    yield from _running({"AUTH_IDP_ROLE_MAPPING": json.dumps(ROLE_MAPPING)})


ROLE_MAPPING = {"admins": "role-admin", "editors": "role-editor"}


def _running(extra_env: dict[str, str]) -> Iterator[tuple[str, MemoryUserStore, OIDCProvider]]:
    with running_provider() as idp:
        port = free_port()
        public = f"http://127.0.0.1:{port}"
        users = MemoryUserStore()
        core = TokenGuard(
            secret=SECRET,
            users=users,
            sessions=MemorySessionStore(),
            passwords=FAST,
            flavour="async",
            public_url=public,
            auth_providers="idp",
            auth_provider_env={
                "AUTH_IDP_DRIVER": "openid",
                "AUTH_IDP_CLIENT_ID": CLIENT_ID,
                "AUTH_IDP_CLIENT_SECRET": CLIENT_SECRET,
                "AUTH_IDP_ISSUER_URL": idp.url + "/.well-known/openid-configuration",
                "AUTH_IDP_ALLOW_PUBLIC_REGISTRATION": "true",
                **extra_env,
            },
        )
        app = TokenGuardMiddleware(plain_asgi_app, guard=core)
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.started
        try:
            yield public, users, idp
        finally:
            server.should_exit = True
            thread.join(5)


def test_browser_signs_in_through_the_provider_and_uses_the_session(
    stack: tuple[str, MemoryUserStore],
) -> None:
    public, users = stack
    with httpx.Client(base_url=public, follow_redirects=True, timeout=10) as browser:
        reply = browser.get("/auth/login/idp", params={"redirect": "/dashboard"})
        # login -> provider -> callback -> /dashboard (the app, now signed in)
        assert [r.status_code for r in reply.history] == [302, 302, 302]
        assert reply.status_code == 200
        user = users.get_by_email("sso.user@example.com")
        assert user is not None
        assert reply.text == f"app /dashboard user={user.id}"
        assert "openid.idp" not in browser.cookies
        assert browser.cookies.get("directus_session_token", "").startswith("ey")
        # The session refreshes and logs out like any session-mode login.
        refreshed = browser.post(
            "/auth/refresh", json={"mode": "session"}, headers={"origin": public}
        )
        assert refreshed.status_code == 200
        out = browser.post("/auth/logout", json={"mode": "session"}, headers={"origin": public})
        assert out.status_code == 204
        assert browser.get("/dashboard").text == "app /dashboard user=None"


def test_json_answer_without_redirect(stack: tuple[str, MemoryUserStore]) -> None:
    public, _ = stack
    with httpx.Client(base_url=public, follow_redirects=True, timeout=10) as browser:
        reply = browser.get("/auth/login/idp")
        assert reply.status_code == 200
        data = reply.json()["data"]
        assert sorted(data) == ["access_token", "expires", "refresh_token"]
        me = httpx.get(public + "/me", headers={"authorization": f"Bearer {data['access_token']}"})
        assert me.text.startswith("app /me user=") and not me.text.endswith("None")


def test_callback_without_the_state_cookie_is_refused(stack: tuple[str, MemoryUserStore]) -> None:
    public, users = stack
    with httpx.Client(base_url=public, follow_redirects=False, timeout=10) as browser:
        start = browser.get("/auth/login/idp")
        at_idp = httpx.get(start.headers["location"], follow_redirects=False)
        # Another browser (no state cookie) presents the victim's callback URL.
        reply = httpx.get(at_idp.headers["location"])
        assert reply.status_code == 401
        assert reply.json()["errors"][0]["extensions"]["code"] == "INVALID_CREDENTIALS"
        assert users.list_users() == []


def _role(token: str) -> object:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["role"]


def test_a_group_change_at_the_provider_revokes_the_older_tokens_at_the_next_login(
    mapped: tuple[str, MemoryUserStore, OIDCProvider],
) -> None:
    public, users, idp = mapped
    idp.claims["groups"] = ["admins"]
    with httpx.Client(base_url=public, follow_redirects=True, timeout=10) as browser:
        first = browser.get("/auth/login/idp").json()["data"]
        assert _role(first["access_token"]) == "role-admin"
        old = {"authorization": f"Bearer {first['access_token']}"}
        assert httpx.get(public + "/me", headers=old).text.endswith(
            f"user={users.get_by_email('sso.user@example.com').id}"  # type: ignore[union-attr]
        )
        # The provider's administrator moves the user to editors: the next sign-in syncs the
        # role, and the token obtained as an admin is refused from that moment.
        idp.claims["groups"] = ["editors"]
        second = browser.get("/auth/login/idp").json()["data"]
        assert _role(second["access_token"]) == "role-editor"
        refused = httpx.get(public + "/me", headers=old)
        assert refused.status_code == 401
        assert refused.json()["errors"][0]["extensions"]["code"] == "INVALID_CREDENTIALS"
        new = {"authorization": f"Bearer {second['access_token']}"}
        assert httpx.get(public + "/me", headers=new).status_code == 200
        # The first sign-in's refresh token brings the new role.
        refreshed = httpx.post(
            public + "/auth/refresh", json={"refresh_token": first["refresh_token"], "mode": "json"}
        )
        assert refreshed.status_code == 200, refreshed.text
        assert _role(refreshed.json()["data"]["access_token"]) == "role-editor"
        # A sign-in that changes nothing revokes nothing.
        third = browser.get("/auth/login/idp").json()["data"]
        assert httpx.get(public + "/me", headers=new).status_code == 200
        assert _role(third["access_token"]) == "role-editor"
    user = users.get_by_email("sso.user@example.com")
    assert user is not None and user.role == "role-editor"
