"""Shared by the log-redaction test apps: a user store holding one static token."""

from __future__ import annotations

import os

from tokenguard.jose.tokens import hash_token
from tokenguard.stores.base import User
from tokenguard.stores.memory import MemorySessionStore, MemoryUserStore

USER_ID = "8f0c2b1e-4c5d-4e6f-9a0b-1c2d3e4f5a6b"


def stores() -> tuple[MemoryUserStore, MemorySessionStore]:
    users = MemoryUserStore()
    users.create(
        User(
            id=USER_ID,
            email="static@example.com",
            role="editor-role",
            app_access=True,
            token_hash=hash_token(os.environ["LOG_STATIC_TOKEN"]),
        )
    )
    return users, MemorySessionStore()


def failure(url: str, authorization: str | None, cookie: str | None) -> RuntimeError:
    """What a careless app raises: everything about the request in the message."""
    return RuntimeError(f"app failed on {url} authorization={authorization!r} cookie={cookie!r}")
