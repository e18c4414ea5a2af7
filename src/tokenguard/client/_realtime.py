"""The realtime (WebSocket) ``auth`` message, and reading the server's reply to it.

Directus's REST WebSocket expects, as its first frame in ``handshake`` mode, one of::

    {"type":"auth","access_token":"…"}
    {"type":"auth","refresh_token":"…"}
    {"type":"auth","email":"…","password":"…"}

with an optional ``uid`` (a string or a number) that the reply echoes.
"""

from __future__ import annotations

import json
from typing import Any

from ._errors import _BY_CODE, DirectusError

__all__ = ["check_realtime_auth_reply", "realtime_auth_message"]


def realtime_auth_message(
    *,
    access_token: str | None = None,
    refresh_token: str | None = None,
    email: str | None = None,
    password: str | None = None,
    uid: str | int | None = None,
) -> str:
    """The JSON text of an ``auth`` message, ready to send on the socket.

    Give exactly one credential: ``access_token``, ``refresh_token``, or ``email`` with
    ``password``.
    """
    message: dict[str, Any] = {"type": "auth"}
    given = [
        access_token is not None,
        refresh_token is not None,
        email is not None or password is not None,
    ]
    if sum(given) != 1:
        raise ValueError("give exactly one of access_token, refresh_token or email+password")
    if access_token is not None:
        _check_text("access_token", access_token)
        message["access_token"] = access_token
    elif refresh_token is not None:
        _check_text("refresh_token", refresh_token)
        message["refresh_token"] = refresh_token
    else:
        if email is None or password is None:
            raise ValueError("email and password go together")
        _check_text("email", email)
        _check_text("password", password)
        message["email"] = email
        message["password"] = password
    if uid is not None:
        if isinstance(uid, bool) or not isinstance(uid, (str, int)):
            raise TypeError("uid must be a string or an integer")
        message["uid"] = uid
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def _check_text(name: str, value: object) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")


def check_realtime_auth_reply(text: str | bytes) -> dict[str, Any]:
    """The parsed reply to an ``auth`` message if it says ``ok``; otherwise raise.

    An error reply raises the typed :class:`~tokenguard.client.DirectusError` for its code
    (``AUTH_FAILED`` → :class:`~tokenguard.client.AuthFailed`, ``TOKEN_EXPIRED`` →
    :class:`~tokenguard.client.TokenExpired`…), with ``status`` 0 as there is no HTTP
    status on a socket. A reply to rotate the refresh token carries ``refresh_token``.
    """
    try:
        reply = json.loads(text)
    except (ValueError, RecursionError):
        reply = None
    if not isinstance(reply, dict) or reply.get("type") != "auth":
        raise ValueError("not a realtime auth reply")
    if reply.get("status") == "ok":
        return reply
    error = reply.get("error")
    error = error if isinstance(error, dict) else {}
    code = error.get("code")
    code = code if isinstance(code, str) and code else "AUTH_FAILED"
    message = error.get("message")
    message = message if isinstance(message, str) else code
    cls = _BY_CODE.get(code, DirectusError)
    raise cls(message, code=code, status=0, extensions={"code": code}, errors=[error])
