"""Password reset: bodies, errors and the abuse cases (reused, expired, outdated and forged
tokens; open redirects through reset_url; user enumeration), through the WSGI shell."""

from __future__ import annotations

import re
from typing import Any

import jwt
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
from tokenguard.auth.mail import MemoryMailer
from tokenguard.auth.reset import ResetTokens, is_url_allowed
from tokenguard.flow import Sleep
from tokenguard.stores.base import SessionRecord
from tokenguard.stores.memory import MemorySessionStore, MemoryUserStore

ALLOWED = "https://app.example.com/reset"


class Setup:
    def __init__(self, **overrides: Any) -> None:
        self.users = MemoryUserStore()
        self.users.create(make_user())
        self.sessions = MemorySessionStore()
        self.mailer = MemoryMailer()
        self.clock = Clock()
        options: dict[str, Any] = {
            "login_stall_ms": 0,
            "public_url": "https://api.example.com",
            "password_reset_url_allow_list": ALLOWED,
            **overrides,
        }
        self.core = TokenGuard(
            secret=SECRET,
            users=self.users,
            sessions=self.sessions,
            passwords=FAST,
            mailer=self.mailer,
            clock=self.clock,
            **options,
        )
        self.client = Client(TokenGuardWSGI(plain_wsgi_app, guard=self.core))

    def request(self, body: Any) -> Any:
        return self.client.post("/auth/password/request", json=body)

    def token(self) -> str:
        match = re.search(r"token=([A-Za-z0-9_.-]+)", self.mailer.outbox[-1].text)
        assert match
        return match.group(1)

    def reset(self, token: str, password: str = "a brand new password") -> Any:
        return self.client.post("/auth/password/reset", json={"token": token, "password": password})


def error(reply: Any) -> tuple[int, str, str]:
    body = reply.json["errors"][0]
    return reply.status_code, body["extensions"]["code"], body["message"]


def test_request_sends_a_link_to_the_public_url() -> None:
    s = Setup()
    reply = s.request({"email": EMAIL.upper()})
    assert (reply.status_code, reply.data) == (204, b"")
    [mail] = s.mailer.outbox
    assert mail.to == EMAIL and mail.subject == "Password Reset Request"
    assert "https://api.example.com/admin/reset-password?token=" in mail.text


def test_request_uses_an_allowed_reset_url_and_keeps_its_query() -> None:
    s = Setup()
    assert (
        s.request({"email": EMAIL, "reset_url": ALLOWED + "?lang=fr&token=old"}).status_code == 204
    )
    assert re.search(r"https://app\.example\.com/reset\?lang=fr&token=ey", s.mailer.outbox[0].text)


@pytest.mark.parametrize("email", [EMAIL, "nobody@example.com"])
@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example.net/reset",
        "https://app.example.com/reset/../x",
        "http://app.example.com/reset",
        "//evil.net",
    ],
)
def test_disallowed_reset_url_is_refused_alike_for_everyone(email: str, url: str) -> None:
    s = Setup()
    reply = s.request({"email": email, "reset_url": url})
    assert error(reply) == (
        400,
        "INVALID_PAYLOAD",
        f'Invalid payload. URL "{url}" can\'t be used to reset passwords.',
    )
    assert s.mailer.outbox == []


@pytest.mark.parametrize("status", ["suspended", "invited", "archived"])
def test_unknown_inactive_and_sso_users_get_the_same_answer(status: str) -> None:
    s = Setup()
    s.users.create(make_user(id="u2", email="inactive@example.com", status=status))
    s.users.create(make_user(id="u3", email="sso@example.com", provider="google"))
    for email in ("nobody@example.com", "inactive@example.com", "sso@example.com", "not an email"):
        reply = s.request({"email": email})
        assert (reply.status_code, reply.data) == (204, b"")
    assert s.mailer.outbox == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({}, '"email" field is required'),
        ({"email": 5}, '"email" field is required'),
        ([], '"email" field is required'),
        ({"email": EMAIL, "reset_url": 5}, '"reset_url" must be a string'),
    ],
)
def test_request_payload_errors(body: Any, reason: str) -> None:
    assert error(Setup().request(body)) == (400, "INVALID_PAYLOAD", f"Invalid payload. {reason}.")


def test_request_is_stalled_whatever_the_outcome() -> None:
    s = Setup(login_stall_ms=500)
    from tokenguard.auth.reset import ResetRequest

    reset = s.core.extras.reset
    for payload in (
        ResetRequest(EMAIL),
        ResetRequest("nobody@example.com"),
        ResetRequest(EMAIL, "https://evil.net"),
    ):
        flow = reset.request(payload, s.core.auth.monotonic())
        steps = []
        try:
            step = next(flow)
            while True:
                steps.append(step)
                result = step.fn(*step.args, **step.kwargs) if not isinstance(step, Sleep) else None
                step = flow.send(result)
        except StopIteration:
            pass
        except Exception as exc:
            assert getattr(exc, "code", None) == "INVALID_PAYLOAD"
        assert isinstance(steps[-1], Sleep) and steps[-1].seconds > 0.4


def test_reset_replaces_the_password_and_revokes_sessions() -> None:
    s = Setup()
    login = s.client.post("/auth/login", json={"email": EMAIL, "password": PASSWORD})
    assert login.status_code == 200
    refresh_token = login.json["data"]["refresh_token"]
    s.request({"email": EMAIL})
    reply = s.reset(s.token())
    assert (reply.status_code, reply.data) == (204, b"")
    assert (
        s.client.post("/auth/login", json={"email": EMAIL, "password": PASSWORD}).status_code == 401
    )
    assert (
        s.client.post(
            "/auth/login", json={"email": EMAIL, "password": "a brand new password"}
        ).status_code
        == 200
    )
    assert s.client.post("/auth/refresh", json={"refresh_token": refresh_token}).status_code == 401


def test_a_token_is_usable_once() -> None:
    s = Setup()
    s.request({"email": EMAIL})
    token = s.token()
    assert s.reset(token).status_code == 204
    assert error(s.reset(token, "another password")) == (
        403,
        "FORBIDDEN",
        "You don't have permission to access this.",
    )


def test_a_token_dies_when_the_password_changes() -> None:
    s = Setup()
    s.request({"email": EMAIL})
    token = s.token()
    s.users.update(USER_ID, password_hash=FAST.hash("changed elsewhere"))
    assert error(s.reset(token))[:2] == (403, "FORBIDDEN")


def test_only_the_newest_of_two_tokens_survives_a_reset() -> None:
    s = Setup()
    s.request({"email": EMAIL})
    first = s.token()
    s.request({"email": EMAIL})
    second = s.token()
    assert s.reset(second).status_code == 204
    assert s.reset(first).status_code == 403


def test_expired_token() -> None:
    s = Setup()
    s.request({"email": EMAIL})
    token = s.token()
    s.clock.advance(3600)
    assert error(s.reset(token)) == (401, "TOKEN_EXPIRED", "Token expired.")


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "x" * 5000])
def test_malformed_tokens(token: str) -> None:
    s = Setup()
    status, code, _ = error(s.reset(token))
    assert (status, code) in ((403, "INVALID_TOKEN"), (400, "INVALID_PAYLOAD"))


def test_access_tokens_and_foreign_signatures_are_not_reset_tokens() -> None:
    s = Setup()
    login = s.client.post("/auth/login", json={"email": EMAIL, "password": PASSWORD})
    assert error(s.reset(login.json["data"]["access_token"]))[:2] == (403, "INVALID_TOKEN")
    # Directus's own token shape, signed with SECRET itself: refused (our key is derived).
    directus = jwt.encode(
        {
            "email": EMAIL,
            "scope": "password-reset",
            "hash": "x",
            "exp": 2_000_000_000,
            "iss": "directus",
        },
        SECRET,
    )
    assert error(s.reset(directus))[:2] == (403, "INVALID_TOKEN")
    # Right key, wrong scope.
    tokens = ResetTokens(SECRET.encode(), 3_600_000)
    wrong = jwt.encode(
        {
            "sub": USER_ID,
            "jti": "j",
            "scope": "other",
            "hash": "h",
            "exp": 2_000_000_000,
            "iss": "tokenguard",
        },
        tokens._key,
    )
    assert error(s.reset(wrong))[:2] == (403, "FORBIDDEN")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({}, '"token" field is required'),
        ({"token": 1, "password": "x"}, '"token" field is required'),
        ({"token": "t"}, '"password" field is required'),
        ({"token": "t", "password": ""}, '"password" field is required'),
    ],
)
def test_reset_payload_errors(body: Any, reason: str) -> None:
    reply = Setup().client.post("/auth/password/reset", json=body)
    assert error(reply) == (400, "INVALID_PAYLOAD", f"Invalid payload. {reason}.")


def test_password_policy() -> None:
    s = Setup(auth_password_policy="/^.{12,}$/")
    s.request({"email": EMAIL})
    token = s.token()
    reply = s.reset(token, "short")
    assert reply.status_code == 400
    assert reply.json == {
        "errors": [
            {
                "message": "Provided password doesn't match password policy",
                "extensions": {"field": "password", "type": "custom", "code": "FAILED_VALIDATION"},
            }
        ]
    }
    assert s.reset(token, "long enough password").status_code == 204  # not burnt by the refusal


def test_no_link_without_public_url_or_reset_url() -> None:
    s = Setup(public_url=None)
    assert s.request({"email": EMAIL}).status_code == 204
    assert s.mailer.outbox == []


def test_other_sessions_of_other_users_survive() -> None:
    s = Setup()
    s.sessions.create(SessionRecord("fam.x", "fam", "someone-else", 10**15))
    s.request({"email": EMAIL})
    s.reset(s.token())
    assert s.sessions.get("fam.x", 0) is not None


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://app.example.com/reset", True),
        ("https://app.example.com/reset?x=1#f", True),
        ("https://APP.example.com:443/reset", True),
        ("https://app.example.com/reset/", False),
        ("https://app.example.com:8443/reset", False),
        ("http://app.example.com/reset", False),
        ("https://app.example.com.evil.net/reset", False),
        ("https://user@evil.net/reset", False),
        ("not a url", False),
        ("", False),
    ],
)
def test_is_url_allowed(url: str, allowed: bool) -> None:
    assert is_url_allowed(url, ("https://app.example.com/reset", "::bad entry::")) is allowed


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_is_url_allowed_only_lets_the_allowed_origin_and_path_through(url: str) -> None:
    if is_url_allowed(url, (ALLOWED,)):
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        assert (parts.scheme.lower(), parts.hostname, parts.path) == (
            "https",
            "app.example.com",
            "/reset",
        )


def test_password_routes_are_rate_limited_per_address() -> None:
    s = Setup(rate_limiter_enabled=True, rate_limiter_points=2, rate_limiter_duration_ms=60_000)
    env = {"REMOTE_ADDR": "192.0.2.7"}
    post = s.client.post
    body = {"email": "nobody@example.com"}
    assert post("/auth/password/request", json=body, environ_base=env).status_code == 204
    assert post("/auth/password/request", json=body, environ_base=env).status_code == 204
    reply = post("/auth/password/request", json=body, environ_base=env)
    assert reply.status_code == 429
    assert reply.json["errors"][0]["extensions"]["code"] == "REQUESTS_EXCEEDED"
    reset = post("/auth/password/reset", json={"token": "t", "password": "p"}, environ_base=env)
    assert reset.status_code == 429
    other = post("/auth/password/request", json=body, environ_base={"REMOTE_ADDR": "192.0.2.8"})
    assert other.status_code == 204


def test_reset_through_asgi_with_sqlite(tmp_path: Any) -> None:
    import anyio
    import httpx

    from tests.helpers.auth import plain_asgi_app
    from tokenguard import TokenGuardMiddleware
    from tokenguard.stores.sqlite import SQLiteSessionStore, SQLiteUserStore

    db = str(tmp_path / "app.db")
    users = SQLiteUserStore(db)
    users.create(make_user())
    mailer = MemoryMailer()
    core = TokenGuard(
        secret=SECRET,
        users=users,
        sessions=SQLiteSessionStore(db),
        passwords=FAST,
        mailer=mailer,
        login_stall_ms=0,
        public_url="https://api.example.com",
        flavour="async",
        db_filename=db,
    )
    app = TokenGuardMiddleware(plain_asgi_app, guard=core)

    async def main() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (
                await client.post("/auth/password/request", json={"email": EMAIL})
            ).status_code == 204
            token = re.search(r"token=([\w.-]+)", mailer.outbox[0].text).group(1)
            first = await client.post(
                "/auth/password/reset", json={"token": token, "password": "new one here"}
            )
            again = await client.post(
                "/auth/password/reset", json={"token": token, "password": "new one here"}
            )
            assert (first.status_code, again.status_code) == (204, 403)

    anyio.run(main)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_FUZZ = Setup()


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(["/auth/password/request", "/auth/password/reset"]),
    st.one_of(
        _json,
        st.fixed_dictionaries({"email": st.text(max_size=30)}, optional={"reset_url": _json}),
        st.fixed_dictionaries({"token": st.text(max_size=60), "password": _json}),
    ),
)
def test_any_body_gets_a_directus_answer(path: str, body: Any) -> None:
    reply = _FUZZ.client.post(path, json=body)
    if reply.status_code == 204:
        assert reply.data == b""
        return
    assert reply.status_code in (400, 401, 403), reply.data
    [err] = reply.json["errors"]
    assert err["extensions"]["code"] in (
        "INVALID_PAYLOAD",
        "INVALID_TOKEN",
        "TOKEN_EXPIRED",
        "FORBIDDEN",
    )
