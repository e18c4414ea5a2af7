"""The request steps of an environ-shaped request, shared by the WSGI shell
(:mod:`tokenguard.shells.wsgi`) and the Django middleware (:mod:`tokenguard.integrations.django`).

"Environ-shaped": a WSGI environ, or Django's ``request.META`` under either of its handlers
(the same ``HTTP_*``, ``QUERY_STRING`` and ``REQUEST_METHOD`` keys; repeated headers joined
with commas). Nothing here does I/O: a step that needs a store returns a flow for the caller
to drive with :func:`~tokenguard.flow.run_sync` or :func:`~tokenguard.flow.run_async`.
"""

from __future__ import annotations

from collections.abc import Callable

from ..app import TokenGuard
from ..flow import Flow
from ..guard.csrf import SAFE_METHODS
from ..guard.decide import Guard, Outcome, Refusal
from ..logs.redact import remove_query_params
from ..principal import Principal
from ..types import Environ

__all__ = [
    "authenticate_environ",
    "csrf_refusal",
    "header_of",
    "split_authorization",
    "strip_query_token",
]


def strip_query_token(environ: Environ, query: str, names: frozenset[str]) -> None:
    """Take the query token out of the URL the app (and the server's access log) sees.

    ``environ`` is environ-shaped: a WSGI environ, or Django's ``request.META``."""
    stripped = remove_query_params(query, names)
    if stripped is query:
        return
    environ["QUERY_STRING"] = stripped
    for key in ("REQUEST_URI", "RAW_URI"):
        uri = environ.get(key)
        if uri and "?" in uri:
            path = uri.partition("?")[0]
            environ[key] = f"{path}?{stripped}" if stripped else path


def header_of(environ: Environ) -> Callable[[str], str | None]:
    """A lookup of request headers by lower-case name in an environ-shaped mapping."""

    def header(name: str) -> str | None:
        value = environ.get("HTTP_" + name.upper().replace("-", "_"))
        return value if isinstance(value, str) else None

    return header


def split_authorization(authorization: str) -> tuple[str, int]:
    """The deciding ``Authorization`` value and how many headers a comma-joined one was.

    WSGI servers (and Django's ASGI request) join repeated headers with commas. When every
    piece is itself a "<scheme> <credentials>" header, there were several: the first one
    decides, and two Bearer headers are a 400 as in the ASGI shell. Anything else stays one
    value (a malformed token is refused, never downgraded)."""
    parts = [part.strip() for part in authorization.split(",")]
    if all(" " in part for part in parts):
        return parts[0], len(parts)
    return authorization, 1


def authenticate_environ(
    guard: Guard, environ: Environ, query: str, strip: frozenset[str] | None
) -> Outcome | Flow[Outcome]:
    """Authenticate an environ-shaped request (a WSGI environ, or Django's ``request.META``)
    and take the query token out of it when ``strip`` names the parameters; the flow, when
    one is returned, is the caller's to drive."""
    authorization = environ.get("HTTP_AUTHORIZATION")
    count = 1
    if authorization is not None:
        if "," not in authorization:
            # The common request, a repeated Bearer token: answered from the guard's cache
            # without parsing anything (None when not certain). A query string that could
            # carry a token is never answered here, so there is nothing to strip.
            cached = guard.cached_bearer(authorization, query)
            if cached is not None:
                return cached
        else:
            authorization, count = split_authorization(authorization)
    outcome = guard.authenticate(
        authorization,
        query,
        environ.get("HTTP_COOKIE"),
        authorization_count=count,
        raw_authorization=authorization if count == 1 else None,
    )
    if query and strip:
        strip_query_token(environ, query, strip)
    return outcome


def csrf_refusal(
    core: TokenGuard, environ: Environ, principal: Principal, query: str, scheme: str
) -> Refusal | None:
    """The cross-site check of an environ-shaped app request (``query`` as it came, before
    any stripping): only an unsafe method authenticated by the session cookie is checked."""
    method = environ.get("REQUEST_METHOD", "GET")
    if method in SAFE_METHODS:
        return None
    # Only here can the credential be the (ambient) session cookie.
    return core.csrf_refusal(
        method,
        principal,
        environ.get("HTTP_AUTHORIZATION"),
        query,
        environ.get("HTTP_COOKIE"),
        environ.get("HTTP_ORIGIN"),
        environ.get("HTTP_REFERER"),
        environ.get("HTTP_HOST"),
        scheme,
    )
