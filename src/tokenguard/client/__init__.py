"""A Python client for tokenguard- (and Directus-) protected APIs, on httpx.

It does for Python what ``@directus/sdk``'s ``authentication()`` does for JavaScript: log
in once, and the tokens are stored, attached to every request and refreshed before they
expire (or once after a ``TOKEN_EXPIRED`` answer), with concurrent callers sharing one
refresh::

    from tokenguard.client import Client, FileStorage

    with Client("https://api.example.com", storage=FileStorage("~/.myapp/login.json")) as api:
        if api.get_token() is None:
            api.login("me@example.com", "secret")
        me = api.get("/users/me").json()["data"]

:class:`AsyncClient` is the same for ``async`` code. Error answers are raised as typed
:class:`DirectusError` subclasses. This package imports nothing of tokenguard's server
side: it works against a real Directus too. It needs ``httpx`` (``tokenguard[client]``).
"""

from __future__ import annotations

from ._auth import Mode
from ._client import AsyncClient, Client
from ._errors import (
    AuthFailed,
    DirectusError,
    Forbidden,
    InvalidCredentials,
    InvalidOtp,
    InvalidPayload,
    InvalidToken,
    RefreshFailed,
    RequestsExceeded,
    RouteNotFound,
    ServiceUnavailable,
    TokenExpired,
    UnexpectedResponse,
    UserSuspended,
    error_from_response,
    raise_for_error,
)
from ._realtime import check_realtime_auth_reply, realtime_auth_message
from ._storage import AsyncTokenStorage, AuthData, FileStorage, MemoryStorage, TokenStorage

__all__ = [
    "AsyncClient",
    "AsyncTokenStorage",
    "AuthData",
    "AuthFailed",
    "Client",
    "DirectusError",
    "FileStorage",
    "Forbidden",
    "InvalidCredentials",
    "InvalidOtp",
    "InvalidPayload",
    "InvalidToken",
    "MemoryStorage",
    "Mode",
    "RefreshFailed",
    "RequestsExceeded",
    "RouteNotFound",
    "ServiceUnavailable",
    "TokenExpired",
    "TokenStorage",
    "UnexpectedResponse",
    "UserSuspended",
    "check_realtime_auth_reply",
    "error_from_response",
    "raise_for_error",
    "realtime_auth_message",
]
