"""Minting tokens for tests, with PyJWT (the reference implementation)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt

SECRET = "tg-test-7Qp2vX9mK4rT8wLz3NcY6bHj1sDf5GaE0uIo"
LONG_SECRET = "tg-long-" + "Qw9Er8Ty7Ui6Op5As4Df3Gh2Jk1Lz0Xc" * 2
OTHER_SECRET = "tg-other-Zx8Cv7Bn6Mq5Wr4Et3Yu2Io1Pa0SdFgHjKl"


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "id": "8f0c2b1e-4c5d-4e6f-9a0b-1c2d3e4f5a6b",
        "role": "editor-role",
        "app_access": True,
        "admin_access": False,
        "iat": now,
        "exp": now + 900,
        "iss": "directus",
    }
    for key, value in overrides.items():
        if value is DROP:
            base.pop(key, None)
        else:
            base[key] = value
    return base


DROP = object()


def mint(secret: str = SECRET, algorithm: str = "HS256", headers: dict[str, Any] | None = None, **overrides: Any) -> str:
    return jwt.encode(claims(**overrides), secret, algorithm=algorithm, headers=headers)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_jwt(header: dict[str, Any] | str, payload: dict[str, Any] | str, signature: str = "sig") -> str:
    h = header if isinstance(header, str) else json.dumps(header)
    p = payload if isinstance(payload, str) else json.dumps(payload)
    return f"{b64(h.encode())}.{b64(p.encode())}.{signature}"
