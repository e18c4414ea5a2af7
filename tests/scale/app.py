"""One app, two shells, configured from the environment, for the many-process tests.

``/whoami`` answers ``user=<id> pid=<pid>`` (the pid tells which worker answered) or 401.
``application`` is the ASGI app (uvicorn), ``wsgi_application`` the WSGI one (gunicorn).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from tokenguard import TokenGuardMiddleware
from tokenguard.shells.wsgi import TokenGuardWSGI


def _answer(user: str | None, path: str) -> tuple[int, bytes]:
    if path == "/whoami" and user is None:
        return 401, b"anonymous"
    return 200, f"user={user} pid={os.getpid()}".encode()


async def _asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    status, body = _answer(getattr(scope.get("user"), "user", None), scope["path"])
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain")]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


def _wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    principal = environ.get("tokenguard.principal")
    status, body = _answer(getattr(principal, "user", None), environ.get("PATH_INFO", "/"))
    start_response(f"{status} {'OK' if status == 200 else 'Unauthorized'}",
                   [("content-type", "text/plain")])  # fmt: skip
    return [body]


def __getattr__(name: str) -> Any:
    # Built on first use, so that each server process holds only the shell it serves.
    if name == "application":
        value: Any = TokenGuardMiddleware(_asgi)
    elif name == "wsgi_application":
        value = TokenGuardWSGI(_wsgi)
    else:
        raise AttributeError(name)
    globals()[name] = value
    return value
