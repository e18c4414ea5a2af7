"""A Starlette app behind TokenGuardMiddleware that logs its URL and can crash.

Run by uvicorn and by gunicorn's uvicorn worker in the log-redaction end-to-end tests.
"""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.e2e.apps.log_common import failure, stores
from tokenguard import TokenGuard, TokenGuardMiddleware

app_log = logging.getLogger("log_asgi_app")


async def ok(request: Request) -> JSONResponse:
    # WARNING: with no handler of its own, this reaches logging's last-resort stderr handler.
    app_log.warning("app saw %s", request.url)
    return JSONResponse(
        {"query": request.url.query, "raw_path": request.scope.get("raw_path", b"").decode("latin-1"),
         "via": request.state.user.via}
    )


async def boom(request: Request) -> JSONResponse:
    raise failure(str(request.url), request.headers.get("authorization"), request.headers.get("cookie"))


users, sessions = stores()
app = TokenGuardMiddleware(
    Starlette(routes=[Route("/ok", ok), Route("/boom", boom)]),
    TokenGuard(users=users, sessions=sessions, flavour="async"),
)
