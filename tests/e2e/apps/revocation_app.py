"""Two tiny apps behind tokenguard, configured from the environment, for the revocation
end-to-end tests: ``asgi`` (uvicorn) and ``wsgi`` (gunicorn). ``/whoami`` answers with the
user, whether it has admin access and the worker's PID; everything else is public. Every
WebSocket answers each frame the same way (with ``WEBSOCKETS_ENABLED``, ``/websocket`` is the
realtime path)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from tokenguard import TokenGuardMiddleware, TokenGuardWSGI
from tokenguard.principal import Principal


def _body(principal: Principal | None) -> tuple[int, bytes]:
    user = getattr(principal, "user", None)
    if user is None:
        return 401, b"anonymous"
    admin = bool(getattr(principal, "admin", False))
    return 200, f"user={user} admin={admin} pid={os.getpid()}".encode()


async def _socket(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Any WebSocket (the realtime path or another): accept, then answer each frame with who
    the socket speaks for and the worker's PID, until it ends."""
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        _, body = _body(scope["state"]["user"])
        await send({"type": "websocket.send", "text": body.decode()})


async def _asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "websocket":
        await _socket(scope, receive, send)
        return
    if scope["type"] != "http":
        return
    status, body = _body(scope.get("user"))
    await send(
        {"type": "http.response.start", "status": status,
         "headers": [(b"content-type", b"text/plain")]}
    )  # fmt: skip
    await send({"type": "http.response.body", "body": body})


def _wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    from tokenguard import ENVIRON_PRINCIPAL

    status, body = _body(environ.get(ENVIRON_PRINCIPAL))
    start_response(f"{status} {'OK' if status == 200 else 'Unauthorized'}",
                   [("content-type", "text/plain")])  # fmt: skip
    return [body]


def __getattr__(name: str) -> Any:
    # Made on first use: a worker builds only the guard of its own server kind.
    if name == "asgi":
        app: Any = TokenGuardMiddleware(_asgi)
    elif name == "wsgi":
        app = TokenGuardWSGI(_wsgi)
    else:
        raise AttributeError(name)
    globals()[name] = app
    return app
