"""tokenguard: Directus-grade token authentication for any ASGI or WSGI app."""

from .app import TokenGuard
from .config import Settings, generate_secret
from .errors import AuthError, ConfigError
from .guard.decide import Guard, Refusal
from .logs.filter import RedactingFilter
from .principal import Principal
from .shells.asgi import TokenGuardMiddleware
from .shells.wsgi import ENVIRON_PRINCIPAL, ENVIRON_ROLE, ENVIRON_USER, TokenGuardWSGI
from .stores.base import SessionRecord, StoreUnavailable, User

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
