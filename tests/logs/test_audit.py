"""The audit trail: every event kind produced by a real request through the ASGI app, with
its exact fields, in the store and on the "tokenguard.audit" logger; no token, password or
one-time code ever in a record."""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers.auth import (
    EMAIL,
    FAST,
    PASSWORD,
    SECRET,
    USER_ID,
    Clock,
    make_user,
    plain_asgi_app,
)
from tokenguard import TokenGuard, TokenGuardMiddleware
from tokenguard.auth.mail import MemoryMailer
from tokenguard.auth.totp import totp_at
from tokenguard.logs.audit import EVENTS, Audit, AuditEvent
from tokenguard.stores.audit import MemoryAuditStore
from tokenguard.stores.memory import MemorySessionStore, MemoryUserStore

IP = "203.0.113.7"
AGENT = "audit-test/1.0"
ORIGIN = "https://app.example.com"
STAMP = "2027-01-15T08:00:00.000Z"  # tests.helpers.auth.NOW


def expected(event: str, outcome: str, **fields: Any) -> AuditEvent:
    base: dict[str, Any] = {
        "timestamp": STAMP,
        "user_id": None,
        "ip": IP,
        "user_agent": AGENT,
        "origin": ORIGIN,
        "provider": "default",
        "reason": None,
    }
    base.update(fields)
    return AuditEvent(event=event, outcome=outcome, **base)


class Env:
    """A TokenGuard behind the ASGI middleware, driven by httpx on one event loop."""

    def __init__(self, portal: BlockingPortal, password: str = PASSWORD, **overrides: Any) -> None:
        self.portal = portal
        self.users = MemoryUserStore()
        self.users.create(make_user(password_hash=FAST.hash(password)))
        self.password = password
        self.store = MemoryAuditStore()
        self.clock = Clock()
        self.mailer = MemoryMailer()
        options: dict[str, Any] = {
            "login_stall_ms": 0,
            "public_url": "https://api.example.com",
            "csrf_trusted_origins": (ORIGIN,),
            **overrides,
        }
        self.core = TokenGuard(
            secret=SECRET,
            users=self.users,
            sessions=MemorySessionStore(),
            passwords=FAST,
            mailer=self.mailer,
            clock=self.clock,
            flavour="async",
            audit=self.store,
            **options,
        )
        app = TokenGuardMiddleware(plain_asgi_app, guard=self.core)
        transport = httpx.ASGITransport(app=app, client=(IP, 4242))
        self.client = httpx.AsyncClient(
            transport=transport,
            base_url="http://test",
            headers={"user-agent": AGENT, "origin": ORIGIN},
        )

    def post(self, path: str, body: Any, **kwargs: Any) -> httpx.Response:
        return self.portal.call(functools.partial(self.client.post, path, json=body, **kwargs))

    def login(self, password: str | None = None, **extra: Any) -> httpx.Response:
        body = {"email": EMAIL, "password": self.password if password is None else password}
        return self.post("/auth/login", {**body, **extra})

    def events(self) -> list[AuditEvent]:
        """Every stored event, oldest first."""
        return list(reversed(self.store.recent(10_000)))

    def bearer(self) -> dict[str, str]:
        reply = self.login()
        assert reply.status_code == 200
        return {"authorization": "Bearer " + reply.json()["data"]["access_token"]}


@contextmanager
def env(**overrides: Any) -> Iterator[Env]:
    with start_blocking_portal() as portal:
        e = Env(portal, **overrides)
        try:
            yield e
        finally:
            portal.call(e.client.aclose)


# --- each event kind -------------------------------------------------------------------------


def test_login_success_and_failures() -> None:
    with env() as e:
        assert e.login().status_code == 200
        assert e.login("wrong password").status_code == 401
        assert e.post("/auth/login", {"email": "nobody@example.com", "password": "x"}).status_code == 401
        assert e.events() == [
            expected("login", "success", user_id=USER_ID),
            expected("login", "failure", user_id=USER_ID, reason="INVALID_CREDENTIALS"),
            # An unknown account: no user id, and never the e-mail that was typed.
            expected("login", "failure", reason="INVALID_CREDENTIALS"),
        ]


def test_refresh_and_refresh_token_reuse() -> None:
    with env() as e:
        first = e.login().json()["data"]["refresh_token"]
        reply = e.post("/auth/refresh", {"refresh_token": first, "mode": "json"})
        assert reply.status_code == 200
        again = e.post("/auth/refresh", {"refresh_token": first, "mode": "json"})
        assert again.status_code == 401
        unknown = e.post("/auth/refresh", {"refresh_token": "x" * 64, "mode": "json"})
        assert unknown.status_code == 401
        assert e.events()[1:] == [
            expected("refresh", "success", user_id=USER_ID, provider=None),
            # A rotated-away token: the store revoked its family (the user is gone with it).
            expected("refresh_reuse", "blocked", provider=None),
            expected("refresh", "failure", provider=None, reason="INVALID_CREDENTIALS"),
            expected("refresh", "failure", provider=None, reason="INVALID_CREDENTIALS"),
        ]


def test_logout() -> None:
    with env() as e:
        token = e.login().json()["data"]["refresh_token"]
        assert e.post("/auth/logout", {"refresh_token": token, "mode": "json"}).status_code == 204
        assert e.post("/auth/logout", {"refresh_token": token, "mode": "json"}).status_code == 204
        assert e.events()[1:] == [
            expected("logout", "success", user_id=USER_ID, provider=None),
            expected("logout", "failure", provider=None, reason="INVALID_CREDENTIALS"),
        ]


def test_password_reset_request_and_completion() -> None:
    with env() as e:
        assert e.post("/auth/password/request", {"email": EMAIL}).status_code == 204
        assert e.post("/auth/password/request", {"email": "nobody@example.com"}).status_code == 204
        token = re.search(r"token=([\w.-]+)", e.mailer.outbox[0].text).group(1)  # type: ignore[union-attr]
        body = {"token": token, "password": "a brand new password"}
        assert e.post("/auth/password/reset", body).status_code == 204
        assert e.post("/auth/password/reset", body).status_code == 403
        assert e.events() == [
            expected("password_reset_request", "success", user_id=USER_ID),
            expected("password_reset_request", "failure", reason="NOT_ELIGIBLE"),
            # What happened to the user (its tokens voided), then the request that did it.
            expected("user_change", "success", user_id=USER_ID, reason="password_hash"),
            expected("password_reset", "success", user_id=USER_ID),
            # The password changed, so the token no longer matches: refused before any claim.
            expected("password_reset", "failure", reason="FORBIDDEN"),
        ]


def test_tfa_enable_and_disable() -> None:
    with env() as e:
        headers = e.bearer()
        reply = e.post("/users/me/tfa/generate", {"password": PASSWORD}, headers=headers)
        secret = reply.json()["data"]["secret"]
        bad = e.post("/users/me/tfa/enable", {"secret": secret, "otp": "000000"}, headers=headers)
        assert bad.status_code == 400
        code = totp_at(secret, e.clock())
        ok = e.post("/users/me/tfa/enable", {"secret": secret, "otp": code}, headers=headers)
        assert ok.status_code == 204
        e.clock.advance(30)
        off = e.post("/users/me/tfa/disable", {"otp": totp_at(secret, e.clock())}, headers=headers)
        assert off.status_code == 204
        assert e.events()[1:] == [
            expected("tfa_enable", "failure", user_id=USER_ID, reason="INVALID_PAYLOAD"),
            expected("tfa_enable", "success", user_id=USER_ID),
            expected("user_change", "success", user_id=USER_ID, reason="tfa_secret", timestamp="2027-01-15T08:00:30.000Z"),
            expected("tfa_disable", "success", user_id=USER_ID, timestamp="2027-01-15T08:00:30.000Z"),
        ]


def test_lockout() -> None:
    with env(auth_login_attempts=2, login_account_points=0) as e:
        assert [e.login("wrong").status_code for _ in range(3)] == [401, 401, 401]
        assert e.events() == [
            expected("login", "failure", user_id=USER_ID, reason="INVALID_CREDENTIALS"),
            expected("login", "failure", user_id=USER_ID, reason="INVALID_CREDENTIALS"),
            # The suspension, with the client of the attempt that caused it; then the lockout.
            expected("user_change", "success", user_id=USER_ID, reason="status"),
            expected("lockout", "blocked", user_id=USER_ID),
            expected("login", "failure", user_id=USER_ID, reason="INVALID_CREDENTIALS"),
        ]
        assert e.users.get_by_id(USER_ID).status == "suspended"  # type: ignore[union-attr]


def test_throttle_per_account_and_per_address() -> None:
    with env(auth_login_attempts=0, login_account_points=1) as e:
        assert [e.login("wrong").status_code for _ in range(2)] == [401, 429]
        assert e.events()[1] == expected("throttle", "blocked", reason="REQUESTS_EXCEEDED")
    with env(rate_limiter_enabled=True, rate_limiter_points=1, rate_limiter_duration_ms=60_000) as e:
        assert e.login().status_code == 200
        assert e.post("/auth/refresh", {"refresh_token": "x" * 64}).status_code == 429
        assert e.events() == [
            expected("login", "success", user_id=USER_ID),
            expected("throttle", "blocked", provider=None, reason="REQUESTS_EXCEEDED"),
        ]


def test_every_event_kind_is_covered() -> None:
    assert set(EVENTS) == {
        "login", "refresh", "refresh_reuse", "logout", "session_end", "session_end_others",
        "password_reset_request", "password_reset", "tfa_enable", "tfa_disable", "lockout",
        "throttle", "user_change",
    }


# --- the log record --------------------------------------------------------------------------


def test_log_record_is_one_json_line_with_the_fields_as_extra(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="tokenguard.audit"), env() as e:
        e.login()
        e.login("wrong")
    records = [r for r in caplog.records if r.name == "tokenguard.audit"]
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.INFO, expected("login", "success", user_id=USER_ID).to_json()),
        (logging.WARNING, expected("login", "failure", user_id=USER_ID, reason="INVALID_CREDENTIALS").to_json()),
    ]
    assert json.loads(records[0].getMessage()) == {
        "event": "login", "outcome": "success", "timestamp": STAMP, "user_id": USER_ID, "ip": IP,
        "user_agent": AGENT, "origin": ORIGIN, "provider": "default", "reason": None,
    }
    for record in records:
        fields = {k: getattr(record, k) for k in AuditEvent.__dataclass_fields__}
        assert AuditEvent(**fields).to_json() == record.getMessage()


def test_client_chosen_fields_are_bounded_redacted_and_one_line(caplog: pytest.LogCaptureFixture) -> None:
    audit = Audit(MemoryAuditStore(), clock=lambda: 0.0)

    class Client:
        ip = "198.51.100.1"
        user_agent = "evil\n{\"event\":\"forged\"} access_token=SECRETVALUE " + "a" * 5000
        origin = "https://x.example/?code=AUTHCODE"

    with caplog.at_level(logging.INFO, logger="tokenguard.audit"):
        flow = audit.emit("login", "success", Client(), user_id="u1")
        with pytest.raises(StopIteration):
            step = next(flow)
            step.fn(*step.args)
            flow.send(None)
    [event] = audit.store.recent()  # type: ignore[union-attr]
    assert event.user_agent is not None and len(event.user_agent) <= 1024
    assert "SECRETVALUE" not in event.to_json() and "AUTHCODE" not in event.to_json()
    assert event.timestamp == "1970-01-01T00:00:00.000Z"
    [record] = [r for r in caplog.records if r.name == "tokenguard.audit"]
    assert "\n" not in record.getMessage()
    assert json.loads(record.getMessage())["event"] == "login"


def test_a_failing_audit_store_does_not_fail_the_login(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def append(self, event: AuditEvent) -> None:
            raise ConnectionError("down")

        def recent(self, limit: int = 50, **kw: Any) -> list[AuditEvent]:
            return []

    with start_blocking_portal() as portal:
        e = Env(portal)
        e.core.audit.store = Broken()
        with caplog.at_level(logging.INFO, logger="tokenguard.audit"):
            assert e.login().status_code == 200
        portal.call(e.client.aclose)
    assert "audit store failed (ConnectionError): event login not stored" in caplog.text


# --- never a secret --------------------------------------------------------------------------

passwords = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=8,
    max_size=40,
).filter(lambda p: p.strip() == p and len(p.strip()) >= 8)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    password=passwords,
    wrong=passwords,
    typed=st.from_regex(r"[a-z0-9]{10,20}@[a-z]{3,8}\.com", fullmatch=True),
)
def test_no_token_or_password_in_any_audit_record(
    password: str, wrong: str, typed: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.clear()
    secrets: list[str] = [password, wrong, typed]
    with caplog.at_level(logging.INFO, logger="tokenguard.audit"), env(password=password) as e:
        data = e.login().json()["data"]
        secrets += [data["access_token"], data["refresh_token"]]
        e.login(wrong)
        # A password typed into the e-mail field (one that looks like an address), twice.
        assert e.post("/auth/login", {"email": typed, "password": password}).status_code == 401
        e.post("/auth/password/request", {"email": typed})
        refreshed = e.post("/auth/refresh", {"refresh_token": data["refresh_token"], "mode": "json"})
        secrets += list(refreshed.json()["data"].values())[1:]
        e.post("/auth/refresh", {"refresh_token": data["refresh_token"], "mode": "json"})  # reuse
        # The reuse revoked that session, its access tokens included: a new login goes on.
        again = e.login().json()["data"]
        secrets += [again["access_token"], again["refresh_token"]]
        headers = {"authorization": "Bearer " + again["access_token"]}
        generated = e.post("/users/me/tfa/generate", {"password": password}, headers=headers)
        secret = generated.json()["data"]["secret"]
        code = totp_at(secret, e.clock())
        secrets += [secret, code]
        e.post("/users/me/tfa/enable", {"secret": secret, "otp": code}, headers=headers)
        e.post("/auth/password/request", {"email": EMAIL})
        token = re.search(r"token=([\w.-]+)", e.mailer.outbox[0].text).group(1)  # type: ignore[union-attr]
        secrets.append(token)
        e.post("/auth/password/reset", {"token": token, "password": wrong})
        e.post("/auth/logout", {"refresh_token": refreshed.json()["data"]["refresh_token"], "mode": "json"})
        stored = [event.to_json() for event in e.store.recent(10_000)]
    logged = [r.getMessage() for r in caplog.records if r.name == "tokenguard.audit"]
    assert len(stored) >= 9 and len(logged) == len(stored)
    for line in stored + logged:
        for s in secrets:
            assert s not in line and json.dumps(s)[1:-1] not in line
