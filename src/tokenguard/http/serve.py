"""Serving the ``/auth`` routes from the two shells: request views in, responses out.

Only requests the router answers come here, after the guard has authenticated them (a bad
bearer fails even ``/auth/login``, as in Directus). The body is read only for those, and never
beyond ``MAX_PAYLOAD_SIZE``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..flow import run_async, run_sync
from ..principal import Principal
from ..types import Environ, Receive, Scope, Send, StartResponse
from .routes import AuthRouter
from .views import RequestView, ResponseView

__all__ = ["environ_request", "serve_asgi", "serve_wsgi"]

_REASONS = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    503: "Service Unavailable",
}


def _declared_length(value: str | None) -> int | None:
    if value is None:
        return None
    value = value.strip()
    return int(value) if value.isdigit() else None


# -- ASGI -------------------------------------------------------------------------------------


async def _read_asgi_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or ``None`` once it grows past ``limit``."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client went away; what we have is all there is
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def serve_asgi(
    router: AuthRouter, scope: Scope, receive: Receive, send: Send, principal: Principal
) -> None:
    """Answer an ASGI HTTP request the router :meth:`~AuthRouter.answers`."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        if name in headers:
            value = headers[name] + ("; " if name == "cookie" else ", ") + value
        headers[name] = value
    method: str = scope["method"]
    path: str = scope["path"]
    response: ResponseView | None = None
    body = b""
    if router.wants_body(method, path):
        declared = _declared_length(headers.get("content-length"))
        read = None
        if declared is None or declared <= router.max_payload_bytes:
            read = await _read_asgi_body(receive, router.max_payload_bytes)
        if read is None:
            response = router.too_large()
        else:
            body = read
    if response is None:
        client = scope.get("client")
        view = RequestView(
            method,
            path,
            scope.get("query_string", b"").decode("latin-1"),
            headers,
            body,
            principal,
            client[0] if client else None,
        )
        response = await run_async(router.handle(view, scope.get("scheme", "http")))
    out = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in response.headers]
    payload = response.body
    if response.status != 204:
        out.append((b"content-length", str(len(payload)).encode()))
    if method == "HEAD":
        payload = b""
    await send({"type": "http.response.start", "status": response.status, "headers": out})
    await send({"type": "http.response.body", "body": payload})


# -- WSGI -------------------------------------------------------------------------------------


def _wsgi_headers(environ: Environ) -> dict[str, str]:
    headers: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers[key[5:].replace("_", "-").lower()] = value
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        value = environ.get(key)
        if value:
            headers[key.replace("_", "-").lower()] = value
    return headers


def _read_wsgi_body(
    environ: Environ, limit: int, stream: Any = None, terminated: bool | None = None
) -> bytes | None:
    if stream is None:
        stream = environ.get("wsgi.input")
        if stream is None:
            return b""
    declared = _declared_length(environ.get("CONTENT_LENGTH"))
    if declared is not None:
        if declared > limit:
            return None
        return bytes(stream.read(declared)) if declared else b""
    if terminated is None:
        terminated = bool(environ.get("wsgi.input_terminated"))
    if terminated:
        # Chunked upload through a server that ends the stream for us (gunicorn, werkzeug).
        data = bytes(stream.read(limit + 1))
        return None if len(data) > limit else data
    return b""  # no length and no terminated stream: reading could block forever


def environ_request(
    router: AuthRouter,
    environ: Environ,
    principal: Principal,
    *,
    stream: Any = None,
    terminated: bool | None = None,
) -> RequestView | ResponseView:
    """The view of an environ-shaped request the router :meth:`~AuthRouter.answers` (a WSGI
    environ; or Django's ``request.META``, with the request as ``stream``), or the answer
    to a body above ``MAX_PAYLOAD_SIZE``.

    ``stream`` (default ``wsgi.input``) is read only for the routes that want a body, and
    without a ``Content-Length`` only when ``terminated`` (default ``wsgi.input_terminated``)
    says it ends by itself."""
    method = environ.get("REQUEST_METHOD", "GET")
    path = environ.get("PATH_INFO", "") or "/"
    body = b""
    if router.wants_body(method, path):
        read = _read_wsgi_body(environ, router.max_payload_bytes, stream, terminated)
        if read is None:
            return router.too_large()
        body = read
    return RequestView(
        method,
        path,
        environ.get("QUERY_STRING", ""),
        _wsgi_headers(environ),
        body,
        principal,
        environ.get("REMOTE_ADDR"),
    )


def _title(name: str) -> str:
    return "-".join(part.capitalize() for part in name.split("-"))


def serve_wsgi(
    router: AuthRouter, environ: Environ, start_response: StartResponse, principal: Principal
) -> Iterable[bytes]:
    """Answer a WSGI request the router :meth:`~AuthRouter.answers`."""
    method = environ.get("REQUEST_METHOD", "GET")
    response = environ_request(router, environ, principal)
    if isinstance(response, RequestView):
        response = run_sync(router.handle(response, environ.get("wsgi.url_scheme", "http")))
    out = [(_title(n), v) for n, v in response.headers]
    payload = response.body
    if response.status != 204:
        out.append(("Content-Length", str(len(payload))))
    status = f"{response.status} {_REASONS.get(response.status, 'Status')}"
    start_response(status, out)
    return [b""] if method == "HEAD" else [payload]
