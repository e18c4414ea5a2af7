"""The WSGI shell: environ in, principal attached, the core's answer written out.

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
from ..guard.decide import Refusal
from ..http.serve import serve_wsgi
from ..http.views import JSON_TYPE
from ..principal import Principal
from ..types import Environ, StartResponse, WSGIApp
from .environ import authenticate_environ, csrf_refusal, header_of, strip_query_token

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
        self._guard = self.core.guard
        self._router = self.core.router
        self._auth_prefix = self._router.path_prefixes
        settings = self.core.settings
        self._strip = frozenset(settings.query_params) if settings.strip_query_token else None
        self._throttles = self.core.throttles

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        query = environ.get("QUERY_STRING", "")
        if self._throttles:
            refusal = run_sync(self.core.throttle(environ.get("REMOTE_ADDR"), header_of(environ)))
            if refusal is not None:
                if query and self._strip:
                    strip_query_token(environ, query, self._strip)
                return self._refuse(refusal, start_response)
        authorization = environ.get("HTTP_AUTHORIZATION")
        if authorization is not None and "," not in authorization:
            # The hot path, kept inline (a call and two type checks fewer per request); on a
            # miss authenticate_environ() asks the cache once more, which costs a dict lookup.
            cached = self._guard.cached_bearer(authorization, query)
            if cached is not None:
                return self._serve(environ, start_response, cached, query)
        outcome = authenticate_environ(self._guard, environ, query, self._strip)
        if type(outcome) is GeneratorType:
            outcome = run_sync(outcome)
        if type(outcome) is Refusal:
            return self._refuse(outcome, start_response)
        assert isinstance(outcome, Principal)
        return self._serve(environ, start_response, outcome, query)

    def _serve(
        self, environ: Environ, start_response: StartResponse, outcome: Principal, query: str
    ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(self._auth_prefix) and self._router.answers(
            environ.get("REQUEST_METHOD", "GET"), path
        ):
            return serve_wsgi(self._router, environ, start_response, outcome)
        if outcome.via != "public" and environ.get("HTTP_COOKIE"):
            refusal = csrf_refusal(
                self.core, environ, outcome, query, environ.get("wsgi.url_scheme", "http")
            )
            if refusal is not None:
                return self._refuse(refusal, start_response)
        environ[ENVIRON_PRINCIPAL] = outcome
        environ[ENVIRON_USER] = outcome.user
        environ[ENVIRON_ROLE] = outcome.role
        return self.app(environ, start_response)

    def close(self) -> None:
        """Close the guard this object made (idempotent; a guard passed in is left to its
        owner). WSGI has no shutdown event: call it when the server stops."""
        if self.owns_core:
            self.core.close()

    def _refuse(self, refusal: Refusal, start_response: StartResponse) -> list[bytes]:
        body = refusal.error.body
        headers = [("Content-Type", JSON_TYPE), ("Content-Length", str(len(body)))]
        headers.extend(self.core.refusal_headers(refusal))
        start_response(status_line(refusal.error.status), headers)
        return [body]
