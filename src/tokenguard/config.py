"""Settings, resolved once at start-up from keyword arguments and the environment.

Environment variables use Directus's names where Directus has one (``SECRET``,
``ACCESS_TOKEN_TTL``, ``SESSION_COOKIE_NAME``…) and a ``TOKENGUARD_`` prefix otherwise.
Keyword arguments win over the environment. Nothing here is read again per request.
"""

from __future__ import annotations

import math
import os
import re
import secrets
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

from .durations import parse_duration_ms
from .errors import ConfigError
from .jose.keys import key_ring_for
from .jose.policy import HMAC_ALGORITHMS, TokenPolicy

__all__ = [
    "CookieSettings",
    "Settings",
    "generate_secret",
    "password_policy_pattern",
    "token_policy",
]

SameSite = Literal["lax", "strict", "none"]

MIN_SECRET_BYTES = 32

# Published placeholders and the values people type when asked for "a secret".
_KNOWN_WEAK_SECRETS = frozenset(
    {
        "secret",
        "changeme",
        "change-me",
        "changethis",
        "password",
        "directus",
        "directus-test",
        "supersecret",
        "your-secret-key",
        "your-256-bit-secret",
        "replace-with-random-value",
        "0d599f0ec05c3bda8c3b8a68c32a1b47",  # CollectiveAccess's shipped JWT key
        "blah",
    }
)

_HOW_TO = (
    "Make a strong one with `tokenguard secret` (or "
    "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`) and set it as SECRET."
)


def generate_secret() -> str:
    """A new random secret: 48 random bytes, URL-safe base64 (64 characters)."""
    return secrets.token_urlsafe(48)


# RFC 7518 §3.2: an HMAC key at least as long as the hash output.
_MIN_KEY_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}


def _check_secret(secret: str, algorithm: str = "HS256") -> None:
    raw = secret.encode()
    if not secret:
        raise ConfigError(f"SECRET is not set. {_HOW_TO}")
    lowered = secret.strip().lower()
    if lowered in _KNOWN_WEAK_SECRETS or any(
        lowered.startswith(p) for p in ("change", "your-", "replace")
    ):
        raise ConfigError(f"SECRET is a well-known placeholder value. {_HOW_TO}")
    needed = max(MIN_SECRET_BYTES, _MIN_KEY_BYTES.get(algorithm, MIN_SECRET_BYTES))
    if len(raw) < needed:
        raise ConfigError(
            f"SECRET is {len(raw)} bytes long; {algorithm} needs at least {needed}. {_HOW_TO}"
        )
    # A long run of one character, or a tiny alphabet, is not a secret however long it is.
    if _entropy_bits(secret) < 128:
        raise ConfigError(f"SECRET has too little variety to be a secret. {_HOW_TO}")


def _entropy_bits(text: str) -> float:
    counts: dict[str, int] = {}
    for ch in text:
        counts[ch] = counts.get(ch, 0) + 1
    n = len(text)
    per_char = -sum(c / n * math.log2(c / n) for c in counts.values())
    return per_char * n


@dataclass(frozen=True, slots=True)
class CookieSettings:
    """Attributes of one cookie; Directus's defaults (HttpOnly always, SameSite=Lax)."""

    name: str
    max_age_ms: int
    secure: bool = False
    same_site: SameSite = "lax"
    domain: str | None = None
    path: str = "/"


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name} must be true or false, not {value!r}")


def _as_int(name: str, value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a whole number, not {value!r}") from None


def _as_duration(name: str, value: Any) -> int:
    try:
        ms = parse_duration_ms(value)
    except ValueError:
        raise ConfigError(
            f'{name} must be a duration such as "15m", "7d" or "500", not {value!r}'
        ) from None
    return ms


_SIZE_UNITS = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}


def _as_size(name: str, value: Any) -> int:
    # The `bytes` package's forms, as Directus's MAX_PAYLOAD_SIZE takes them: "1mb", "100kb", 512.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    number, unit = text, "b"
    for suffix in ("kb", "mb", "gb", "b"):
        if text.endswith(suffix):
            number, unit = text[: -len(suffix)].strip(), suffix
            break
    try:
        return int(float(number) * _SIZE_UNITS[unit])
    except ValueError:
        example = '"1mb" or "100kb"'
        raise ConfigError(f"{name} must be a size such as {example}, not {value!r}") from None


def _as_same_site(name: str, value: Any) -> SameSite:
    text = str(value).strip().lower() or "strict"  # Directus falls back to strict when empty
    if text not in ("lax", "strict", "none"):
        raise ConfigError(f"{name} must be lax, strict or none, not {value!r}")
    return text  # type: ignore[return-value]


def _as_list(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(p.strip() for p in value.split(",") if p.strip())
    return tuple(str(v) for v in value)


# field name -> (environment variable, parser); a parser of None keeps the string.
_ENV: dict[str, tuple[str, Any]] = {
    "secret": ("SECRET", None),
    "algorithm": ("TOKENGUARD_JWT_ALGORITHM", None),
    "issuer": ("TOKENGUARD_JWT_ISSUER", None),
    "audience": ("TOKENGUARD_JWT_AUDIENCE", None),
    "leeway_ms": ("TOKENGUARD_JWT_LEEWAY", _as_duration),
    "allow_tokens_without_exp": ("TOKENGUARD_ALLOW_TOKENS_WITHOUT_EXP", _as_bool),
    "max_token_length": ("TOKENGUARD_MAX_TOKEN_LENGTH", _as_int),
    "access_token_ttl_ms": ("ACCESS_TOKEN_TTL", _as_duration),
    "refresh_token_ttl_ms": ("REFRESH_TOKEN_TTL", _as_duration),
    "session_cookie_ttl_ms": ("SESSION_COOKIE_TTL", _as_duration),
    "session_refresh_grace_ms": ("SESSION_REFRESH_GRACE_PERIOD", _as_duration),
    "refresh_cookie_name": ("REFRESH_TOKEN_COOKIE_NAME", None),
    "refresh_cookie_secure": ("REFRESH_TOKEN_COOKIE_SECURE", _as_bool),
    "refresh_cookie_same_site": ("REFRESH_TOKEN_COOKIE_SAME_SITE", _as_same_site),
    "refresh_cookie_domain": ("REFRESH_TOKEN_COOKIE_DOMAIN", None),
    "refresh_cookie_path": ("REFRESH_TOKEN_COOKIE_PATH", None),
    "session_cookie_name": ("SESSION_COOKIE_NAME", None),
    "session_cookie_secure": ("SESSION_COOKIE_SECURE", _as_bool),
    "session_cookie_same_site": ("SESSION_COOKIE_SAME_SITE", _as_same_site),
    "session_cookie_domain": ("SESSION_COOKIE_DOMAIN", None),
    "session_cookie_path": ("SESSION_COOKIE_PATH", None),
    "query_params": ("TOKENGUARD_QUERY_PARAMS", _as_list),
    "redact_names": ("TOKENGUARD_REDACT_NAMES", _as_list),
    "audit_store": ("TOKENGUARD_AUDIT_STORE", lambda n, v: str(v).strip().lower()),
    "audit_max_events": ("TOKENGUARD_AUDIT_MAX_EVENTS", _as_int),
    "public_role": ("TOKENGUARD_PUBLIC_ROLE", None),
    "login_stall_ms": ("LOGIN_STALL_TIME", _as_duration),
    "max_payload_bytes": ("MAX_PAYLOAD_SIZE", _as_size),
    "auth_prefix": ("TOKENGUARD_AUTH_PREFIX", None),
    "db_filename": ("DB_FILENAME", None),
    # PostgreSQL (tokenguard.stores.postgres), with Directus's names
    "db_client": ("DB_CLIENT", lambda n, v: str(v).strip().lower()),
    "db_host": ("DB_HOST", None),
    "db_port": ("DB_PORT", _as_int),
    "db_database": ("DB_DATABASE", None),
    "db_user": ("DB_USER", None),
    "db_password": ("DB_PASSWORD", None),
    "db_connection_string": ("DB_CONNECTION_STRING", None),
    "db_pool_min": ("DB_POOL__MIN", _as_int),
    "db_pool_max": ("DB_POOL__MAX", _as_int),
    "redis_url": ("REDIS", None),
    "redis_prefix": ("TOKENGUARD_REDIS_PREFIX", None),
    "strip_query_token": ("TOKENGUARD_STRIP_QUERY_TOKEN", _as_bool),
    "token_cache_size": ("TOKENGUARD_TOKEN_CACHE_SIZE", _as_int),
    "public_url": ("PUBLIC_URL", None),
    "dev": ("TOKENGUARD_DEV", _as_bool),
    # scaling out (tokenguard.jose.keys, tokenguard.guard.invalidation)
    "jwt_keys": ("TOKENGUARD_JWT_KEYS", None),
    "jwt_accept_hmac": ("TOKENGUARD_JWT_ACCEPT_HMAC", _as_bool),
    "jwks_url": ("TOKENGUARD_JWKS_URL", None),
    "jwks_path": ("TOKENGUARD_JWKS_PATH", None),
    "jwks_cache_ms": ("TOKENGUARD_JWKS_CACHE_TTL", _as_duration),
    "jwks_min_refetch_ms": ("TOKENGUARD_JWKS_MIN_REFETCH", _as_duration),
    "session_cache_ttl_ms": ("TOKENGUARD_SESSION_CACHE_TTL", _as_duration),
    # hardening (tokenguard.guard.limits, tokenguard.guard.csrf)
    "rate_limiter_enabled": ("RATE_LIMITER_ENABLED", _as_bool),
    "rate_limiter_points": ("RATE_LIMITER_POINTS", _as_int),
    "rate_limiter_duration_ms": ("RATE_LIMITER_DURATION", lambda n, v: _as_seconds_ms(n, v)),
    "rate_limiter_store": ("RATE_LIMITER_STORE", None),
    "rate_limiter_global_enabled": ("RATE_LIMITER_GLOBAL_ENABLED", _as_bool),
    "rate_limiter_global_points": ("RATE_LIMITER_GLOBAL_POINTS", _as_int),
    "rate_limiter_global_duration_ms": (
        "RATE_LIMITER_GLOBAL_DURATION",
        lambda n, v: _as_seconds_ms(n, v),
    ),
    "login_account_points": ("TOKENGUARD_LOGIN_ACCOUNT_POINTS", _as_int),
    "login_account_duration_ms": ("TOKENGUARD_LOGIN_ACCOUNT_DURATION", _as_duration),
    "auth_login_attempts": ("AUTH_LOGIN_ATTEMPTS", lambda n, v: _as_attempts(n, v)),
    "ip_trust_proxy": ("IP_TRUST_PROXY", lambda n, v: _as_hops(n, v)),
    "csrf_protection": ("TOKENGUARD_CSRF_PROTECTION", _as_bool),
    "csrf_trusted_origins": ("TOKENGUARD_CSRF_TRUSTED_ORIGINS", _as_list),
    "csrf_require_origin": ("TOKENGUARD_CSRF_REQUIRE_ORIGIN", _as_bool),
    # realtime and GraphQL (http/realtime.py, shells/asgi_ws.py, http/graphql.py)
    "websockets_enabled": ("WEBSOCKETS_ENABLED", _as_bool),
    "websockets_rest_enabled": ("WEBSOCKETS_REST_ENABLED", _as_bool),
    "websockets_rest_path": ("WEBSOCKETS_REST_PATH", None),
    "websockets_rest_auth": ("WEBSOCKETS_REST_AUTH", None),
    "websockets_rest_auth_timeout_s": ("WEBSOCKETS_REST_AUTH_TIMEOUT", lambda n, v: _as_s(n, v)),
    "websockets_rest_conn_limit": ("WEBSOCKETS_REST_CONN_LIMIT", lambda n, v: _as_limit(n, v)),
    "websockets_heartbeat_enabled": ("WEBSOCKETS_HEARTBEAT_ENABLED", _as_bool),
    "websockets_heartbeat_period_s": ("WEBSOCKETS_HEARTBEAT_PERIOD", lambda n, v: _as_s(n, v)),
    "graphql_enabled": ("TOKENGUARD_GRAPHQL_ENABLED", _as_bool),
    "graphql_path": ("TOKENGUARD_GRAPHQL_PATH", None),
    "graphql_auth_service_path": ("TOKENGUARD_GRAPHQL_AUTH_SERVICE_PATH", None),
    # the OpenAPI document of tokenguard's routes (tokenguard.http.openapi)
    "openapi_enabled": ("TOKENGUARD_OPENAPI_ENABLED", _as_bool),
    "openapi_path": ("TOKENGUARD_OPENAPI_PATH", None),
    # password reset, two-factor, providers and SSO, e-mail (tokenguard.auth.reset/totp/sso/mail)
    "password_reset_url_allow_list": ("PASSWORD_RESET_URL_ALLOW_LIST", _as_list),
    "password_reset_ttl_ms": ("TOKENGUARD_PASSWORD_RESET_TTL", _as_duration),
    "auth_password_policy": ("AUTH_PASSWORD_POLICY", None),
    "auth_providers": ("AUTH_PROVIDERS", _as_list),
    "auth_disable_default": ("AUTH_DISABLE_DEFAULT", _as_bool),
    "tfa_prefix": ("TOKENGUARD_TFA_PREFIX", None),
    "totp_issuer": ("TOKENGUARD_TOTP_ISSUER", None),
    "email_transport": ("EMAIL_TRANSPORT", None),
    "email_from": ("EMAIL_FROM", None),
    "email_smtp_host": ("EMAIL_SMTP_HOST", None),
    "email_smtp_port": ("EMAIL_SMTP_PORT", _as_int),
    "email_smtp_user": ("EMAIL_SMTP_USER", None),
    "email_smtp_password": ("EMAIL_SMTP_PASSWORD", None),
    "email_smtp_secure": ("EMAIL_SMTP_SECURE", _as_bool),
    "email_smtp_starttls": ("EMAIL_SMTP_STARTTLS", _as_bool),
}

#: Settings holding lists; a list or tuple given as a keyword argument is kept as a tuple.
_LIST_FIELDS = frozenset(
    {"csrf_trusted_origins"} |
    {"query_params", "password_reset_url_allow_list", "auth_providers", "redact_names"}
)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything tokenguard needs to know, validated once.

    Build it with :meth:`from_env` (keyword arguments over environment variables) or
    directly. Durations are milliseconds; ``*_TTL`` variables accept Directus's "15m" style.
    """

    secret: str = field(default="", repr=False)
    algorithm: str = "HS256"
    issuer: str = "directus"
    audience: str | None = None
    leeway_ms: int = 5_000
    allow_tokens_without_exp: bool = False
    max_token_length: int = 4096
    access_token_ttl_ms: int = 15 * 60_000
    refresh_token_ttl_ms: int = 7 * 86_400_000
    session_cookie_ttl_ms: int = 86_400_000
    session_refresh_grace_ms: int = 10_000
    refresh_cookie_name: str = "directus_refresh_token"
    refresh_cookie_secure: bool = False
    refresh_cookie_same_site: SameSite = "lax"
    refresh_cookie_domain: str | None = None
    refresh_cookie_path: str = "/"
    session_cookie_name: str = "directus_session_token"
    session_cookie_secure: bool = False
    session_cookie_same_site: SameSite = "lax"
    session_cookie_domain: str | None = None
    session_cookie_path: str = "/"
    query_params: tuple[str, ...] = ("access_token",)
    #: Names redacted in every log on top of tokenguard.redact.DEFAULT_SECRET_NAMES.
    redact_names: tuple[str, ...] = ()
    #: Where authentication events are kept besides the "tokenguard.audit" logger:
    #: none, memory, sqlite (DB_FILENAME) or redis (REDIS); the newest audit_max_events.
    audit_store: str = "none"
    audit_max_events: int = 10_000
    public_role: str | None = None
    login_stall_ms: int = 500
    max_payload_bytes: int = 1024 * 1024
    auth_prefix: str = "/auth"
    db_filename: str | None = None
    #: ``pg`` keeps users, sessions, one-time claims (and the audit trail, with
    #: TOKENGUARD_AUDIT_STORE=pg) in PostgreSQL; ``sqlite3`` (or unset) uses DB_FILENAME.
    db_client: str | None = None
    db_host: str | None = None
    db_port: int | None = None
    db_database: str | None = None
    db_user: str | None = None
    db_password: str | None = field(default=None, repr=False)
    db_connection_string: str | None = field(default=None, repr=False)
    #: Connections each process keeps open (at least) and may open (at most) per pool.
    db_pool_min: int = 1
    db_pool_max: int = 10
    redis_url: str | None = None
    redis_prefix: str = "tokenguard:"
    strip_query_token: bool = True
    token_cache_size: int = 10_000
    public_url: str | None = None
    dev: bool = False
    # Scaling out: asymmetric keys with kids (tokenguard.jose.keys), a remote JWKS for
    # verify-only services, and the cross-process session cache (tokenguard.guard.invalidation).
    jwt_keys: str | None = field(default=None, repr=False)
    jwt_accept_hmac: bool = True
    jwks_url: str | None = None
    jwks_path: str | None = None
    jwks_cache_ms: int = 300_000
    jwks_min_refetch_ms: int = 10_000
    session_cache_ttl_ms: int = 5_000
    # Hardening: rate limits (Directus's RATE_LIMITER_* and RATE_LIMITER_GLOBAL_*, on every
    # request the middleware sees), the login lockout, the trusted-proxy hop count and the
    # cookie CSRF check.
    rate_limiter_enabled: bool = False
    rate_limiter_points: int = 50
    rate_limiter_duration_ms: int = 1_000
    rate_limiter_store: str = "memory"
    rate_limiter_global_enabled: bool = False
    rate_limiter_global_points: int = 1_000
    rate_limiter_global_duration_ms: int = 1_000
    login_account_points: int = 10
    login_account_duration_ms: int = 60_000
    auth_login_attempts: int = 25
    ip_trust_proxy: int = 0
    csrf_protection: bool = True
    csrf_trusted_origins: tuple[str, ...] = ()
    csrf_require_origin: bool = False
    # Realtime (WebSocket) and GraphQL; seconds, as Directus counts them here.
    websockets_enabled: bool = False
    websockets_rest_enabled: bool = True
    websockets_rest_path: str = "/websocket"
    websockets_rest_auth: str = "handshake"
    websockets_rest_auth_timeout_s: float = 10.0
    websockets_rest_conn_limit: int | None = None
    websockets_heartbeat_enabled: bool = True
    websockets_heartbeat_period_s: float = 30.0
    graphql_enabled: bool = False
    graphql_path: str = "/graphql/system"
    graphql_auth_service_path: str | None = None
    # The OpenAPI 3.1 document of the routes tokenguard serves, where Directus serves its own.
    openapi_enabled: bool = True
    openapi_path: str = "/server/specs/oas"
    # Password reset, two-factor, providers and SSO, e-mail.
    password_reset_url_allow_list: tuple[str, ...] = ()
    password_reset_ttl_ms: int = 3_600_000
    auth_password_policy: str | None = None
    auth_providers: tuple[str, ...] = ()
    auth_disable_default: bool = False
    #: The ``AUTH_<NAME>_*`` variables of the providers in ``auth_providers`` (name, value).
    auth_provider_env: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    tfa_prefix: str = "/users/me/tfa"
    totp_issuer: str = "tokenguard"
    email_transport: str = "smtp"
    email_from: str = "no-reply@example.com"
    email_smtp_host: str = "localhost"
    email_smtp_port: int | None = None
    email_smtp_user: str | None = None
    email_smtp_password: str | None = field(default=None, repr=False)
    email_smtp_secure: bool = False
    email_smtp_starttls: bool = False
    # Derived, filled in by __post_init__.
    secret_bytes: bytes = field(default=b"", repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.secret and self.jwks_url and not self.jwt_keys:
            # Verify-only: this service holds no secret, so no HMAC token can pass here.
            object.__setattr__(self, "secret", generate_secret())
            object.__setattr__(self, "jwt_accept_hmac", False)
        if not self.secret:
            if not self.dev:
                _check_secret(self.secret)
            throwaway = generate_secret()
            warnings.warn(
                "tokenguard: SECRET is not set; TOKENGUARD_DEV is on, so a throw-away random "
                "secret is used. Every token dies when this process stops. Never do this in "
                "production.",
                RuntimeWarning,
                stacklevel=3,
            )
            object.__setattr__(self, "secret", throwaway)
        elif not self.dev:
            _check_secret(self.secret, self.algorithm)
        object.__setattr__(self, "secret_bytes", self.secret.encode())
        if self.algorithm not in HMAC_ALGORITHMS:
            raise ConfigError(
                f"TOKENGUARD_JWT_ALGORITHM must be one of {', '.join(HMAC_ALGORITHMS)}, "
                f"not {self.algorithm!r}"
            )
        for name in ("access_token_ttl_ms", "refresh_token_ttl_ms", "session_cookie_ttl_ms"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{_ENV[name][0]} must be a positive duration")
        if self.session_refresh_grace_ms < 0 or self.leeway_ms < 0 or self.login_stall_ms < 0:
            raise ConfigError("grace period, leeway and stall time cannot be negative")
        if self.leeway_ms > 300_000:
            raise ConfigError("TOKENGUARD_JWT_LEEWAY above 5 minutes defeats expiry; keep it small")
        if not 64 <= self.max_token_length <= 1_000_000:
            raise ConfigError("TOKENGUARD_MAX_TOKEN_LENGTH must be between 64 and 1000000")
        if not self.query_params:
            raise ConfigError("TOKENGUARD_QUERY_PARAMS needs at least one name")
        for name in self.redact_names:
            if not name or any(c in name for c in "=&;# \t\r\n"):
                raise ConfigError(
                    f"TOKENGUARD_REDACT_NAMES entries are parameter names, not {name!r}"
                )
        if self.audit_store not in ("none", "memory", "sqlite", "redis", "pg"):
            raise ConfigError("TOKENGUARD_AUDIT_STORE must be none, memory, sqlite, redis or pg")
        _check_database_settings(self)
        if self.audit_store == "sqlite" and not self.db_filename:
            raise ConfigError("TOKENGUARD_AUDIT_STORE=sqlite needs DB_FILENAME")
        if self.audit_store == "redis" and not self.redis_url:
            raise ConfigError("TOKENGUARD_AUDIT_STORE=redis needs REDIS (the connection URL)")
        if self.audit_max_events < 1:
            raise ConfigError("TOKENGUARD_AUDIT_MAX_EVENTS must be positive")
        if not self.auth_prefix.startswith("/") or self.auth_prefix.endswith("/"):
            raise ConfigError('TOKENGUARD_AUTH_PREFIX must start with "/" and not end with one')
        for prefix in ("refresh", "session"):
            if getattr(self, f"{prefix}_cookie_same_site") == "none" and not getattr(
                self, f"{prefix}_cookie_secure"
            ):
                upper = "REFRESH_TOKEN" if prefix == "refresh" else "SESSION"
                raise ConfigError(
                    f"{upper}_COOKIE_SAME_SITE=none needs {upper}_COOKIE_SECURE=true "
                    "(browsers drop such cookies otherwise)"
                )
        if not 0 < self.max_payload_bytes <= 1024**3:
            raise ConfigError("MAX_PAYLOAD_SIZE must be between 1 byte and 1gb")
        if self.token_cache_size < 0:
            raise ConfigError("TOKENGUARD_TOKEN_CACHE_SIZE cannot be negative")
        if self.rate_limiter_store not in ("memory", "redis"):
            raise ConfigError("RATE_LIMITER_STORE must be memory or redis")
        if self.rate_limiter_store == "redis" and not self.redis_url:
            raise ConfigError("RATE_LIMITER_STORE=redis needs REDIS (the connection URL)")
        if self.rate_limiter_points < 1 or self.rate_limiter_duration_ms < 1:
            raise ConfigError("RATE_LIMITER_POINTS and RATE_LIMITER_DURATION must be positive")
        if self.rate_limiter_global_points < 1 or self.rate_limiter_global_duration_ms < 1:
            raise ConfigError(
                "RATE_LIMITER_GLOBAL_POINTS and RATE_LIMITER_GLOBAL_DURATION must be positive"
            )
        if self.rate_limiter_global_enabled:
            # As Directus refuses to start: a global limit only makes sense above the
            # per-address one, which must be on (else one client could use the whole budget).
            if not self.rate_limiter_enabled:
                raise ConfigError("RATE_LIMITER_GLOBAL_ENABLED needs RATE_LIMITER_ENABLED=true")
            global_rate = self.rate_limiter_global_points / self.rate_limiter_global_duration_ms
            address_rate = self.rate_limiter_points / self.rate_limiter_duration_ms
            if global_rate <= address_rate:
                raise ConfigError(
                    "RATE_LIMITER_GLOBAL_POINTS/_DURATION must allow more requests per second "
                    "than RATE_LIMITER_POINTS/_DURATION"
                )
        if self.login_account_points < 0 or self.login_account_duration_ms < 1:
            raise ConfigError("TOKENGUARD_LOGIN_ACCOUNT_POINTS/_DURATION cannot be negative")
        if self.auth_login_attempts < 0 or self.ip_trust_proxy < 0:
            raise ConfigError("AUTH_LOGIN_ATTEMPTS and IP_TRUST_PROXY cannot be negative")
        for origin in self.csrf_trusted_origins:
            if "://" not in origin or origin.endswith("/") or origin.count("/") != 2:
                raise ConfigError(
                    "TOKENGUARD_CSRF_TRUSTED_ORIGINS entries are origins such as "
                    f"https://app.example.com (scheme, host, optional port), not {origin!r}"
                )
        _check_account_settings(self)
        _check_realtime_settings(self)
        _check_scaling_settings(self)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read settings from ``environ`` (default ``os.environ``); keyword arguments win."""
        env = os.environ if environ is None else environ
        known = {f.name for f in fields(cls)} - {"secret_bytes"}
        unknown = set(overrides) - known
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for name, (var, parse) in _ENV.items():
            if name in overrides:
                continue
            raw = env.get(var)
            if raw is None or (raw == "" and name != "secret"):
                continue
            values[name] = parse(var, raw) if parse is not None else raw
        for name, value in overrides.items():
            var, parse = _ENV.get(name, (name, None))
            if parse is not None and isinstance(value, str):
                value = parse(var, value)
            elif name in _LIST_FIELDS and not isinstance(value, tuple):
                value = _as_list(name, value)
            values[name] = value
        _collect_provider_env(env, values)
        return cls(**values)

    def with_changes(self, **changes: Any) -> Settings:
        """A copy with some settings changed (validated again)."""
        return replace(self, **changes)

    @property
    def refresh_cookie(self) -> CookieSettings:
        return CookieSettings(
            self.refresh_cookie_name,
            self.refresh_token_ttl_ms,
            self.refresh_cookie_secure,
            self.refresh_cookie_same_site,
            self.refresh_cookie_domain,
            self.refresh_cookie_path,
        )

    @property
    def session_cookie(self) -> CookieSettings:
        return CookieSettings(
            self.session_cookie_name,
            self.session_cookie_ttl_ms,
            self.session_cookie_secure,
            self.session_cookie_same_site,
            self.session_cookie_domain,
            self.session_cookie_path,
        )


def _collect_provider_env(env: Mapping[str, str], values: dict[str, Any]) -> None:
    """Fill ``auth_provider_env`` with the ``AUTH_<NAME>_*`` variables of the listed providers
    (a mapping given as a keyword argument is taken as those variables)."""
    given = values.get("auth_provider_env")
    if isinstance(given, Mapping):
        values["auth_provider_env"] = tuple(sorted((str(k), str(v)) for k, v in given.items()))
        return
    if given is not None:
        values["auth_provider_env"] = tuple(tuple(pair) for pair in given)
        return
    prefixes = tuple(f"AUTH_{name.upper()}_" for name in values.get("auth_providers", ()))
    if prefixes:
        values["auth_provider_env"] = tuple(
            sorted((k, v) for k, v in env.items() if k.startswith(prefixes))
        )


def _check_database_settings(settings: Settings) -> None:
    if settings.db_client == "postgres":  # Directus takes both names
        object.__setattr__(settings, "db_client", "pg")
    if settings.db_client not in (None, "sqlite3", "pg"):
        raise ConfigError(
            f"DB_CLIENT must be pg (or postgres) or sqlite3, not {settings.db_client!r}"
        )
    if settings.db_client == "pg" and not (
        settings.db_connection_string or settings.db_database or settings.db_host
    ):
        raise ConfigError(
            "DB_CLIENT=pg needs DB_CONNECTION_STRING, or DB_HOST/DB_PORT/DB_DATABASE/"
            "DB_USER/DB_PASSWORD"
        )
    if settings.db_port is not None and not 0 < settings.db_port < 65536:
        raise ConfigError("DB_PORT must be a TCP port")
    if not 0 <= settings.db_pool_min <= settings.db_pool_max or settings.db_pool_max < 1:
        raise ConfigError("DB_POOL__MIN and DB_POOL__MAX must satisfy 0 <= min <= max, max >= 1")
    if settings.audit_store == "pg" and settings.db_client != "pg":
        raise ConfigError("TOKENGUARD_AUDIT_STORE=pg needs DB_CLIENT=pg")


def _check_scaling_settings(settings: Settings) -> None:
    if settings.session_cache_ttl_ms < 0:
        raise ConfigError("TOKENGUARD_SESSION_CACHE_TTL cannot be negative")
    if settings.jwks_cache_ms <= 0 or settings.jwks_min_refetch_ms < 0:
        raise ConfigError("TOKENGUARD_JWKS_CACHE_TTL must be positive, _MIN_REFETCH not negative")
    if settings.jwks_url is not None and not settings.jwks_url.startswith(("https://", "http://")):
        raise ConfigError("TOKENGUARD_JWKS_URL must be an http(s) URL")
    path = settings.jwks_path
    if path is not None and (not path.startswith("/") or path.endswith("/") or "?" in path):
        raise ConfigError('TOKENGUARD_JWKS_PATH must start with "/" and not end with one')
    if settings.jwt_keys:
        key_ring_for(settings.jwt_keys)  # loads and checks the PEMs once, at start-up


def token_policy(settings: Settings) -> TokenPolicy:
    """What :mod:`tokenguard.jose` needs of ``settings`` to issue and verify access tokens.

    The key ring is the process's one ring for these settings (shared by issuer and verifier).
    """
    return TokenPolicy(
        secret=settings.secret_bytes,
        algorithm=settings.algorithm,
        issuer=settings.issuer,
        audience=settings.audience,
        leeway_s=settings.leeway_ms / 1000,
        require_exp=not settings.allow_tokens_without_exp,
        max_length=settings.max_token_length,
        accept_hmac=settings.jwt_accept_hmac,
        keys=key_ring_for(
            settings.jwt_keys,
            settings.jwks_url,
            settings.jwks_cache_ms,
            settings.jwks_min_refetch_ms,
        ),
    )


def _check_account_settings(settings: Settings) -> None:
    # The password reset, two-factor and e-mail settings; providers are checked when the
    # SSO registry is built (tokenguard.auth.providers), which knows each driver's needs.
    if settings.password_reset_ttl_ms <= 0:
        raise ConfigError("TOKENGUARD_PASSWORD_RESET_TTL must be a positive duration")
    if settings.auth_password_policy:
        password_policy_pattern(settings.auth_password_policy)
    prefix = settings.tfa_prefix
    if not prefix.startswith("/") or prefix.endswith("/") or prefix.startswith(
        settings.auth_prefix + "/"
    ):
        raise ConfigError(
            'TOKENGUARD_TFA_PREFIX must start with "/", not end with one, and not lie under '
            "the auth prefix"
        )
    if settings.email_transport not in ("smtp", "console"):
        raise ConfigError(
            f"EMAIL_TRANSPORT must be smtp or console, not {settings.email_transport!r}"
        )
    if settings.email_smtp_port is not None and not 0 < settings.email_smtp_port < 65536:
        raise ConfigError("EMAIL_SMTP_PORT must be a TCP port")
    if settings.email_smtp_secure and settings.email_smtp_starttls:
        raise ConfigError("EMAIL_SMTP_SECURE and EMAIL_SMTP_STARTTLS exclude each other")


_REGEX_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "u": 0}


def password_policy_pattern(policy: str) -> re.Pattern[str]:
    """``AUTH_PASSWORD_POLICY`` as a pattern: a regular expression, optionally written as
    Directus stores it, ``/…/flags`` (flags among ``i``, ``m``, ``s``, ``u``). A password
    passes when the pattern is found in it (JavaScript's ``RegExp.test``)."""
    source, flags = policy, 0
    if len(policy) >= 2 and policy.startswith("/"):
        end = policy.rfind("/")
        if end > 0 and all(ch in _REGEX_FLAGS for ch in policy[end + 1 :]):
            source = policy[1:end]
            for ch in policy[end + 1 :]:
                flags |= _REGEX_FLAGS[ch]
    try:
        return re.compile(source, flags)
    except re.error as exc:
        raise ConfigError(
            f"AUTH_PASSWORD_POLICY is not a valid regular expression: {exc}"
        ) from None


def _as_s(name: str, value: Any) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number of seconds, not {value!r}") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"{name} must be a positive number of seconds")
    return seconds


def _as_limit(name: str, value: Any) -> int | None:
    if str(value).strip().lower() in ("infinity", "inf", ""):
        return None  # Directus's default: no limit
    return _as_int(name, value)


#: Directus's WEBSOCKETS_REST_AUTH values.
WEBSOCKET_AUTH_MODES = ("public", "handshake", "strict")


def _check_realtime_settings(settings: Settings) -> None:
    if settings.websockets_rest_auth not in WEBSOCKET_AUTH_MODES:
        raise ConfigError(
            "WEBSOCKETS_REST_AUTH must be public, handshake or strict, "
            f"not {settings.websockets_rest_auth!r}"
        )
    for name in ("websockets_rest_auth_timeout_s", "websockets_heartbeat_period_s"):
        value = getattr(settings, name)
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ConfigError(f"{_ENV[name][0]} must be a positive number of seconds")
    limit = settings.websockets_rest_conn_limit
    if limit is not None and limit < 0:
        raise ConfigError("WEBSOCKETS_REST_CONN_LIMIT cannot be negative")
    for name in (
        "websockets_rest_path", "graphql_path", "graphql_auth_service_path", "openapi_path"
    ):
        path = getattr(settings, name)
        if path is None:
            continue
        if not path.startswith("/") or (len(path) > 1 and path.endswith("/")) or "?" in path:
            raise ConfigError(f'{_ENV[name][0]} must start with "/" and not end with one')


def _as_seconds_ms(name: str, value: Any) -> int:
    # Directus's RATE_LIMITER_DURATION is in seconds (rate-limiter-flexible's `duration`).
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number of seconds, not {value!r}") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"{name} must be a positive number of seconds, not {value!r}")
    return max(1, round(seconds * 1000))


def _as_attempts(name: str, value: Any) -> int:
    # Directus's auth_login_attempts: null turns the lockout off; so do 0 and "false".
    if value is None or str(value).strip().lower() in ("", "null", "false", "0"):
        return 0
    return _as_int(name, value)


def _as_hops(name: str, value: Any) -> int:
    # IP_TRUST_PROXY: false (no proxy), true (one), or how many proxies stand in front.
    text = str(value).strip().lower()
    if text in ("true", "yes", "on"):
        return 1
    if text in ("false", "no", "off", ""):
        return 0
    return _as_int(name, value)
