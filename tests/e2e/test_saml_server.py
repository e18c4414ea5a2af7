"""End to end: SAML login through real servers on 127.0.0.1 and a real pysaml2 IdP.

1. A uvicorn server running the ASGI middleware (async flavour), with an HTTP client acting
   as the browser: login -> IdP -> its HTTP-POST form -> ACS -> the app, signed in.
2. Two uvicorn processes sharing SQLite users and a private Redis: an assertion accepted by
   one is refused by the other (replay protection across processes).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from tests.helpers.auth import FAST, INVALID_CREDENTIALS, SECRET, plain_asgi_app
from tests.helpers.redis_server import RedisServer
from tests.helpers.saml_idp import CLAIMS, SAMLIdP, read_form, running_idp
from tests.helpers.servers import AUTH_APP_UVICORN, free_port, serve
from tokenguard import TokenGuard, TokenGuardMiddleware
from tokenguard.stores.memory import MemorySessionStore, MemoryUserStore

pytestmark = pytest.mark.e2e

USER = {
    CLAIMS + "nameidentifier": ["e2e-saml-user"],
    CLAIMS + "emailaddress": ["e2e.saml@example.com"],
}


def _provider_env(idp: SAMLIdP) -> dict[str, str]:
    return {
        "AUTH_PROVIDERS": "saml",
        "AUTH_SAML_DRIVER": "saml",
        "AUTH_SAML_IDP_metadata": idp.metadata,
        "AUTH_SAML_SP_metadata": idp.sp_metadata,
        "AUTH_SAML_ALLOW_PUBLIC_REGISTRATION": "true",
    }


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[str, MemoryUserStore, SAMLIdP]]:
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    with running_idp(tmp_path, public + "/sp", public + "/auth/login/saml/acs") as idp:
        idp.user = {k: list(v) for k, v in USER.items()}
        users = MemoryUserStore()
        env = _provider_env(idp)
        env.pop("AUTH_PROVIDERS")
        core = TokenGuard(
            secret=SECRET,
            users=users,
            sessions=MemorySessionStore(),
            passwords=FAST,
            flavour="async",
            public_url=public,
            auth_providers="saml",
            auth_provider_env=env,
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


def test_browser_signs_in_through_the_idp_form(
    stack: tuple[str, MemoryUserStore, SAMLIdP],
) -> None:
    public, users, idp = stack
    with httpx.Client(base_url=public, follow_redirects=True, timeout=10) as browser:
        page = browser.get("/auth/login/saml", params={"redirect": "/dashboard"})
        # login -> IdP, which answers with its auto-submitting HTTP-POST form
        assert [r.status_code for r in page.history] == [302]
        assert page.status_code == 200
        action, fields = read_form(page.text)
        assert action == public + "/auth/login/saml/acs"
        assert fields["RelayState"] == "/dashboard"
        reply = browser.post(action, data=fields)
        # ACS -> /dashboard (the app, now signed in)
        assert [r.status_code for r in reply.history] == [302]
        user = users.get_by_email("e2e.saml@example.com")
        assert user is not None and user.external_identifier == "e2e-saml-user"
        assert reply.status_code == 200
        assert reply.text == f"app /dashboard user={user.id}"
        assert browser.cookies.get("directus_session_token", "").startswith("ey")
        # The same form again (a replay) goes back with the reason, and sets no cookie.
        again = browser.post(action, data=fields, follow_redirects=False)
        assert again.status_code == 302
        assert again.headers["location"] == "/dashboard?reason=INVALID_CREDENTIALS"
        assert "set-cookie" not in again.headers
        # Logout ends the session and goes to the IdP's single logout service.
        out = browser.post(
            "/auth/login/saml/logout",
            data={"nameID": "idp-user-1"},
            headers={"origin": public},
            follow_redirects=False,
        )
        assert out.status_code == 302
        assert out.headers["location"].startswith(idp.url + "/slo?SAMLRequest=")
        assert "directus_session_token" not in browser.cookies


UVICORN = AUTH_APP_UVICORN


@pytest.mark.redis
def test_replay_is_refused_by_another_process(
    tmp_path: Path, private_redis: RedisServer
) -> None:
    public = "http://sp.example.test"  # the load balancer's address, shared by both
    acs = "/auth/login/saml/acs"
    with running_idp(tmp_path, public + "/sp", public + acs) as idp:
        idp.user = {k: list(v) for k, v in USER.items()}
        env = {
            "SECRET": SECRET,
            "DB_FILENAME": str(tmp_path / "tokenguard.db"),
            "REDIS": private_redis.url,
            "PUBLIC_URL": public,
            "LOGIN_STALL_TIME": "0",
            **_provider_env(idp),
        }
        first_dir, second_dir = tmp_path / "a", tmp_path / "b"
        first_dir.mkdir()
        second_dir.mkdir()
        with serve(UVICORN, env, first_dir) as first, serve(UVICORN, env, second_dir) as second:
            start = httpx.get(first.url + "/auth/login/saml", timeout=10)
            assert start.status_code == 302
            action, fields = read_form(httpx.get(start.headers["location"], timeout=10).text)
            assert action == public + acs
            accepted = httpx.post(first.url + acs, data=fields, timeout=10)
            assert accepted.status_code == 200, accepted.text
            assert set(accepted.json()["data"]) == {"access_token", "expires", "refresh_token"}
            replayed = httpx.post(second.url + acs, data=fields, timeout=10)
            assert replayed.status_code == 401
            assert replayed.content == INVALID_CREDENTIALS
            # The second process signs in the same user with a fresh assertion of its own.
            start = httpx.get(second.url + "/auth/login/saml", timeout=10)
            _, fresh = read_form(httpx.get(start.headers["location"], timeout=10).text)
            assert httpx.post(second.url + acs, data=fresh, timeout=10).status_code == 200


def _role(token: str) -> object:
    import base64
    import json

    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["role"]


@pytest.mark.redis
def test_a_group_change_at_the_idp_revokes_the_older_tokens_in_every_process(
    tmp_path: Path, private_redis: RedisServer
) -> None:
    public = "http://sp.example.test"
    acs = "/auth/login/saml/acs"
    with running_idp(tmp_path, public + "/sp", public + acs) as idp:
        idp.user = {**{k: list(v) for k, v in USER.items()}, "groups": ["admins"]}
        env = {
            "SECRET": SECRET,
            "DB_FILENAME": str(tmp_path / "tokenguard.db"),
            "REDIS": private_redis.url,
            "PUBLIC_URL": public,
            "LOGIN_STALL_TIME": "0",
            "AUTH_SAML_ROLE_MAPPING": '{"admins": "role-admin", "editors": "role-editor"}',
            **_provider_env(idp),
        }
        first_dir, second_dir = tmp_path / "a", tmp_path / "b"
        first_dir.mkdir()
        second_dir.mkdir()

        def sign_in(url: str) -> dict[str, str]:
            start = httpx.get(url + "/auth/login/saml", timeout=10)
            _, fields = read_form(httpx.get(start.headers["location"], timeout=10).text)
            reply = httpx.post(url + acs, data=fields, timeout=10)
            assert reply.status_code == 200, reply.text
            data: dict[str, str] = reply.json()["data"]
            return data

        with serve(UVICORN, env, first_dir) as first, serve(UVICORN, env, second_dir) as second:
            old = sign_in(first.url)
            assert _role(old["access_token"]) == "role-admin"
            bearer = {"authorization": f"Bearer {old['access_token']}"}
            assert httpx.get(first.url + "/whoami", headers=bearer).status_code == 200
            # Moved to editors at the IdP; the next sign-in, in the OTHER process, syncs the
            # role and announces the revocation: the first process refuses the old token.
            idp.user["groups"] = ["editors"]
            new = sign_in(second.url)
            assert _role(new["access_token"]) == "role-editor"
            deadline = time.monotonic() + 2.0
            status = 200
            while time.monotonic() < deadline:
                status = httpx.get(first.url + "/whoami", headers=bearer).status_code
                if status == 401:
                    break
                time.sleep(0.05)
            assert status == 401
            assert httpx.get(second.url + "/whoami", headers=bearer).status_code == 401
            fresh = {"authorization": f"Bearer {new['access_token']}"}
            for server in (first, second):
                assert httpx.get(server.url + "/whoami", headers=fresh).status_code == 200
