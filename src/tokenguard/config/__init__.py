"""Settings, resolved once at start-up from keyword arguments and the environment.

Environment variables use Directus's names where Directus has one (``SECRET``,
``ACCESS_TOKEN_TTL``, ``SESSION_COOKIE_NAME``…) and a ``TOKENGUARD_`` prefix otherwise.
Keyword arguments win over the environment. Nothing here is read again per request.

Each setting is declared once, on its field of :class:`Settings` (:mod:`.settings`): its
environment variable, parser, default and a line of documentation. From that declaration come
:meth:`Settings.from_env`, the configuration reference ``docs/configuration.md``
(``python -m tokenguard.config``) and :func:`unknown_settings`, the check for misspelt
variables. The parsers (:mod:`.parsers`) are shared with the provider variables.
"""

from __future__ import annotations

from ..errors import ConfigError
from ..jose.policy import HMAC_ALGORITHMS
from .parsers import SameSite, password_policy_pattern
from .policy import token_policy
from .secret import MIN_SECRET_BYTES, generate_secret
from .settings import WEBSOCKET_AUTH_MODES, CookieSettings, Settings
from .unknown import unknown_settings, warn_unknown_settings

__all__ = [
    "HMAC_ALGORITHMS",
    "MIN_SECRET_BYTES",
    "WEBSOCKET_AUTH_MODES",
    "ConfigError",
    "CookieSettings",
    "SameSite",
    "Settings",
    "generate_secret",
    "password_policy_pattern",
    "token_policy",
    "unknown_settings",
    "warn_unknown_settings",
]
