"""The WSGI shell: environ in, one call into the request pipeline, its decision written out.

The principal is put in the environ under documented keys:

``tokenguard.principal``
    the :class:`~tokenguard.principal.Principal` (``via="public"`` when there is no token)
``tokenguard.user``
    the user id, or ``None``
``tokenguard.role``
    the role, or the public role
"""

from __future__ import annotations

from collections.abc import Iterable
from types import GeneratorType
from typing import Any

from ..app import TokenGuard
from ..flow import run_sync
from ..guard.pipeline import Pass, Refuse, Route
from ..http.serve import serve_wsgi
from ..http.views import JSON_TYPE
from ..principal import Principal
from ..types import Environ, StartResponse, WSGIApp
from .environ import EnvironRequest, set_environ_query

__all__ = ["ENVIRON_PRINCIPAL", "ENVIRON_ROLE", "ENVIRON_USER", "TokenGuardWSGI"]

ENVIRON_PRINCIPAL = "tokenguard.principal"
ENVIRON_USER = "tokenguard.user"
ENVIRON_ROLE = "tokenguard.role"

_STATUS = {
    200: "200 OK",
    204: "204 No Content",
    400: "400 Bad Request",
    401: "401 Unauthorized",
    403: "403 Forbidden",
    404: "404 Not Found",
    405: "405 Method Not Allowed",
    429: "429 Too Many Requests",
    503: "503 Service Unavailable",
}


def status_line(code: int) -> str:
    return _STATUS.get(code) or f"{code} Status"


class TokenGuardWSGI:
    """Authenticate every request before the wrapped WSGI ``app`` sees it.

    For Flask, prefer :class:`tokenguard.integrations.flask.TokenGuardFlask`, which wraps
    ``app.wsgi_app`` with this and adds ``current_user``. A guard made here (no ``guard``
    given) is closed by :meth:`close`.
    """

    def __init__(self, app: WSGIApp, guard: TokenGuard | None = None, **options: Any) -> None:
        self.app = app
        #: Whether the guard is this object's to close (it made it).
        self.owns_core = guard is None
        self.core = guard if guard is not None else TokenGuard(flavour="sync", **options)
        self._pipeline = self.core.pipeline
        self._cached = self._pipeline.cached
        self._decide = self._pipeline.decide
        self._router = self.core.router

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "")
        authorization = environ.get("HTTP_AUTHORIZATION")
        principal: Principal | None = None
        if authorization is not None and "," not in authorization:
            # The common request, a repeated Bearer token (one header: a server joins several
            # with commas), answered from the memo without parsing anything.
            principal = self._cached(authorization, environ.get("QUERY_STRING", ""), method, path)
        if principal is None:
            decision: Any = self._decide(EnvironRequest(environ, method, path))
            if type(decision) is GeneratorType:
                decision = run_sync(decision)
            if decision.query is not None:
                set_environ_query(environ, decision.query)
            if type(decision) is Route:
                return serve_wsgi(self._router, environ, start_response, decision.principal)
            if type(decision) is not Pass:
                return self._refuse(decision, start_response)
            principal = decision.principal
        environ[ENVIRON_PRINCIPAL] = principal
        environ[ENVIRON_USER] = principal.user
        environ[ENVIRON_ROLE] = principal.role
        return self.app(environ, start_response)

    def close(self) -> None:
        """Close the guard this object made (idempotent; a guard passed in is left to its
        owner). WSGI has no shutdown event: call it when the server stops."""
        if self.owns_core:
            self.core.close()

    def _refuse(self, refusal: Refuse, start_response: StartResponse) -> list[bytes]:
        body = refusal.error.body
        headers = [("Content-Type", JSON_TYPE), ("Content-Length", str(len(body)))]
        headers.extend(refusal.headers)
        start_response(status_line(refusal.error.status), headers)
        return [body]
