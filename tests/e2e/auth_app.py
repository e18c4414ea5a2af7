"""A tiny ASGI app wrapped by tokenguard, configured from the environment (for the e2e tests).

``/whoami`` answers with the authenticated user id; everything else is public.
"""

from __future__ import annotations

from typing import Any

from tokenguard import TokenGuardMiddleware


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    user = getattr(scope.get("user"), "user", None)
    if scope["path"] == "/whoami" and user is None:
        status, body = 401, b"anonymous"
    else:
        status, body = 200, f"user={user}".encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": body})


application = TokenGuardMiddleware(app)
