"""Whatever a client sends, the shells answer: never a 500, never a traceback, never an
authenticated principal without a valid token."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers.tokens import SECRET
from tokenguard import TokenGuardMiddleware, TokenGuardWSGI
from tokenguard.principal import Principal

header_bytes = st.binary(max_size=300).filter(lambda b: b"\r" not in b and b"\n" not in b)
header_names = st.sampled_from([b"authorization", b"cookie", b"x-other", b"Authorization"])


def check_response(status: int, body: bytes, principal: Any) -> None:
    assert status != 500
    if status == 200:
        assert isinstance(principal, Principal)
        assert not principal.is_authenticated and principal.via == "public"
    else:
        assert status in (400, 401, 403)
        parsed = json.loads(body)
        assert set(parsed) == {"errors"} and parsed["errors"][0]["extensions"]["code"]
        assert b"Traceback" not in body


async def _never_called(scope, receive, send):  # type: ignore[no-untyped-def]
    raise AssertionError


MIDDLEWARE: Any = None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(header_names, header_bytes), max_size=4), st.binary(max_size=300))
def test_asgi_any_headers_and_query(headers: list[tuple[bytes, bytes]], query: bytes) -> None:
    global MIDDLEWARE
    if MIDDLEWARE is None:
        MIDDLEWARE = TokenGuardMiddleware(_never_called, secret=SECRET)
    # The shell reads lower-case names, as ASGI servers deliver them.
    headers = [(name.lower(), value) for name, value in headers]

    async def run() -> tuple[int, bytes, Any]:
        async def app(scope, receive, send):  # type: ignore[no-untyped-def]
            principal = scope["state"]["user"]
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": json.dumps({"via": principal.via}).encode()})
            run.principal = principal  # type: ignore[attr-defined]

        MIDDLEWARE.app = app
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "GET", "path": "/", "raw_path": b"/", "query_string": query, "headers": headers}
        await MIDDLEWARE(scope, receive, send)
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        return sent[0]["status"], body, getattr(run, "principal", None)

    status, body, principal = asyncio.run(run())
    check_response(status, body, principal)


WSGI_APP_SEEN: dict[str, Any] = {}


def _wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    WSGI_APP_SEEN["principal"] = environ["tokenguard.principal"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


WSGI = TokenGuardWSGI(_wsgi_app, secret=SECRET)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(st.none(), header_bytes.map(lambda b: b.decode("latin-1"))),
    st.one_of(st.none(), header_bytes.map(lambda b: b.decode("latin-1"))),
    st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
)
def test_wsgi_any_headers_and_query(authorization: str | None, cookie: str | None, query: str) -> None:
    WSGI_APP_SEEN.clear()
    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "QUERY_STRING": query, "wsgi.input": None}
    if authorization is not None:
        environ["HTTP_AUTHORIZATION"] = authorization
    if cookie is not None:
        environ["HTTP_COOKIE"] = cookie
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        captured["status"] = int(status.split()[0])

    body = b"".join(WSGI(environ, start_response))
    check_response(captured["status"], body, WSGI_APP_SEEN.get("principal"))
