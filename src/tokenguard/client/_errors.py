"""Directus error answers as typed exceptions.

A Directus (or tokenguard) refusal has the body ``{"errors":[{"message":…,
"extensions":{"code":…}}]}``. :func:`error_from_response` turns it into the subclass of
:class:`DirectusError` that matches the first error's code, so callers can write
``except InvalidCredentials``; an unknown code gives a plain :class:`DirectusError`, and a
body that is not a Directus error at all (a proxy's HTML page) gives
:class:`UnexpectedResponse`. The exception never quotes the request (tokens, passwords).
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import httpx

__all__ = [
    "AuthFailed",
    "DirectusError",
    "Forbidden",
    "InvalidCredentials",
    "InvalidOtp",
    "InvalidPayload",
    "InvalidToken",
    "RefreshFailed",
    "RequestsExceeded",
    "RouteNotFound",
    "ServiceUnavailable",
    "TokenExpired",
    "UnexpectedResponse",
    "UserSuspended",
    "error_from_body",
    "error_from_response",
    "raise_for_error",
]

#: An error body larger than this is not read as JSON (it is not one of Directus's).
MAX_ERROR_BODY = 256 * 1024
_MAX_MESSAGE = 1000


class DirectusError(Exception):
    """An error answer from a Directus-compatible API.

    ``status`` is the HTTP status, ``code`` the first error's ``extensions.code``,
    ``message`` its message, ``extensions`` its extensions (``code`` included) and
    ``errors`` every error object of the body.
    """

    #: The ``extensions.code`` a subclass stands for.
    code_name: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        code: str,
        status: int,
        extensions: dict[str, Any] | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.extensions: dict[str, Any] = dict(extensions or {})
        self.errors: list[dict[str, Any]] = list(errors or [])

    def __str__(self) -> str:
        return f"{self.code} ({self.status}): {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code!r}, status={self.status})"


class InvalidCredentials(DirectusError):
    """401 ``INVALID_CREDENTIALS``: wrong login, unknown or revoked token."""

    code_name = "INVALID_CREDENTIALS"


class TokenExpired(DirectusError):
    """401 ``TOKEN_EXPIRED``: the access token is past its ``exp``."""

    code_name = "TOKEN_EXPIRED"


class InvalidToken(DirectusError):
    """403 ``INVALID_TOKEN``: a Directus JWT with a bad signature or claims."""

    code_name = "INVALID_TOKEN"


class InvalidPayload(DirectusError):
    """400 ``INVALID_PAYLOAD``: the request body was refused (``extensions["reason"]``)."""

    code_name = "INVALID_PAYLOAD"


class InvalidOtp(DirectusError):
    """401 ``INVALID_OTP``: a one-time password is required, or the one given is wrong."""

    code_name = "INVALID_OTP"


class UserSuspended(DirectusError):
    """401 ``USER_SUSPENDED``."""

    code_name = "USER_SUSPENDED"


class Forbidden(DirectusError):
    """403 ``FORBIDDEN``: authenticated, but not allowed."""

    code_name = "FORBIDDEN"


class RouteNotFound(DirectusError):
    """404 ``ROUTE_NOT_FOUND``."""

    code_name = "ROUTE_NOT_FOUND"


class RequestsExceeded(DirectusError):
    """429 ``REQUESTS_EXCEEDED``: rate limited."""

    code_name = "REQUESTS_EXCEEDED"


class ServiceUnavailable(DirectusError):
    """503 ``SERVICE_UNAVAILABLE``: a backend the server needs is down; retry later."""

    code_name = "SERVICE_UNAVAILABLE"


class AuthFailed(DirectusError):
    """``AUTH_FAILED``: a realtime (WebSocket) authentication was refused."""

    code_name = "AUTH_FAILED"


class UnexpectedResponse(DirectusError):
    """An error answer whose body is not a Directus error (a proxy's page, a crash).

    ``code`` is ``"UNEXPECTED_RESPONSE"``; the body itself is not quoted.
    """

    code_name = "UNEXPECTED_RESPONSE"


class RefreshFailed(DirectusError):
    """The stored login could not be refreshed: log in again.

    ``code``, ``status`` and ``extensions`` are those of the server's answer, which is also
    the exception's ``__cause__`` (e.g. :class:`InvalidCredentials` for a revoked session).
    """

    code_name = None

    @classmethod
    def wrap(cls, cause: DirectusError) -> RefreshFailed:
        """A ``RefreshFailed`` carrying ``cause``'s code and status."""
        error = cls(
            f"The session could not be refreshed: {cause.message}",
            code=cause.code,
            status=cause.status,
            extensions=cause.extensions,
            errors=cause.errors,
        )
        error.__cause__ = cause
        return error


_BY_CODE: dict[str, type[DirectusError]] = {
    cls.code_name: cls
    for cls in (
        InvalidCredentials,
        TokenExpired,
        InvalidToken,
        InvalidPayload,
        InvalidOtp,
        UserSuspended,
        Forbidden,
        RouteNotFound,
        RequestsExceeded,
        ServiceUnavailable,
        AuthFailed,
    )
    if cls.code_name is not None
}


def _unexpected(status: int) -> DirectusError:
    return UnexpectedResponse(
        f"HTTP {status} without a Directus error body",
        code="UNEXPECTED_RESPONSE",
        status=status,
    )


def error_from_body(status: int, body: bytes) -> DirectusError:
    """The exception for an error answer with HTTP ``status`` and raw ``body``."""
    if len(body) > MAX_ERROR_BODY:
        return _unexpected(status)
    try:
        parsed = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return _unexpected(status)
    errors = parsed.get("errors") if isinstance(parsed, dict) else None
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return _unexpected(status)
    first = errors[0]
    raw_extensions = first.get("extensions")
    extensions: dict[str, Any] = raw_extensions if isinstance(raw_extensions, dict) else {}
    code = extensions.get("code")
    if not isinstance(code, str) or not code:
        code = "INTERNAL_SERVER_ERROR" if status >= 500 else "UNKNOWN"
    message = first.get("message")
    if not isinstance(message, str):
        message = code
    cls = _BY_CODE.get(code, DirectusError)
    return cls(
        message[:_MAX_MESSAGE],
        code=code,
        status=status,
        extensions=extensions,
        errors=[e for e in errors if isinstance(e, dict)],
    )


def error_from_response(response: httpx.Response) -> DirectusError:
    """The exception for an error ``response`` (its body must have been read)."""
    return error_from_body(response.status_code, response.content)


def raise_for_error(response: httpx.Response) -> httpx.Response:
    """Raise the typed :class:`DirectusError` if ``response`` is a 4xx/5xx, else return it."""
    if response.status_code >= 400:
        raise error_from_response(response)
    return response
