"""Both shells, driven in-process with the same request: ASGI (async stores) and WSGI (sync).

``Shell.request`` sends one HTTP request through the whole middleware (guard, CSRF check,
rate limits, ``/auth`` routes) to a tiny app that answers ``200 app <user> <via>``, and
returns status, headers and body exactly as the client would see them.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tests.helpers.auth import FAST, make_user
from tokenguard import TokenGuardMiddleware
from tokenguard.app import TokenGuard
from tokenguard.shells.wsgi import TokenGuardWSGI
from tokenguard.stores.memory import MemorySessionStore, MemoryUserStore

SECRET = "tg-sec-Vb7Nm3Qw9Lk2Jh5Gf8Ds1Az4Xc6Er0TyUiOpP"
INVALID_TOKEN = b'{"errors":[{"message":"Invalid token.","extensions":{"code":"INVALID_TOKEN"}}]}'
INVALID_CREDENTIALS = (
    b'{"errors":[{"message":"Invalid user credentials.","extensions":{"code":"INVALID_CREDENTIALS"}}]}'
)
TOKEN_EXPIRED = b'{"errors":[{"message":"Token expired.","extensions":{"code":"TOKEN_EXPIRED"}}]}'


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def code(self) -> str | None:
        try:
            return str(self.json()["errors"][0]["extensions"]["code"])
        except (ValueError, KeyError, IndexError, TypeError):
            return None


async def _asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    principal = scope.get("user")
    body = f"app {getattr(principal, 'user', None)} {getattr(principal, 'via', None)}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


def _wsgi_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    principal = environ.get("tokenguard.principal")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"app {getattr(principal, 'user', None)} {getattr(principal, 'via', None)}".encode()]


@dataclass
class Shell:
    """One shell over one core. ``kind`` is ``"asgi"`` or ``"wsgi"``."""

    kind: str
    core: TokenGuard
    app: Any = field(init=False)
    loop: asyncio.AbstractEventLoop | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        # One event loop per shell, as a server has: async Redis clients are bound to theirs.
        self.loop = asyncio.new_event_loop() if self.kind == "asgi" else None
        if self.kind == "asgi":
            self.app = TokenGuardMiddleware(_asgi_app, guard=self.core)
        else:
            self.app = TokenGuardWSGI(_wsgi_app, guard=self.core)

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | list[tuple[str, str]] | None = None,
        body: bytes = b"",
        json_body: Any = None,
        client: str = "203.0.113.7",
        scheme: str = "http",
        host: str = "api.example.test",
    ) -> Reply:
        pairs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
        if json_body is not None:
            body = json.dumps(json_body).encode()
            pairs.append(("content-type", "application/json"))
        if not any(k.lower() == "host" for k, _ in pairs):
            pairs.append(("host", host))
        path, _, query = path.partition("?")
        if self.kind == "asgi":
            assert self.loop is not None
            return self.loop.run_until_complete(
                self._asgi(method, path, query, pairs, body, client, scheme)
            )
        return self._wsgi(method, path, query, pairs, body, client, scheme)

    async def _asgi(
        self,
        method: str,
        path: str,
        query: str,
        pairs: list[tuple[str, str]],
        body: bytes,
        client: str,
        scheme: str,
    ) -> Reply:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": scheme,
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode("latin-1"),
            "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in pairs]
            + ([(b"content-length", str(len(body)).encode())] if body else []),
            "client": (client, 50000),
            "server": ("127.0.0.1", 8000),
        }
        sent = False
        messages: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.sleep(3600)
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            messages.append(message)

        await self.app(scope, receive, send)
        start = messages[0]
        out = b"".join(m.get("body", b"") for m in messages[1:])
        heads = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in start["headers"]]
        return Reply(start["status"], heads, out)

    def _wsgi(
        self,
        method: str,
        path: str,
        query: str,
        pairs: list[tuple[str, str]],
        body: bytes,
        client: str,
        scheme: str,
    ) -> Reply:
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": client,
            "wsgi.url_scheme": scheme,
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": io.StringIO(),
        }
        if body:
            environ["CONTENT_LENGTH"] = str(len(body))
        for key, value in pairs:
            name = key.upper().replace("-", "_")
            if name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                environ[name] = value
            else:
                environ[f"HTTP_{name}"] = value
        captured: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured.append((status, headers))
            return lambda data: None

        out = b"".join(self.app(environ, start_response))
        status, heads = captured[0]
        return Reply(int(status.split()[0]), list(heads), out)


def make_core(kind: str, *, users: Any = None, sessions: Any = None, **settings: Any) -> TokenGuard:
    """A core with memory stores (unless given), one active user (tests.helpers.auth), cheap
    argon2 and no login stall unless the test asks for one."""
    if users is None:
        users = MemoryUserStore()
        users.create(make_user())
    options: dict[str, Any] = {"secret": SECRET, "login_stall_ms": 0, **settings}
    return TokenGuard(
        users=users,
        # With a Redis URL the core builds its Redis session store, as in production.
        sessions=sessions if sessions is not None or "redis_url" in settings else MemorySessionStore(),
        flavour="async" if kind == "asgi" else "sync",
        passwords=FAST,
        **options,
    )


def make_shell(kind: str, **settings: Any) -> Shell:
    return Shell(kind, make_core(kind, **settings))
