"""The request pipeline on its own, without a shell: one request view in, one decision out,
in the documented order (throttling, memo, authentication, query stripping, route, CSRF)."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import GeneratorType
from typing import Any

import pytest

from tests.helpers.tokens import SECRET, mint
from tokenguard.app import TokenGuard
from tokenguard.flow import run_sync
from tokenguard.guard.pipeline import Handshake, Pass, Refuse, RequestPipeline, Route
from tokenguard.principal import Principal
from tokenguard.stores.memory import MemorySessionStore, MemoryUserStore


@dataclass
class Head:
    """A request view as a shell fills it."""

    method: str = "GET"
    path: str = "/items"
    authorization: str | None = None
    authorization_count: int = 0
    raw_authorization: bytes | str | None = None
    query: str = ""
    cookie: str | None = None
    peer: str | None = "203.0.113.7"
    scheme: str = "http"
    headers: dict[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    first_header = header


def bearer(token: str, **kw: Any) -> Head:
    value = f"Bearer {token}"
    return Head(authorization=value, authorization_count=1, raw_authorization=value, **kw)


def pipeline(**settings: Any) -> RequestPipeline:
    core = TokenGuard(
        users=MemoryUserStore(), sessions=MemorySessionStore(), secret=SECRET, **settings
    )
    return core.pipeline


def decide(p: RequestPipeline, head: Head) -> Any:
    decision = p.decide(head)
    return run_sync(decision) if type(decision) is GeneratorType else decision


def test_no_token_passes_as_the_public_principal() -> None:
    decision = decide(pipeline(), Head())
    assert type(decision) is Pass
    assert decision.principal.via == "public" and decision.query is None


def test_a_bearer_token_passes_and_is_then_answered_by_the_memo() -> None:
    p = pipeline()
    token = mint()
    head = bearer(token)
    first = decide(p, head)
    assert type(first) is Pass and first.principal.via == "jwt"
    assert p.cached(head.raw_authorization, "", "GET", "/items") is None  # seen once: no memo
    decide(p, head)
    cached = p.cached(head.raw_authorization, "", "GET", "/items")
    assert isinstance(cached, Principal) and cached == first.principal
    # The router's paths always go through decide(), which says Route.
    assert p.cached(head.raw_authorization, "", "POST", "/auth/logout") is None
    routed = decide(p, bearer(token, method="POST", path="/auth/logout"))
    assert type(routed) is Route and routed.principal == first.principal


def test_a_bad_token_is_refused_and_a_bad_cookie_cleared() -> None:
    p = pipeline()
    refused = decide(p, bearer("not-a-token"))
    assert type(refused) is Refuse and refused.error.status == 401 and refused.headers == []
    from_cookie = decide(p, Head(cookie="directus_session_token=not-a-token"))
    assert type(from_cookie) is Refuse
    assert [name for name, _ in from_cookie.headers] == ["set-cookie"]


def test_the_query_token_is_stripped_whatever_the_decision() -> None:
    p = pipeline()
    passed = decide(p, Head(query=f"a=1&access_token={mint()}&b=2"))
    assert type(passed) is Pass and passed.query == "a=1&b=2"
    refused = decide(p, Head(query="access_token=bad"))
    assert type(refused) is Refuse and refused.query == ""
    assert decide(p, Head(query="a=1")).query is None
    assert (
        decide(pipeline(strip_query_token=False), Head(query=f"access_token={mint()}")).query
        is None
    )


def test_strip_query_answers_none_when_nothing_is_taken_out() -> None:
    assert pipeline().strip_query("") is None
    assert pipeline().strip_query("a=1") is None
    assert pipeline().strip_query("a=1&access_token=x") == "a=1"
    # Off: the query is left as it came, token and all (the app reads it).
    assert pipeline(strip_query_token=False).strip_query("a=1&access_token=x") is None


def test_two_authorization_headers_are_400() -> None:
    # The shell counts the headers; the pipeline hands the count on to the extractor.
    head = bearer(mint())
    head.authorization_count = 2
    refused = decide(pipeline(), head)
    assert type(refused) is Refuse
    assert (refused.error.status, refused.error.code) == (400, "INVALID_PAYLOAD")


def test_only_what_the_router_answers_is_routed() -> None:
    p = pipeline()
    token = mint()
    routed = decide(p, Head(method="POST", path="/auth/logout", query=f"access_token={token}&a=1"))
    assert type(routed) is Route and routed.query == "a=1"  # the router sees the URL stripped too
    routed = decide(p, Head(method="POST", path="/auth/logout", query="a=1"))
    assert type(routed) is Route and routed.query is None
    # Under the prefix but no route of the router's: the app's.
    assert type(decide(p, Head(path="/auth/not-a-route"))) is Pass
    # A CORS preflight to a route is the app's (its CORS middleware) as well.
    assert type(decide(p, Head(method="OPTIONS", path="/auth/login"))) is Pass
    assert type(decide(p, Head(method="POST", path="/auth/login"))) is Route


class IOUsers(MemoryUserStore):
    """An (empty) store that says it does I/O: a static token is looked up through a flow."""

    io_bound = True


def test_the_query_token_is_stripped_after_a_store_lookup_too() -> None:
    core = TokenGuard(users=IOUsers(), sessions=MemorySessionStore(), secret=SECRET)
    decision = core.pipeline.decide(Head(query="a=1&access_token=" + "s" * 64 + "&b=2"))
    assert type(decision) is GeneratorType  # the store is asked: the decision is a flow
    refused = run_sync(decision)
    assert type(refused) is Refuse and (refused.error.status, refused.query) == (401, "a=1&b=2")


@pytest.mark.parametrize(
    ("origin", "method", "allowed"),
    [
        ("http://evil.example", "POST", False),
        ("http://app.example", "POST", True),
        ("http://evil.example", "GET", True),
    ],
)
def test_a_cookie_authenticated_unsafe_request_must_come_from_a_trusted_origin(
    origin: str, method: str, allowed: bool
) -> None:
    p = pipeline()
    head = Head(
        method=method,
        cookie=f"directus_session_token={mint()}",
        headers={"origin": origin, "host": "app.example"},
    )
    decision = decide(p, head)
    if allowed:
        assert type(decision) is Pass
    else:
        assert type(decision) is Refuse and decision.error.status == 403
    # The same request with a Bearer header is never checked: the browser did not add it.
    token = mint()
    with_bearer = bearer(token, method=method, cookie=head.cookie, headers=head.headers)
    assert type(decide(p, with_bearer)) is Pass


def test_throttling_comes_first_and_blocks_the_memo() -> None:
    p = pipeline(rate_limiter_enabled=True, rate_limiter_points=1, rate_limiter_duration_ms=60_000)
    head = bearer(mint(), query="access_token=x")
    assert p.cached(head.raw_authorization, "", "GET", "/items") is None  # counted first
    assert type(p.decide(head)) is GeneratorType
    decide(p, bearer(mint()))
    refused = decide(p, head)
    assert type(refused) is Refuse and refused.error.status == 429
    assert refused.headers == [("retry-after", "60")]  # the window's length, in seconds
    assert refused.query == ""  # the access log must not see the token either


def test_an_upgrade_at_the_realtime_path_is_a_handshake() -> None:
    p = pipeline(websockets_enabled=True, websockets_rest_enabled=True)
    assert type(p.upgrade(Head(path="/websocket", query="access_token=x"))) is Handshake
    assert p.upgrade(Head(path="/websocket/", query="access_token=x")).query == ""  # type: ignore[union-attr]
    plain = p.upgrade(Head(path="/other"))
    assert type(plain) is Pass and plain.principal.via == "public"
    cross_site = p.upgrade(
        Head(
            path="/websocket",
            cookie=f"directus_session_token={mint()}",
            headers={"origin": "http://evil.example", "host": "app.example"},
        )
    )
    assert type(cross_site) is Refuse and cross_site.error.status == 403
