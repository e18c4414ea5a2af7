"""The apps the benchmarks compare: a bare app, tokenguard, and the peers, all built alike.

Every ASGI variant wraps the same bare ASGI app and every WSGI variant the same bare Flask
route, so that subtracting the bare app's time leaves exactly what authentication adds.
The ``make_*`` functions are also uvicorn/gunicorn factories (``--factory``).
"""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Any

import jwt

from tokenguard import Settings, TokenGuard, TokenGuardMiddleware, User
from tokenguard.config import token_policy
from tokenguard.guard.revocation import Entry
from tokenguard.jose.tokens import hash_token, issue_access_token
from tokenguard.stores.memory import MemorySessionStore, MemoryUserStore

# A fixed benchmark-only secret, so that separately started servers accept the same tokens.
SECRET = "bench-only-4kQ9vX2pLm7RtY8wZ3nB6cD1fG5hJ0sA-uE_iO9pK2lM4nQ7rS8tU1vW3xY"
ISSUER = "directus"
STATIC_TOKEN = "bench-static-token-Vb3Nq8Zr2Kx7Lm4Pw9Ts6Yd1Hf5Gc0J"
ROLE = "4b2c6f4e-61c6-4cb8-9f0d-8e3d2f5a7b10"
BODY = b"ok"

SETTINGS = Settings(secret=SECRET, issuer=ISSUER)


def directus_token(user_id: str | None = None, *, ttl_s: int = 3600, sid: str | None = None) -> str:
    """A Directus-shaped HS256 access token (id, role, app/admin access, iat, exp, iss; with
    ``sid``, the session a login's token names)."""
    return issue_access_token(
        token_policy(SETTINGS),
        user_id=user_id or str(uuid.uuid4()),
        role=ROLE,
        app_access=True,
        admin_access=False,
        ttl_ms=ttl_s * 1000,
        now=time.time(),
        sid=sid,
    )


def invalid_token() -> str:
    """One of ours by its claims, but with a wrong signature: a 403 INVALID_TOKEN."""
    head, payload, sig = directus_token().split(".")
    flipped = ("A" if sig[0] != "A" else "B") + sig[1:]
    return f"{head}.{payload}.{flipped}"


# --- ASGI -------------------------------------------------------------------------------

_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")],
}
_BODY = {"type": "http.response.body", "body": BODY}


async def bare_asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The smallest useful ASGI app: 200 "ok" for every HTTP request."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send(_START)
    await send(_BODY)


def make_core(flavour: str) -> TokenGuard:
    """A tokenguard core with in-memory stores holding one user with a static token."""
    users = MemoryUserStore()
    users.create(
        User(
            id=str(uuid.uuid4()),
            email="static@example.com",
            role=ROLE,
            token_hash=hash_token(STATIC_TOKEN),
        )
    )
    return TokenGuard(SETTINGS, users=users, sessions=MemorySessionStore(), flavour=flavour)  # type: ignore[arg-type]


def make_asgi_tokenguard() -> Any:
    return TokenGuardMiddleware(bare_asgi, make_core("async"))


def make_asgi_tokenguard_revocations() -> Any:
    """tokenguard whose revocation list holds 10,000 revoked sessions and 1,000 revoked users,
    none of them the request's: a deployment where logouts happen. With the list empty the
    guard skips the check; here every request pays for it."""
    core = make_core("async")
    now_ms = int(time.time() * 1000)
    revocations = core.guard.revocations
    revocations.apply(Entry("s", secrets.token_urlsafe(16)[:22], now_ms) for _ in range(10_000))
    revocations.apply(Entry("u", str(uuid.uuid4()), now_ms) for _ in range(1_000))
    return TokenGuardMiddleware(bare_asgi, core)


def _jwt_backend() -> Any:
    """The usual PyJWT bearer backend for Starlette's ``AuthenticationMiddleware``."""
    from starlette.authentication import (
        AuthCredentials,
        AuthenticationBackend,
        AuthenticationError,
        SimpleUser,
    )

    class JWTBackend(AuthenticationBackend):
        async def authenticate(self, conn: Any) -> Any:
            header = conn.headers.get("authorization")
            if header is None:
                return None
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer":
                return None
            try:
                claims = jwt.decode(token, SECRET, algorithms=["HS256"], issuer=ISSUER)
            except jwt.InvalidTokenError as exc:
                raise AuthenticationError("invalid token") from exc
            return AuthCredentials(["authenticated"]), SimpleUser(claims["id"])

    return JWTBackend()


def make_asgi_starlette_auth() -> Any:
    """Starlette's ``AuthenticationMiddleware`` with a PyJWT bearer backend."""
    from starlette.middleware.authentication import AuthenticationMiddleware

    return AuthenticationMiddleware(bare_asgi, backend=_jwt_backend())


class HandwrittenJWT:
    """The minimal hand-written middleware: read the header, ``jwt.decode``, attach claims."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"authorization":
                    token = value.decode("latin-1").partition(" ")[2]
                    try:
                        scope["user"] = jwt.decode(
                            token, SECRET, algorithms=["HS256"], issuer=ISSUER
                        )
                    except jwt.InvalidTokenError:
                        await send({**_START, "status": 401})
                        await send({"type": "http.response.body", "body": b""})
                        return
                    break
        await self.app(scope, receive, send)


def make_asgi_handwritten() -> Any:
    return HandwrittenJWT(bare_asgi)


class PassThrough:
    """The least a middleware can be: a class whose ``__call__`` awaits the app."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


class HeaderAttach:
    """The floor of any authenticating middleware, with no authentication at all: walk the
    headers for ``Authorization``, look its value up in a dict, attach what it finds the
    way tokenguard does (``scope["state"]``, ``scope["user"]``, ``scope["auth"]``)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.known: dict[bytes, Any] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            authorization = None
            for name, value in scope["headers"]:
                if name == b"authorization":
                    authorization = value
            user = self.known.get(authorization) if authorization is not None else None
            state = scope.get("state")
            state = dict(state) if state else {}
            state["user"] = user
            scope["state"] = state
            scope["user"] = scope["auth"] = user
        await self.app(scope, receive, send)


def make_asgi_passthrough() -> Any:
    return PassThrough(bare_asgi)


def make_asgi_header_attach() -> Any:
    return HeaderAttach(bare_asgi)


def make_asgi_bare() -> Any:
    return bare_asgi


# --- Starlette apps (for the server runs: what the peers' numbers are usually quoted on) --


def _starlette(middleware: list[Any]) -> Any:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def index(request: Any) -> Any:
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/", index)], middleware=middleware)


def make_starlette_bare() -> Any:
    return _starlette([])


def make_starlette_tokenguard() -> Any:
    from starlette.middleware import Middleware

    return _starlette([Middleware(TokenGuardMiddleware, guard=make_core("async"))])


def make_starlette_auth() -> Any:
    from starlette.middleware import Middleware
    from starlette.middleware.authentication import AuthenticationMiddleware

    return _starlette([Middleware(AuthenticationMiddleware, backend=_jwt_backend())])


def make_starlette_handwritten() -> Any:
    from starlette.middleware import Middleware

    return _starlette([Middleware(HandwrittenJWT)])


# --- WSGI (Flask) -----------------------------------------------------------------------


def _flask_app(decorate: Any = None) -> Any:
    from flask import Flask

    app = Flask("bench")

    def index() -> str:
        return "ok"

    app.add_url_rule("/", "index", decorate(index) if decorate else index)
    return app


def make_flask_bare() -> Any:
    return _flask_app()


def make_flask_tokenguard() -> Any:
    from tokenguard.integrations.flask import TokenGuardFlask

    app = _flask_app()
    TokenGuardFlask(app, guard=make_core("sync"))
    return app


def make_flask_jwt_extended() -> Any:
    """flask-jwt-extended's ``jwt_required``, configured to accept Directus's tokens."""
    from flask_jwt_extended import JWTManager, jwt_required

    app = _flask_app(jwt_required())
    app.config.update(
        JWT_SECRET_KEY=SECRET,
        JWT_ALGORITHM="HS256",
        JWT_DECODE_ISSUER=ISSUER,
        JWT_IDENTITY_CLAIM="id",
        JWT_TOKEN_LOCATION=["headers"],
    )
    JWTManager(app)
    return app


ASGI_FACTORIES = {
    "bare": make_asgi_bare,
    "tokenguard": make_asgi_tokenguard,
    "starlette-auth": make_asgi_starlette_auth,
    "handwritten": make_asgi_handwritten,
}

WSGI_FACTORIES = {
    "flask": make_flask_bare,
    "flask+tokenguard": make_flask_tokenguard,
    "flask-jwt-extended": make_flask_jwt_extended,
}
