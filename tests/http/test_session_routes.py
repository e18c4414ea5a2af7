"""A user's own sessions over HTTP: ``GET /auth/sessions``, ``DELETE /auth/sessions`` (every
other session) and ``DELETE /auth/sessions/{id}``, through both shells, exact answers."""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers.auth import EMAIL, PASSWORD, SECRET, USER_ID, error_body, make_user
from tests.http.test_auth_routes import Harness
from tokenguard.logs.audit import AuditEvent
from tokenguard.stores.audit import MemoryAuditStore
from tokenguard.stores.base import session_id

JSON = "application/json; charset=utf-8"
NO_CACHE = [("cache-control", "no-cache"), ("vary", "Origin, Cache-Control")]
FORBIDDEN = error_body("FORBIDDEN", "You don't have permission to access this.")
INVALID_CREDENTIALS = error_body("INVALID_CREDENTIALS", "Invalid user credentials.")
OTHER_ID = "1c8e5a7b-2d4f-4e6a-9b0c-3f5d7e9a1b2c"


@pytest.fixture(params=["asgi", "wsgi"])
def h(request: pytest.FixtureRequest) -> Harness:
    harness = Harness(str(request.param))
    harness.users.create(make_user(id=OTHER_ID, email="grace@example.com"))
    return harness


def login(h: Harness, ua: str = "agent", email: str = EMAIL, **extra: Any) -> dict[str, Any]:
    body = {"email": email, "password": PASSWORD, **extra}
    reply = h.request("POST", "/auth/login", json_body=body, headers={"user-agent": ua})
    assert reply.status == 200, reply.body
    data: dict[str, Any] = reply.json()["data"]
    return data


def bearer(data: dict[str, Any]) -> dict[str, str]:
    return {"authorization": f"Bearer {data['access_token']}"}


def test_the_list_names_every_live_session_and_marks_the_current_one(h: Harness) -> None:
    first = login(h, "first-agent")
    h.clock.advance(60)
    second = login(h, "second-agent", mode="json")
    h.clock.advance(60)
    # A refresh of the first session: last used moves on, created stays at the login.
    refreshed = h.request(
        "POST", "/auth/refresh", json_body={"refresh_token": first["refresh_token"]},
        headers={"user-agent": "first-agent/2"},
    ).json()["data"]
    login(h, "not-ada", email="grace@example.com")  # another user's: never listed
    reply = h.request("GET", "/auth/sessions", headers=bearer(second))
    assert reply.status == 200
    assert [(n, v) for n, v in reply.headers if n != "content-length"] == [
        ("content-type", JSON), *NO_CACHE
    ]
    # httpx's ASGI transport names its peer; Werkzeug's test client names none.
    ip = "127.0.0.1" if h.kind == "asgi" else None
    family1 = first["refresh_token"][:22]
    family2 = second["refresh_token"][:22]
    assert reply.json() == {
        "data": [
            {
                "id": session_id(family1),
                "created_on": "2027-01-15T08:00:00.000Z",
                "last_used_on": "2027-01-15T08:02:00.000Z",
                "expires": "2027-01-22T08:02:00.000Z",
                "ip": ip,
                "user_agent": "first-agent/2",
                "origin": None,
                "current": False,
            },
            {
                "id": session_id(family2),
                "created_on": "2027-01-15T08:01:00.000Z",
                "last_used_on": "2027-01-15T08:01:00.000Z",
                "expires": "2027-01-22T08:01:00.000Z",
                "ip": ip,
                "user_agent": "second-agent",
                "origin": None,
                "current": True,
            },
        ]
    }
    # The ids are not the families (prefixes of the refresh tokens).
    assert family1 not in reply.body.decode() and family2 not in reply.body.decode()
    # The refreshed session's own token marks it current.
    again = h.request("GET", "/auth/sessions", headers=bearer(refreshed)).json()["data"]
    assert [s["current"] for s in again] == [True, False]


def test_a_session_cookie_and_a_static_token_list_too(h: Harness) -> None:
    h.users.update(USER_ID, token_hash=hashlib.sha256(b"static-tok").hexdigest())
    cookie = h.request(
        "POST", "/auth/login",
        json_body={"email": EMAIL, "password": PASSWORD, "mode": "session"},
    ).cookie("directus_session_token")
    by_cookie = h.request("GET", "/auth/sessions", cookies={"directus_session_token": cookie})
    assert by_cookie.status == 200
    assert [s["current"] for s in by_cookie.json()["data"]] == [True]
    by_static = h.request(
        "GET", "/auth/sessions", headers={"authorization": "Bearer static-tok"}
    )
    assert by_static.status == 200
    assert [s["current"] for s in by_static.json()["data"]] == [False]
    head = h.request("HEAD", "/auth/sessions", cookies={"directus_session_token": cookie})
    assert (head.status, head.body) == (200, b"")


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/auth/sessions"), ("DELETE", "/auth/sessions"),
     ("DELETE", "/auth/sessions/abc"), ("GET", "/auth/sessions/")],
)
def test_without_a_user_it_is_401(h: Harness, method: str, path: str) -> None:
    reply = h.request(method, path)
    assert (reply.status, reply.body) == (401, INVALID_CREDENTIALS)


def test_a_bad_token_is_refused_before_the_route(h: Harness) -> None:
    for method, path in (("GET", "/auth/sessions"), ("DELETE", "/auth/sessions/x")):
        reply = h.request(method, path, headers={"authorization": "Bearer nope.nope.nope"})
        assert (reply.status, reply.body) == (401, INVALID_CREDENTIALS)


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/auth/sessions"), ("PUT", "/auth/sessions"), ("GET", "/auth/sessions/abc"),
     ("POST", "/auth/sessions/abc")],
)
def test_other_methods_are_route_not_found(h: Harness, method: str, path: str) -> None:
    data = login(h)
    reply = h.request(method, path, headers=bearer(data))
    assert reply.status == 404
    assert reply.body == error_body("ROUTE_NOT_FOUND", f"Route {path} doesn't exist.", path=path)


def test_deeper_paths_are_the_apps(h: Harness) -> None:
    reply = h.request("DELETE", "/auth/sessions/a/b")
    assert (reply.status, reply.body) == (200, b"app /auth/sessions/a/b user=None")


def test_ending_one_session_refuses_its_tokens_at_once(h: Harness) -> None:
    mine = login(h, "mine")
    other = login(h, "other")
    target = session_id(other["refresh_token"][:22])
    reply = h.request("DELETE", f"/auth/sessions/{target}", headers=bearer(mine))
    assert (reply.status, reply.body) == (204, b"")
    assert reply.headers[:2] == NO_CACHE or ("cache-control", "no-cache") in reply.headers
    # Its access token: refused at once, in this process (the revocation registry).
    gone = h.request("GET", "/app", headers=bearer(other))
    assert gone.status == 401
    # Its refresh token: gone from the store.
    refresh = h.request("POST", "/auth/refresh", json_body={"refresh_token": other["refresh_token"]})
    assert (refresh.status, refresh.body) == (401, INVALID_CREDENTIALS)
    # Mine still works, and ending it again is the unknown session's answer.
    assert h.request("GET", "/app", headers=bearer(mine)).status == 200
    again = h.request("DELETE", f"/auth/sessions/{target}/", headers=bearer(mine))
    assert (again.status, again.body) == (403, FORBIDDEN)
    assert [s["id"] for s in h.request("GET", "/auth/sessions", headers=bearer(mine)).json()[
        "data"]] == [session_id(mine["refresh_token"][:22])]


def test_another_users_session_is_answered_as_unknown(h: Harness) -> None:
    mine = login(h)
    theirs = login(h, email="grace@example.com")
    for sid in (session_id(theirs["refresh_token"][:22]), theirs["refresh_token"][:22],
                "AAAAAAAAAAAAAAAAAAAAAA"):
        reply = h.request("DELETE", f"/auth/sessions/{sid}", headers=bearer(mine))
        assert (reply.status, reply.body) == (403, FORBIDDEN)
    # Theirs lives on.
    assert h.request("GET", "/app", headers=bearer(theirs)).status == 200
    refresh = h.request("POST", "/auth/refresh", json_body={"refresh_token": theirs["refresh_token"]})
    assert refresh.status == 200


def test_ending_every_other_session_keeps_the_current_one(h: Harness) -> None:
    mine = login(h, "mine")
    others = [login(h, f"other-{i}") for i in range(3)]
    theirs = login(h, email="grace@example.com")
    reply = h.request("DELETE", "/auth/sessions", headers=bearer(mine))
    assert (reply.status, reply.body) == (204, b"")
    for other in others:
        assert h.request("GET", "/app", headers=bearer(other)).status == 401
        refresh = h.request(
            "POST", "/auth/refresh", json_body={"refresh_token": other["refresh_token"]}
        )
        assert refresh.status == 401
    assert h.request("GET", "/app", headers=bearer(mine)).status == 200
    assert h.request("GET", "/app", headers=bearer(theirs)).status == 200
    listed = h.request("GET", "/auth/sessions", headers=bearer(mine)).json()["data"]
    assert [(s["user_agent"], s["current"]) for s in listed] == [("mine", True)]
    fresh = h.request("POST", "/auth/refresh", json_body={"refresh_token": mine["refresh_token"]})
    assert fresh.status == 200


def test_ending_the_current_session_is_a_logout(h: Harness) -> None:
    mine = login(h)
    sid = session_id(mine["refresh_token"][:22])
    assert h.request("DELETE", f"/auth/sessions/{sid}", headers=bearer(mine)).status == 204
    assert h.request("GET", "/auth/sessions", headers=bearer(mine)).status == 401


def test_a_cookie_authenticated_delete_needs_a_trusted_origin(h: Harness) -> None:
    cookie = h.request(
        "POST", "/auth/login",
        json_body={"email": EMAIL, "password": PASSWORD, "mode": "session"},
    ).cookie("directus_session_token")
    other = login(h)
    target = session_id(other["refresh_token"][:22])
    cross = h.request(
        "DELETE", f"/auth/sessions/{target}",
        cookies={"directus_session_token": cookie},
        headers={"origin": "https://evil.example", "host": "testserver"},
    )
    assert cross.status == 403
    assert json.loads(cross.body)["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert h.request("GET", "/app", headers=bearer(other)).status == 200
    same = h.request(
        "DELETE", f"/auth/sessions/{target}",
        cookies={"directus_session_token": cookie},
        headers={"origin": "http://testserver", "host": "testserver"},
    )
    assert same.status == 204
    assert h.request("GET", "/app", headers=bearer(other)).status == 401


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.text(min_size=1, max_size=80))
def test_any_session_id_a_client_sends_is_answered_never_500(h: Harness, raw: str) -> None:
    mine = login(h)
    path = "/auth/sessions/" + quote(raw.encode("utf-8", "surrogatepass"), safe="")
    reply = h.request("DELETE", path, headers=bearer(mine))
    # 403 (not one of mine), or the app's (a path the router does not take, as `..`), or
    # a 400 from the shell for what no URL may hold; never a server error.
    assert reply.status in (200, 400, 403, 404), (raw, reply.status, reply.body)
    if reply.status == 403:
        assert reply.body == FORBIDDEN
    assert h.request("GET", "/app", headers=bearer(mine)).status == 200


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_ending_sessions_is_audited_with_who_and_from_where(kind: str) -> None:
    trail = MemoryAuditStore()
    h = Harness(kind, audit=trail)
    h.users.create(make_user(id=OTHER_ID, email="grace@example.com"))
    mine = login(h, "mine")
    other = login(h, "other")
    login(h, "other-2")
    theirs = login(h, email="grace@example.com")
    target = session_id(other["refresh_token"][:22])
    client = {"user-agent": "ender/1.0", "origin": "https://app.example.com", **bearer(mine)}
    assert h.request("DELETE", f"/auth/sessions/{target}", headers=client).status == 204
    # Ended already, another user's, unknown: each refused, and audited as refused.
    for sid in (target, session_id(theirs["refresh_token"][:22]), "nothing-of-the-sort"):
        assert h.request("DELETE", f"/auth/sessions/{sid}", headers=client).status == 403
    assert h.request("DELETE", "/auth/sessions", headers=client).status == 204
    # A static token names no session of its own: every session ends, audited the same.
    h.users.update(USER_ID, token_hash=hashlib.sha256(b"static-token-of-ada").hexdigest())
    static = {"user-agent": "script/2", "authorization": "Bearer static-token-of-ada"}
    assert h.request("DELETE", "/auth/sessions", headers=static).status == 204
    ip = "127.0.0.1" if kind == "asgi" else None

    def event(name: str, outcome: str, agent: str = "ender/1.0", **fields: Any) -> AuditEvent:
        origin = "https://app.example.com" if agent == "ender/1.0" else None
        return AuditEvent(
            event=name, outcome=outcome, timestamp="2027-01-15T08:00:00.000Z",
            user_id=USER_ID, ip=ip, user_agent=agent, origin=origin, provider=None, **fields,
        )

    events = [e for e in reversed(trail.recent(100)) if e.event != "login"]
    assert events == [
        event("session_end", "success"),
        event("session_end", "failure", reason="FORBIDDEN"),
        event("session_end", "failure", reason="FORBIDDEN"),
        event("session_end", "failure", reason="FORBIDDEN"),
        event("session_end_others", "success"),
        event("session_end_others", "success", agent="script/2"),
    ]
    assert h.request("GET", "/app", headers=bearer(mine)).status == 401
    assert h.request("GET", "/app", headers=bearer(theirs)).status == 200
    # Neither the session's id nor its family, let alone a token, in any record.
    secrets = [target, other["refresh_token"][:22], other["refresh_token"], mine["access_token"]]
    for record in trail.recent(100):
        assert not any(secret in record.to_json() for secret in secrets)


def test_the_secret_is_unused_by_the_id() -> None:
    # A pure function of the family: the CLI and every process agree without SECRET.
    assert session_id("A" * 22) == session_id("A" * 22) != session_id("B" * 22)
    assert len(session_id("A" * 22)) == 32 and SECRET not in session_id(SECRET)
    assert set(session_id("A" * 22)) <= set("0123456789abcdef")
