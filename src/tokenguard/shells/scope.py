"""An ASGI scope as the request pipeline reads it, and the query string written back to it.

Shared by the HTTP and WebSocket shells (:mod:`tokenguard.shells.asgi`,
:mod:`tokenguard.shells.asgi_ws`) and the Django middleware under Django's ASGI handler.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..types import Scope

__all__ = ["ScopeRequest", "read_scope", "set_scope_query"]

Headers = Iterable[tuple[bytes, bytes]]


class ScopeRequest:
    """A :class:`~tokenguard.guard.pipeline.RequestHead` over an ASGI scope.

    The shell has walked the headers once already (for the raw-header memo); what it found
    is handed in rather than looked for again. ``headers`` are the lines the rare-header
    lookups search (the scope's own, unless the shell normalised them).
    """

    __slots__ = (
        "_scope",
        "_headers",
        "method",
        "path",
        "authorization",
        "authorization_count",
        "raw_authorization",
        "query",
        "cookie",
        "scheme",
    )

    def __init__(
        self,
        scope: Scope,
        headers: Headers,
        raw_authorization: bytes | None,
        authorization_count: int,
        cookies: list[str] | None,
        raw_query: bytes,
        scheme: str,
    ) -> None:
        self._scope = scope
        self._headers = headers
        self.method: str = scope.get("method", "GET")
        self.path: str = scope.get("path", "")
        self.raw_authorization = raw_authorization
        self.authorization = (
            raw_authorization.decode("latin-1") if raw_authorization is not None else None
        )
        self.authorization_count = authorization_count
        self.query = raw_query.decode("latin-1")
        self.cookie = "; ".join(cookies) if cookies else None
        self.scheme = scheme

    @property
    def peer(self) -> str | None:
        client = self._scope.get("client")
        return client[0] if client else None

    def header(self, name: str) -> str | None:
        # Repeated headers joined as one, as the routes see them: a proxy that adds its own
        # X-Forwarded-For line must not leave us reading the client's line.
        key = name.encode("latin-1")
        values = [v.decode("latin-1") for k, v in self._headers if k == key]
        return ", ".join(values) if values else None

    def first_header(self, name: str) -> str | None:
        key = name.encode("latin-1")
        for k, v in self._headers:
            if k == key:
                return v.decode("latin-1")
        return None


def read_scope(scope: Scope, scheme: str) -> ScopeRequest:
    """The request of a scope whose headers were not walked yet, names lower-cased (a
    WebSocket upgrade: not the hot path)."""
    headers = [(name.lower(), value) for name, value in scope.get("headers", ())]
    raw_authorization: bytes | None = None
    count = 0
    cookies: list[str] = []
    for name, value in headers:
        if name == b"authorization":
            count += 1
            if count == 1:
                raw_authorization = value
        elif name == b"cookie":
            cookies.append(value.decode("latin-1"))
    return ScopeRequest(
        scope, headers, raw_authorization, count, cookies, scope.get("query_string", b""), scheme
    )


def set_scope_query(scope: Scope, query: str) -> None:
    """Put ``query`` (the query string without its token) where the app and the server's
    access log read the URL: ``query_string``, and ``raw_path`` when it holds one."""
    scope["query_string"] = query.encode("latin-1")
    raw_path = scope.get("raw_path")
    if raw_path and b"?" in raw_path:
        path = raw_path.partition(b"?")[0]
        scope["raw_path"] = path + b"?" + scope["query_string"] if query else path
