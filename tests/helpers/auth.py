"""Building blocks for the /auth tests: a frozen clock, cheap argon2, users, apps."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import jwt
from argon2 import PasswordHasher

from tokenguard.auth.passwords import Passwords
from tokenguard.stores.base import User

SECRET = "tg-auth-Rk3vQ9pLm2Xz7Wn4Bc8Ht1Jy6Gd5Fs0AeUiOq"
NOW = 1_800_000_000.0  # Fri, 15 Jan 2027 08:00:00 GMT
PASSWORD = "correct horse battery staple"
EMAIL = "ada@example.com"
USER_ID = "9b7c5e2a-1f3d-4c6b-8a9e-0d2f4b6c8e1a"
ROLE = "3826bd7a-5c1e-4f2b-9d8a-7e6f5a4b3c2d"
# Cookie expiry dates as the frozen clock makes them.
TOMORROW = "Sat, 16 Jan 2027 08:00:00 GMT"
NEXT_WEEK = "Fri, 22 Jan 2027 08:00:00 GMT"
EPOCH = "Thu, 01 Jan 1970 00:00:00 GMT"

# Cheap parameters keep the suite fast; argon2id all the same.
FAST = Passwords(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


class Clock:
    """A settable wall clock (seconds)."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_user(**changes: Any) -> User:
    values: dict[str, Any] = {
        "id": USER_ID,
        "email": EMAIL,
        "password_hash": FAST.hash(PASSWORD),
        "role": ROLE,
        "app_access": True,
        "admin_access": False,
    }
    values.update(changes)
    return User(**values)


def access_jwt(
    ttl_s: int = 900, session: str | None = None, now: float = NOW, sid: str | None = None, **claims: Any
) -> str:
    """The access token tokenguard issues to the test user at ``now`` (extra ``claims`` win);
    with ``sid`` (the session family) exactly as issued, ``sid`` and ``iat_ms`` included."""
    payload: dict[str, Any] = {
        "id": USER_ID,
        "role": ROLE,
        "app_access": True,
        "admin_access": False,
    }
    if session is not None:
        payload["session"] = session
    if sid is not None:
        payload.update({"sid": sid, "iat": int(now), "iat_ms": int(now * 1000)})
    payload.update({"iat": int(now), "exp": int(now) + ttl_s, "iss": "directus"})
    payload.update(claims)
    return jwt.encode(payload, SECRET, algorithm="HS256")


def error_body(code: str, message: str, **extensions: Any) -> bytes:
    ext = {**extensions, "code": code}
    return json.dumps(
        {"errors": [{"message": message, "extensions": ext}]}, separators=(",", ":")
    ).encode()


def invalid_payload_body(reason: str) -> bytes:
    return error_body("INVALID_PAYLOAD", f"Invalid payload. {reason}.", reason=reason)


INVALID_CREDENTIALS = error_body("INVALID_CREDENTIALS", "Invalid user credentials.")
NO_REFRESH_TOKEN = invalid_payload_body(
    "The refresh token is required in either the payload or cookie"
)


def is_directus_error(body: bytes) -> bool:
    """The exact Directus error envelope, one error, a string code and message."""
    data = json.loads(body)
    if list(data) != ["errors"] or len(data["errors"]) != 1:
        return False
    error = data["errors"][0]
    return (
        list(error) == ["message", "extensions"]
        and isinstance(error["message"], str)
        and isinstance(error["extensions"].get("code"), str)
        and list(error["extensions"])[-1] == "code"
    )


async def plain_asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers 200 "app <path>" with the principal's user, so pass-through is visible."""
    principal = scope.get("user")
    user = getattr(principal, "user", None)
    body = f"app {scope['path']} user={user}".encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def plain_wsgi_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    principal = environ.get("tokenguard.principal")
    user = getattr(principal, "user", None)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"app {environ['PATH_INFO']} user={user}".encode()]
