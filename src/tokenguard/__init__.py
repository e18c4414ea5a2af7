"""tokenguard: Directus-grade token authentication for any ASGI or WSGI app."""

from .asgi import TokenGuardMiddleware
from .config import Settings, generate_secret
from .core import TokenGuard
from .errors import AuthError, ConfigError
from .guard import Guard, Refusal
from .logs import RedactingFilter
from .principal import Principal
from .stores.base import SessionRecord, StoreUnavailable, User
from .wsgi import ENVIRON_PRINCIPAL, ENVIRON_ROLE, ENVIRON_USER, TokenGuardWSGI

__all__ = [
    "ENVIRON_PRINCIPAL",
    "ENVIRON_ROLE",
    "ENVIRON_USER",
    "AuthError",
    "ConfigError",
    "Guard",
    "Principal",
    "RedactingFilter",
    "Refusal",
    "SessionRecord",
    "Settings",
    "StoreUnavailable",
    "TokenGuard",
    "TokenGuardMiddleware",
    "TokenGuardWSGI",
    "User",
    "generate_secret",
]

__version__ = "0.1.0"
