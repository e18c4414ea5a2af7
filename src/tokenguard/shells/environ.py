"""An environ-shaped request as the request pipeline reads it, and the query string written
back to it; shared by the WSGI shell (:mod:`tokenguard.shells.wsgi`) and the Django middleware
(:mod:`tokenguard.integrations.django`).

"Environ-shaped": a WSGI environ, or Django's ``request.META`` under either of its handlers
(the same ``HTTP_*``, ``QUERY_STRING`` and ``REQUEST_METHOD`` keys; repeated headers joined
with commas).
"""

from __future__ import annotations

from ..types import Environ

__all__ = ["EnvironRequest", "set_environ_query", "split_authorization"]


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


class EnvironRequest:
    """A :class:`~tokenguard.guard.pipeline.RequestHead` over an environ-shaped mapping.

    ``method`` and ``path`` are the shell's (Django has its own idea of both); ``scheme``
    defaults to ``wsgi.url_scheme``.
    """

    __slots__ = (
        "_environ",
        "method",
        "path",
        "authorization",
        "authorization_count",
        "raw_authorization",
        "query",
        "cookie",
    )

    def __init__(self, environ: Environ, method: str, path: str) -> None:
        self._environ = environ
        self.method = method
        self.path = path
        authorization: str | None = environ.get("HTTP_AUTHORIZATION")
        count = 1
        if authorization is not None and "," in authorization:
            authorization, count = split_authorization(authorization)
        self.authorization = authorization
        self.authorization_count = count
        self.raw_authorization = authorization if count == 1 else None
        self.query: str = environ.get("QUERY_STRING", "")
        self.cookie: str | None = environ.get("HTTP_COOKIE")

    @property
    def peer(self) -> str | None:
        return self._environ.get("REMOTE_ADDR")

    @property
    def scheme(self) -> str:
        return self._environ.get("wsgi.url_scheme", "http")  # type: ignore[no-any-return]

    def header(self, name: str) -> str | None:
        value = self._environ.get("HTTP_" + name.upper().replace("-", "_"))
        return value if isinstance(value, str) else None

    first_header = header  # the server joined repeated lines already


def set_environ_query(environ: Environ, query: str) -> None:
    """Put ``query`` (the query string without its token) where the app and the server's
    access log read the URL: ``QUERY_STRING``, and ``REQUEST_URI``/``RAW_URI`` when they hold
    one."""
    environ["QUERY_STRING"] = query
    for key in ("REQUEST_URI", "RAW_URI"):
        uri = environ.get(key)
        if uri and "?" in uri:
            path = uri.partition("?")[0]
            environ[key] = f"{path}?{query}" if query else path
