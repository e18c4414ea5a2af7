"""Directus error codes and the JSON bodies they produce.

Every refusal tokenguard sends has Directus's shape::

    {"errors":[{"message":"…","extensions":{…,"code":"…"}}]}

Errors are plain values on the request path (returned, not raised, so that the hot path
never pays for a traceback) and exceptions in the auth service, where raising reads better.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "AuthError",
    "ConfigError",
    "MissingExtra",
    "forbidden",
    "invalid_credentials",
    "invalid_otp",
    "invalid_payload",
    "invalid_token",
    "method_not_allowed",
    "requests_exceeded",
    "route_not_found",
    "service_unavailable",
    "token_expired",
    "user_suspended",
]


class ConfigError(ValueError):
    """Raised at start-up when the configuration is unsafe or inconsistent."""


class MissingExtra(ConfigError, ImportError):
    """A feature used without the package its extra installs: says which extra to install.

    Both a :class:`ConfigError` (a feature configured, at start-up) and an :class:`ImportError`
    (a module imported), so either ``except`` catches it."""

    def __init__(self, feature: str, package: str, extra: str) -> None:
        super().__init__(f"{feature} needs {package}: pip install 'tokenguard[{extra}]'")
        #: The extra that installs it (``pip install "tokenguard[<extra>]"``).
        self.extra = extra
        #: The missing distribution, as pip names it.
        self.package = package


class AuthError(Exception):
    """A Directus-shaped error: HTTP status, ``extensions.code``, message and extensions."""

    __slots__ = ("status", "code", "message", "extensions", "retry_after", "_body")

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        extensions: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extensions: dict[str, Any] = dict(extensions or {})
        #: Seconds for a ``Retry-After`` header (a 429, or a 503 that will pass), or None.
        self.retry_after: int | None = None
        self._body: bytes | None = None

    def to_dict(self) -> dict[str, Any]:
        """The error object as it appears inside ``errors`` (Directus puts ``code`` last)."""
        ext = dict(self.extensions)
        ext.pop("code", None)
        ext["code"] = self.code
        return {"message": self.message, "extensions": ext}

    @property
    def body(self) -> bytes:
        """The full JSON body, compact as Express emits it."""
        if self._body is None:
            self._body = json.dumps(
                {"errors": [self.to_dict()]}, separators=(",", ":"), ensure_ascii=False
            ).encode()
        return self._body

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AuthError):
            return NotImplemented
        return (self.status, self.code, self.message, self.extensions) == (
            other.status,
            other.code,
            other.message,
            other.extensions,
        )

    def __hash__(self) -> int:
        return hash((self.status, self.code, self.message))

    def __repr__(self) -> str:
        return f"AuthError({self.status}, {self.code!r}, {self.message!r})"


def invalid_credentials() -> AuthError:
    return AuthError(401, "INVALID_CREDENTIALS", "Invalid user credentials.")


def token_expired() -> AuthError:
    return AuthError(401, "TOKEN_EXPIRED", "Token expired.")


def invalid_token() -> AuthError:
    return AuthError(403, "INVALID_TOKEN", "Invalid token.")


def invalid_otp() -> AuthError:
    return AuthError(401, "INVALID_OTP", "Invalid user OTP.")


def user_suspended() -> AuthError:
    return AuthError(401, "USER_SUSPENDED", "User suspended.")


def invalid_payload(reason: str) -> AuthError:
    """400 ``INVALID_PAYLOAD``; ``reason`` is given without its final dot, as Directus does."""
    reason = reason.rstrip(".")
    return AuthError(400, "INVALID_PAYLOAD", f"Invalid payload. {reason}.", {"reason": reason})


def forbidden(reason: str | None = None) -> AuthError:
    if reason is None:
        return AuthError(403, "FORBIDDEN", "You don't have permission to access this.")
    return AuthError(403, "FORBIDDEN", reason, {"reason": reason})


def service_unavailable(service: str, reason: str) -> AuthError:
    # Directus appends a dot to a reason that may already end in one; we do not repeat that.
    reason = reason.rstrip(".")
    return AuthError(
        503,
        "SERVICE_UNAVAILABLE",
        f'Service "{service}" is unavailable. {reason}.',
        {"service": service, "reason": reason},
    )


def route_not_found(path: str) -> AuthError:
    return AuthError(404, "ROUTE_NOT_FOUND", f"Route {path} doesn't exist.", {"path": path})


def method_not_allowed(method: str, path: str) -> AuthError:
    return AuthError(
        405, "METHOD_NOT_ALLOWED", f'Method "{method}" is not allowed for route {path}.'
    )


def requests_exceeded(limit: int, reset_iso: str, retry_ms: int) -> AuthError:
    return AuthError(
        429,
        "REQUESTS_EXCEEDED",
        f"Too many requests, retry after {_ms_format(retry_ms)}.",
        {"limit": limit, "reset": reset_iso},
    )


def _ms_format(ms: int) -> str:
    # The short form of the `ms` package, which Directus uses in this message.
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if abs(ms) >= size:
            return f"{round(ms / size)}{unit}"
    return f"{ms}ms"
