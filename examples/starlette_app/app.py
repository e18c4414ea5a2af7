"""A Starlette app wrapped by tokenguard, configured like a Directus server.

Run it with ``bash examples/run.sh starlette`` (or ``python -m examples.starlette_app.app``
with ``SECRET`` set). It listens on ``HOST``/``PORT`` (default 127.0.0.1:8055), keeps users
in ``DB_FILENAME`` (SQLite) or in memory, sessions in ``REDIS`` when set, and seeds an
administrator from ``ADMIN_EMAIL``/``ADMIN_PASSWORD``/``ADMIN_TOKEN``. With
``WEBSOCKETS_ENABLED=true`` it also speaks Directus's realtime authentication at
``/websocket`` (``WEBSOCKETS_REST_AUTH`` picks public, handshake or strict).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from examples.static import HEADERS, LOGIN_PAGE, asset
from examples.users import users_me_body
from tokenguard import TokenGuard, TokenGuardMiddleware
from tokenguard.errors import invalid_credentials, route_not_found
from tokenguard.integrations.starlette import error_response, require_role, require_user
from tokenguard.users import afind_user, aseed_from_env

guard = TokenGuard(flavour="async")


def home(request: Request) -> JSONResponse:
    """Public: anyone may call it; the public role is attached when there is no token."""
    principal = request.state.user
    return JSONResponse({"data": {"hello": "world", "role": principal.role, "via": principal.via}})


async def users_me(request: Request) -> JSONResponse:
    """Who am I, as Directus's ``GET /users/me`` answers it."""
    principal = request.state.user
    if not principal.is_authenticated:
        return error_response(invalid_credentials())  # type: ignore[return-value]
    try:
        user = await afind_user(guard.users, principal.user)
    except LookupError:  # deleted since its token was issued
        return error_response(invalid_credentials())  # type: ignore[return-value]
    return JSONResponse(users_me_body(user))


@require_user
def private(request: Request) -> JSONResponse:
    """Any logged-in user."""
    return JSONResponse({"data": {"secret": "for users only", "user": request.state.user.user}})


@require_user
def private_post(request: Request) -> JSONResponse:
    """Any logged-in user, with an unsafe method: a cookie-authenticated call must come from
    this origin (tokenguard's cross-site check)."""
    return JSONResponse({"data": {"posted": True, "user": request.state.user.user}})


def login_page(request: Request) -> Response:
    """The login page (``examples/static``): session mode in a browser."""
    return _static(LOGIN_PAGE, request.url.path)


def static_file(request: Request) -> Response:
    return _static(request.path_params["name"], request.url.path)


def _static(name: str, path: str) -> Response:
    found = asset(name)
    if found is None:
        return error_response(route_not_found(path))
    body, content_type = found
    return Response(body, headers=HEADERS, media_type=content_type)


@require_role("administrator")
def admin(request: Request) -> JSONResponse:
    """Administrators only (a role, or the admin_access flag)."""
    return JSONResponse({"data": {"secret": "for administrators only"}})


async def realtime(websocket: WebSocket) -> None:
    """Echoes each frame with the principal the socket speaks for at that moment (the
    middleware handles ``auth``, ``ping`` and ``pong`` frames and never passes them on)."""
    if getattr(websocket.state, "user", None) is None:
        await websocket.close(1008)  # WEBSOCKETS_ENABLED is off: no authentication here
        return
    await websocket.accept()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("text") or (message.get("bytes") or b"").decode("utf-8", "replace")
            principal = websocket.state.user  # read per frame: re-auth and expiry change it
            # Not "data": @directus/sdk takes a message with a string "data" for an event.
            await websocket.send_json(
                {"type": "echo", "message": data, "user": principal.user, "via": principal.via}
            )
    except WebSocketDisconnect:
        pass


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """At start, seed the administrator (awaited: with ``DB_CLIENT=pg`` the guard's user
    store is an async one; every worker may seed at once, the losers find the winner's). At
    shutdown, stop tokenguard's threads and close its connections (the guard is ours: it was
    passed to the middleware, which leaves it to us)."""
    await aseed_from_env(guard.users)
    yield
    await guard.aclose()


app = Starlette(
    lifespan=lifespan,
    routes=[
        Route("/", home),
        Route("/users/me", users_me),
        Route("/private", private),
        Route("/private", private_post, methods=["POST"]),
        Route("/login", login_page),
        Route("/static/{name}", static_file),
        Route("/admin", admin),
        WebSocketRoute("/websocket", realtime),
    ]
)
app.add_middleware(TokenGuardMiddleware, guard=guard)


def main() -> None:
    import uvicorn

    host = os.environ.get("HOST", "127.0.0.1")
    uvicorn.run(app, host=host, port=int(os.environ.get("PORT", "8055")))


if __name__ == "__main__":
    main()
