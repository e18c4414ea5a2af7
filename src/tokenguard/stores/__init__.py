"""Store protocols and their backends (memory, SQLite, Redis, PostgreSQL)."""

from .base import (
    AsyncSessionStore,
    AsyncUserStore,
    RotateOutcome,
    SessionInfo,
    SessionRecord,
    SessionStore,
    StoreUnavailable,
    User,
    UserStore,
)

__all__ = [
    "AsyncSessionStore",
    "AsyncUserStore",
    "RotateOutcome",
    "SessionInfo",
    "SessionRecord",
    "SessionStore",
    "StoreUnavailable",
    "User",
    "UserStore",
]
