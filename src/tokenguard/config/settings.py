"""Settings, resolved once at start-up from keyword arguments and the environment.

Environment variables use Directus's names where Directus has one (``SECRET``,
``ACCESS_TOKEN_TTL``, ``SESSION_COOKIE_NAME``…) and a ``TOKENGUARD_`` prefix otherwise.
Keyword arguments win over the environment. Nothing here is read again per request.

Each setting is declared once, on its field (:func:`~tokenguard.config.declare.setting`):
default, environment variable, parser and a line of documentation. What concerns several
settings at once is checked by the small functions at the end of this module.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import ConfigError
from ..jose.keys import key_ring_for
from ..jose.policy import HMAC_ALGORITHMS
from .declare import Declared, declared_settings, setting
from .parsers import (
    SameSite,
    as_attempts,
    as_bool,
    as_duration,
    as_hops,
    as_int,
    as_limit,
    as_list,
    as_lower,
    as_same_site,
    as_seconds,
    as_seconds_ms,
    as_size,
    password_policy_pattern,
)
from .secret import check_secret, generate_secret

__all__ = [
    "ENV_NAMES",
    "SETTINGS",
    "WEBSOCKET_AUTH_MODES",
    "CookieSettings",
    "Settings",
]

#: Directus's WEBSOCKETS_REST_AUTH values.
WEBSOCKET_AUTH_MODES = ("public", "handshake", "strict")

# The groups of the configuration reference, in the order the fields first name them.
TOKENS = "Tokens"
COOKIES = "Cookies"
REQUESTS = "Requests and the /auth routes"
LOGS = "Logs and audit"
STORES = "Stores"
POSTGRES = "PostgreSQL"
SCALING = "Scaling out"
HARDENING = "Hardening"
REALTIME = "WebSockets and GraphQL"
OPENAPI = "OpenAPI document"
ACCOUNTS = "Password reset, two-factor and providers"
EMAIL = "E-mail"


@dataclass(frozen=True, slots=True)
class CookieSettings:
    """Attributes of one cookie; Directus's defaults (HttpOnly always, SameSite=Lax)."""

    name: str
    max_age_ms: int
    secure: bool = False
    same_site: SameSite = "lax"
    domain: str | None = None
    path: str = "/"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything tokenguard needs to know, validated once.

    Build it with :meth:`from_env` (keyword arguments over environment variables) or
    directly. Durations are milliseconds; ``*_TTL`` variables accept Directus's "15m" style.
    """

    # -- tokens ----------------------------------------------------------------------------
    secret: str = setting(
        "", env="SECRET", group=TOKENS, secret=True, shown="— (required)",
        doc="the HMAC key tokens are signed with (at least 32 random bytes)",
    )
    algorithm: str = setting(
        "HS256", env="TOKENGUARD_JWT_ALGORITHM", group=TOKENS,
        doc="HMAC algorithm of the tokens: `HS256`, `HS384` or `HS512`",
    )
    issuer: str = setting(
        "directus", env="TOKENGUARD_JWT_ISSUER", group=TOKENS,
        doc="the `iss` claim tokens are issued with and must carry",
    )
    audience: str | None = setting(
        None, env="TOKENGUARD_JWT_AUDIENCE", group=TOKENS,
        doc="the `aud` claim tokens must carry; unset: tokens with an `aud` are refused",
    )
    leeway_ms: int = setting(
        5_000, env="TOKENGUARD_JWT_LEEWAY", parse=as_duration, group=TOKENS,
        doc="clock skew allowed on `exp` and `iat` (at most 5 minutes)",
    )
    allow_tokens_without_exp: bool = setting(
        False, env="TOKENGUARD_ALLOW_TOKENS_WITHOUT_EXP", parse=as_bool, group=TOKENS,
        doc="accept tokens that never expire (for a migration only)",
    )
    max_token_length: int = setting(
        4096, env="TOKENGUARD_MAX_TOKEN_LENGTH", parse=as_int, group=TOKENS,
        doc="longer tokens are refused before any parsing (64 to 1000000)",
    )
    access_token_ttl_ms: int = setting(
        15 * 60_000, env="ACCESS_TOKEN_TTL", parse=as_duration, group=TOKENS,
        doc="lifetime of an access token",
    )
    refresh_token_ttl_ms: int = setting(
        7 * 86_400_000, env="REFRESH_TOKEN_TTL", parse=as_duration, group=TOKENS,
        doc="lifetime of a refresh token (and of its cookie)",
    )
    session_cookie_ttl_ms: int = setting(
        86_400_000, env="SESSION_COOKIE_TTL", parse=as_duration, group=TOKENS,
        doc="lifetime of a session (the `session` mode's cookie)",
    )
    session_refresh_grace_ms: int = setting(
        10_000, env="SESSION_REFRESH_GRACE_PERIOD", parse=as_duration, group=TOKENS,
        doc="how long a session just rotated by a refresh still answers (`session` mode, tabs)",
    )
    # -- cookies ---------------------------------------------------------------------------
    refresh_cookie_name: str = setting(
        "directus_refresh_token", env="REFRESH_TOKEN_COOKIE_NAME", group=COOKIES,
        doc="name of the refresh token cookie (`cookie` mode)",
    )
    refresh_cookie_secure: bool = setting(
        False, env="REFRESH_TOKEN_COOKIE_SECURE", parse=as_bool, group=COOKIES,
        doc="send the refresh token cookie over HTTPS only",
    )
    refresh_cookie_same_site: SameSite = setting(  # noqa: RUF009 (a field, as field() is)
        "lax", env="REFRESH_TOKEN_COOKIE_SAME_SITE", parse=as_same_site, group=COOKIES,
        doc="`lax`, `strict` or `none` (needs the secure flag); empty: `strict`",
    )
    refresh_cookie_domain: str | None = setting(
        None, env="REFRESH_TOKEN_COOKIE_DOMAIN", group=COOKIES,
        doc="the refresh token cookie's `Domain`; unset: this host only",
    )
    refresh_cookie_path: str = setting(
        "/", env="REFRESH_TOKEN_COOKIE_PATH", group=COOKIES,
        doc="the refresh token cookie's `Path`",
    )
    session_cookie_name: str = setting(
        "directus_session_token", env="SESSION_COOKIE_NAME", group=COOKIES,
        doc="name of the session cookie (`session` mode)",
    )
    session_cookie_secure: bool = setting(
        False, env="SESSION_COOKIE_SECURE", parse=as_bool, group=COOKIES,
        doc="send the session cookie over HTTPS only",
    )
    session_cookie_same_site: SameSite = setting(  # noqa: RUF009 (a field, as field() is)
        "lax", env="SESSION_COOKIE_SAME_SITE", parse=as_same_site, group=COOKIES,
        doc="`lax`, `strict` or `none` (needs the secure flag); empty: `strict`",
    )
    session_cookie_domain: str | None = setting(
        None, env="SESSION_COOKIE_DOMAIN", group=COOKIES,
        doc="the session cookie's `Domain`; unset: this host only",
    )
    session_cookie_path: str = setting(
        "/", env="SESSION_COOKIE_PATH", group=COOKIES,
        doc="the session cookie's `Path`",
    )
    # -- requests, logs and the /auth routes -----------------------------------------------
    query_params: tuple[str, ...] = setting(
        ("access_token",), env="TOKENGUARD_QUERY_PARAMS", parse=as_list, group=REQUESTS,
        doc="comma list of the query parameters a token is read from",
    )
    #: Names redacted in every log on top of tokenguard.redact.DEFAULT_SECRET_NAMES.
    redact_names: tuple[str, ...] = setting(
        (), env="TOKENGUARD_REDACT_NAMES", parse=as_list, group=LOGS,
        doc="comma list of parameter names redacted in logs, besides the default secret names",
    )
    #: Where authentication events are kept besides the "tokenguard.audit" logger:
    #: none, memory, sqlite (DB_FILENAME) or redis (REDIS); the newest audit_max_events.
    audit_store: str = setting(
        "none", env="TOKENGUARD_AUDIT_STORE", parse=as_lower, group=LOGS,
        doc="where audit events are kept: `none`, `memory`, `sqlite`, `redis` or `pg`",
    )
    audit_max_events: int = setting(
        10_000, env="TOKENGUARD_AUDIT_MAX_EVENTS", parse=as_int, group=LOGS,
        doc="how many of the newest audit events the store keeps",
    )
    public_role: str | None = setting(
        None, env="TOKENGUARD_PUBLIC_ROLE", group=REQUESTS,
        doc="role of requests without a token; unset: `null`, as in Directus",
    )
    login_stall_ms: int = setting(
        500, env="LOGIN_STALL_TIME", parse=as_duration, group=REQUESTS,
        doc="every login answer takes at least this long (hides which accounts exist)",
    )
    hash_concurrency: int | None = setting(
        None, env="TOKENGUARD_HASH_CONCURRENCY", parse=as_int, group=REQUESTS, shown="CPU count",
        doc="password hashes a process runs at once (argon2id: 64 MiB each)",
    )
    hash_queue: int | None = setting(
        None, env="TOKENGUARD_HASH_QUEUE", parse=as_int, group=REQUESTS,
        shown="twice the concurrency",
        doc="logins that may wait for a hash beyond those running; more get 503 at once",
    )
    hash_wait_ms: int = setting(
        2_000, env="TOKENGUARD_HASH_WAIT", parse=as_duration, group=REQUESTS, shown="2s",
        doc="longest a login waits for a hash to start before 503 with Retry-After",
    )
    max_payload_bytes: int = setting(
        1024 * 1024, env="MAX_PAYLOAD_SIZE", parse=as_size, group=REQUESTS,
        doc="largest request body the `/auth` routes read (up to `1gb`)",
    )
    auth_prefix: str = setting(
        "/auth", env="TOKENGUARD_AUTH_PREFIX", group=REQUESTS,
        doc="where the `/auth` routes are served",
    )
    db_filename: str | None = setting(
        None, env="DB_FILENAME", group=STORES,
        doc="SQLite file of users and sessions; unset: kept in memory",
    )
    #: ``pg`` keeps users, sessions, one-time claims (and the audit trail, with
    #: TOKENGUARD_AUDIT_STORE=pg) in PostgreSQL; ``sqlite3`` (or unset) uses DB_FILENAME.
    db_client: str | None = setting(
        None, env="DB_CLIENT", parse=as_lower, group=POSTGRES,
        doc="`pg` (or `postgres`): users and sessions in PostgreSQL; `sqlite3` or unset: SQLite",
    )
    db_host: str | None = setting(
        None, env="DB_HOST", group=POSTGRES,
        doc="PostgreSQL host; unset: libpq's default",
    )
    db_port: int | None = setting(
        None, env="DB_PORT", parse=as_int, group=POSTGRES,
        doc="PostgreSQL port; unset: libpq's default",
    )
    db_database: str | None = setting(
        None, env="DB_DATABASE", group=POSTGRES,
        doc="PostgreSQL database; unset: libpq's default",
    )
    db_user: str | None = setting(
        None, env="DB_USER", group=POSTGRES,
        doc="PostgreSQL user; unset: libpq's default",
    )
    db_password: str | None = setting(
        None, env="DB_PASSWORD", group=POSTGRES, secret=True,
        doc="PostgreSQL password",
    )
    db_connection_string: str | None = setting(
        None, env="DB_CONNECTION_STRING", group=POSTGRES, secret=True,
        doc="a PostgreSQL URL or conninfo, instead of the five above",
    )
    #: Connections each process keeps open (at least) and may open (at most) per pool.
    db_pool_min: int = setting(
        1, env="DB_POOL__MIN", parse=as_int, group=POSTGRES,
        doc="connections each process keeps open per pool",
    )
    db_pool_max: int = setting(
        10, env="DB_POOL__MAX", parse=as_int, group=POSTGRES,
        doc="connections each process may open per pool",
    )
    redis_url: str | None = setting(
        None, env="REDIS", group=STORES,
        doc="Redis URL: sessions, one-time claims and counters shared by every process",
    )
    redis_prefix: str = setting(
        "tokenguard:", env="TOKENGUARD_REDIS_PREFIX", group=STORES,
        doc="prefix of every Redis key tokenguard writes",
    )
    strip_query_token: bool = setting(
        True, env="TOKENGUARD_STRIP_QUERY_TOKEN", parse=as_bool, group=REQUESTS,
        doc="remove the token query parameter before the app sees the query string",
    )
    token_cache_size: int = setting(
        10_000, env="TOKENGUARD_TOKEN_CACHE_SIZE", parse=as_int, group=REQUESTS,
        doc="verified tokens remembered per process (`0`: none)",
    )
    public_url: str | None = setting(
        None, env="PUBLIC_URL", group=REQUESTS,
        doc="the public address of the app: reset links, SSO redirects, trusted origin",
    )
    dev: bool = setting(
        False, env="TOKENGUARD_DEV", parse=as_bool, group=REQUESTS,
        doc="development: allow a missing or weak `SECRET` (a throw-away one, loudly)",
    )
    # Scaling out: asymmetric keys with kids (tokenguard.jose.keys), a remote JWKS for
    # verify-only services, and the cross-process session cache (tokenguard.guard.invalidation).
    jwt_keys: str | None = setting(
        None, env="TOKENGUARD_JWT_KEYS", group=SCALING, secret=True,
        doc="asymmetric signing keys with kids: JSON, inline or a file path (see Scaling)",
    )
    jwt_accept_hmac: bool = setting(
        True, env="TOKENGUARD_JWT_ACCEPT_HMAC", parse=as_bool, group=SCALING,
        doc="keep accepting tokens signed with `SECRET` once keys are set (`false` retires HMAC)",
    )
    jwks_url: str | None = setting(
        None, env="TOKENGUARD_JWKS_URL", group=SCALING,
        doc="verify-only mode: tokens checked against this issuer's JWKS, no `SECRET`",
    )
    jwks_path: str | None = setting(
        None, env="TOKENGUARD_JWKS_PATH", group=SCALING,
        shown="`<TOKENGUARD_AUTH_PREFIX>/jwks.json`",
        doc="where the public keys are published",
    )
    jwks_cache_ms: int = setting(
        300_000, env="TOKENGUARD_JWKS_CACHE_TTL", parse=as_duration, group=SCALING,
        doc="how long a fetched key set is used",
    )
    jwks_min_refetch_ms: int = setting(
        10_000, env="TOKENGUARD_JWKS_MIN_REFETCH", parse=as_duration, group=SCALING,
        doc="least time between fetches an unknown `kid` triggers",
    )
    session_cache_ttl_ms: int = setting(
        5_000, env="TOKENGUARD_SESSION_CACHE_TTL", parse=as_duration, group=SCALING,
        doc="how long a checked session is trusted per process (`0`: always ask the store)",
    )
    # Hardening: rate limits (Directus's RATE_LIMITER_* and RATE_LIMITER_GLOBAL_*, on every
    # request the middleware sees), the login lockout, the trusted-proxy hop count and the
    # cookie CSRF check.
    rate_limiter_enabled: bool = setting(
        False, env="RATE_LIMITER_ENABLED", parse=as_bool, group=HARDENING,
        doc="limit requests per client address",
    )
    rate_limiter_points: int = setting(
        50, env="RATE_LIMITER_POINTS", parse=as_int, group=HARDENING,
        doc="requests allowed per address and period",
    )
    rate_limiter_duration_ms: int = setting(
        1_000, env="RATE_LIMITER_DURATION", parse=as_seconds_ms, group=HARDENING,
        doc="the period, in seconds (as in Directus)",
    )
    rate_limiter_store: str = setting(
        "memory", env="RATE_LIMITER_STORE", group=HARDENING,
        doc="where the counts are kept: `memory` or `redis` (uses `REDIS`)",
    )
    rate_limiter_global_enabled: bool = setting(
        False, env="RATE_LIMITER_GLOBAL_ENABLED", parse=as_bool, group=HARDENING,
        doc="also limit all requests together (needs `RATE_LIMITER_ENABLED`)",
    )
    rate_limiter_global_points: int = setting(
        1_000, env="RATE_LIMITER_GLOBAL_POINTS", parse=as_int, group=HARDENING,
        doc="requests allowed in all per period",
    )
    rate_limiter_global_duration_ms: int = setting(
        1_000, env="RATE_LIMITER_GLOBAL_DURATION", parse=as_seconds_ms, group=HARDENING,
        doc="the global period, in seconds",
    )
    login_account_points: int = setting(
        10, env="TOKENGUARD_LOGIN_ACCOUNT_POINTS", parse=as_int, group=HARDENING,
        doc="login attempts allowed per account and period (`0`: off)",
    )
    login_account_duration_ms: int = setting(
        60_000, env="TOKENGUARD_LOGIN_ACCOUNT_DURATION", parse=as_duration, group=HARDENING,
        doc="the period of the per-account login limit",
    )
    auth_login_attempts: int = setting(
        25, env="AUTH_LOGIN_ATTEMPTS", parse=as_attempts, group=HARDENING,
        doc="failed logins in a row that suspend the user (`0` or `null`: off)",
    )
    ip_trust_proxy: int = setting(
        0, env="IP_TRUST_PROXY", parse=as_hops, group=HARDENING, shown="`false`",
        doc="proxies in front whose `X-Forwarded-For` is believed: `false`, `true` (one), a count",
    )
    csrf_protection: bool = setting(
        True, env="TOKENGUARD_CSRF_PROTECTION", parse=as_bool, group=HARDENING,
        doc="refuse cross-site unsafe requests that a session or refresh cookie authenticates",
    )
    csrf_trusted_origins: tuple[str, ...] = setting(
        (), env="TOKENGUARD_CSRF_TRUSTED_ORIGINS", parse=as_list, group=HARDENING,
        doc="comma list of other origins trusted (own origin and `PUBLIC_URL` always are)",
    )
    csrf_require_origin: bool = setting(
        False, env="TOKENGUARD_CSRF_REQUIRE_ORIGIN", parse=as_bool, group=HARDENING,
        doc="refuse such requests when they carry neither `Origin` nor `Referer`",
    )
    # Realtime (WebSocket) and GraphQL; seconds, as Directus counts them here.
    websockets_enabled: bool = setting(
        False, env="WEBSOCKETS_ENABLED", parse=as_bool, group=REALTIME,
        doc="authenticate WebSockets (ASGI); off: WebSocket scopes pass through untouched",
    )
    websockets_rest_enabled: bool = setting(
        True, env="WEBSOCKETS_REST_ENABLED", parse=as_bool, group=REALTIME,
        doc="speak Directus's realtime authentication at `WEBSOCKETS_REST_PATH`",
    )
    websockets_rest_path: str = setting(
        "/websocket", env="WEBSOCKETS_REST_PATH", group=REALTIME,
        doc="where the realtime socket is served",
    )
    websockets_rest_auth: str = setting(
        "handshake", env="WEBSOCKETS_REST_AUTH", group=REALTIME,
        doc="`public`, `handshake` (the first frame authenticates) or `strict` (the upgrade)",
    )
    websockets_rest_auth_timeout_s: float = setting(
        10.0, env="WEBSOCKETS_REST_AUTH_TIMEOUT", parse=as_seconds, group=REALTIME,
        shown="`10` (s)",
        doc="seconds for the first frame, and to authenticate again after expiry",
    )
    websockets_rest_conn_limit: int | None = setting(
        None, env="WEBSOCKETS_REST_CONN_LIMIT", parse=as_limit, group=REALTIME,
        shown="unlimited",
        doc="open realtime sockets allowed; beyond it: 403",
    )
    websockets_heartbeat_enabled: bool = setting(
        True, env="WEBSOCKETS_HEARTBEAT_ENABLED", parse=as_bool, group=REALTIME,
        doc="ping idle sockets (and check a cookie socket's session again)",
    )
    websockets_heartbeat_period_s: float = setting(
        30.0, env="WEBSOCKETS_HEARTBEAT_PERIOD", parse=as_seconds, group=REALTIME,
        shown="`30` (s)",
        doc="seconds between heartbeats",
    )
    graphql_enabled: bool = setting(
        False, env="TOKENGUARD_GRAPHQL_ENABLED", parse=as_bool, group=REALTIME,
        doc="serve Directus's `auth_*` GraphQL mutations (the `graphql` extra)",
    )
    graphql_path: str = setting(
        "/graphql/system", env="TOKENGUARD_GRAPHQL_PATH", group=REALTIME,
        doc="where the GraphQL endpoint is served",
    )
    graphql_auth_service_path: str | None = setting(
        None, env="TOKENGUARD_GRAPHQL_AUTH_SERVICE_PATH", group=REALTIME, shown="off",
        doc="a CollectiveAccess-style GraphQL auth service at this path (e.g. `/service/auth`)",
    )
    # The OpenAPI 3.1 document of the routes tokenguard serves, where Directus serves its own.
    openapi_enabled: bool = setting(
        True, env="TOKENGUARD_OPENAPI_ENABLED", parse=as_bool, group=OPENAPI,
        doc="serve the OpenAPI document of tokenguard's routes; `false`: the path goes to the app",
    )
    openapi_path: str = setting(
        "/server/specs/oas", env="TOKENGUARD_OPENAPI_PATH", group=OPENAPI,
        doc="where the document is served (`GET`, JSON)",
    )
    # Password reset, two-factor, providers and SSO, e-mail.
    password_reset_url_allow_list: tuple[str, ...] = setting(
        (), env="PASSWORD_RESET_URL_ALLOW_LIST", parse=as_list, group=ACCOUNTS,
        doc="comma list of URLs allowed as `reset_url`",
    )
    password_reset_ttl_ms: int = setting(
        3_600_000, env="TOKENGUARD_PASSWORD_RESET_TTL", parse=as_duration, group=ACCOUNTS,
        doc="lifetime of a reset link",
    )
    auth_password_policy: str | None = setting(
        None, env="AUTH_PASSWORD_POLICY", group=ACCOUNTS,
        doc="regular expression (or `/…/flags`) new passwords must match",
    )
    auth_providers: tuple[str, ...] = setting(
        (), env="AUTH_PROVIDERS", parse=as_list, group=ACCOUNTS,
        doc="comma list of provider names, each configured by its `AUTH_<NAME>_*` variables",
    )
    auth_disable_default: bool = setting(
        False, env="AUTH_DISABLE_DEFAULT", parse=as_bool, group=ACCOUNTS,
        doc="hide e-mail and password login (`/auth/login` answers 404)",
    )
    #: The ``AUTH_<NAME>_*`` variables of the providers in ``auth_providers`` (name, value).
    auth_provider_env: tuple[tuple[str, str], ...] = setting(
        (), env=None, group=ACCOUNTS, secret=True, shown="`AUTH_<NAME>_*` of the providers",
        doc="the listed providers' variables (a mapping as a keyword argument; see Single sign-on)",
    )
    tfa_prefix: str = setting(
        "/users/me/tfa", env="TOKENGUARD_TFA_PREFIX", group=ACCOUNTS,
        doc="where the two-factor endpoints live (not under the auth prefix)",
    )
    totp_issuer: str = setting(
        "tokenguard", env="TOKENGUARD_TOTP_ISSUER", group=ACCOUNTS,
        doc="name authenticator apps show",
    )
    email_transport: str = setting(
        "smtp", env="EMAIL_TRANSPORT", group=EMAIL,
        doc="`smtp`, or `console` (development: prints the mail)",
    )
    email_from: str = setting(
        "no-reply@example.com", env="EMAIL_FROM", group=EMAIL,
        doc="sender address",
    )
    email_smtp_host: str = setting(
        "localhost", env="EMAIL_SMTP_HOST", group=EMAIL,
        doc="SMTP server",
    )
    email_smtp_port: int | None = setting(
        None, env="EMAIL_SMTP_PORT", parse=as_int, group=EMAIL, shown="`25`",
        doc="SMTP port (465 secure, 587 STARTTLS)",
    )
    email_smtp_user: str | None = setting(
        None, env="EMAIL_SMTP_USER", group=EMAIL,
        doc="SMTP login (refused in clear to a non-local host)",
    )
    email_smtp_password: str | None = setting(
        None, env="EMAIL_SMTP_PASSWORD", group=EMAIL, secret=True,
        doc="SMTP password",
    )
    email_smtp_secure: bool = setting(
        False, env="EMAIL_SMTP_SECURE", parse=as_bool, group=EMAIL,
        doc="TLS from the start",
    )
    email_smtp_starttls: bool = setting(
        False, env="EMAIL_SMTP_STARTTLS", parse=as_bool, group=EMAIL,
        doc="upgrade to TLS with STARTTLS",
    )
    # Derived, filled in by __post_init__: no setting.
    secret_bytes: bytes = field(default=b"", repr=False, compare=False)

    def __post_init__(self) -> None:
        _resolve_secret(self)
        for check in _CHECKS:
            check(self)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read settings from ``environ`` (default ``os.environ``); keyword arguments win."""
        env = os.environ if environ is None else environ
        declared = {d.name: d for d in declared_settings(cls)}
        unknown = set(overrides) - set(declared)
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for name, d in declared.items():
            var, parse = d.spec.env, d.spec.parse
            if var is None or name in overrides:
                continue
            raw = env.get(var)
            if raw is None or (raw == "" and name != "secret"):
                continue
            values[name] = parse(var, raw) if parse is not None else raw
        for name, value in overrides.items():
            var, parse = declared[name].spec.env or name, declared[name].spec.parse
            if parse is not None and isinstance(value, str):
                value = parse(var, value)
            elif parse is as_list and not isinstance(value, tuple):
                value = as_list(name, value)
            values[name] = value
        _collect_provider_env(env, values)
        return cls(**values)

    def with_changes(self, **changes: Any) -> Settings:
        """A copy with some settings changed (validated again)."""
        return replace(self, **changes)

    @property
    def refresh_cookie(self) -> CookieSettings:
        """The refresh token cookie's attributes (``REFRESH_TOKEN_COOKIE_*``)."""
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
        """The session cookie's attributes (``SESSION_COOKIE_*``)."""
        return CookieSettings(
            self.session_cookie_name,
            self.session_cookie_ttl_ms,
            self.session_cookie_secure,
            self.session_cookie_same_site,
            self.session_cookie_domain,
            self.session_cookie_path,
        )


#: Every declared setting, in field order.
SETTINGS: tuple[Declared, ...] = declared_settings(Settings)
#: Field name -> environment variable, for the settings read from one.
ENV_NAMES: dict[str, str] = {d.name: d.spec.env for d in SETTINGS if d.spec.env is not None}


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


# -- checks, in the order they run: the first failure is the one reported ------------------


def _resolve_secret(settings: Settings) -> None:
    if not settings.secret and settings.jwks_url and not settings.jwt_keys:
        # Verify-only: this service holds no secret, so no HMAC token can pass here.
        object.__setattr__(settings, "secret", generate_secret())
        object.__setattr__(settings, "jwt_accept_hmac", False)
    if not settings.secret:
        if not settings.dev:
            check_secret(settings.secret)
        throwaway = generate_secret()
        warnings.warn(
            "tokenguard: SECRET is not set; TOKENGUARD_DEV is on, so a throw-away random "
            "secret is used. Every token dies when this process stops. Never do this in "
            "production.",
            RuntimeWarning,
            stacklevel=4,  # the caller of Settings(...), past __init__ and __post_init__
        )
        object.__setattr__(settings, "secret", throwaway)
    elif not settings.dev:
        check_secret(settings.secret, settings.algorithm)
    object.__setattr__(settings, "secret_bytes", settings.secret.encode())


def _check_token_settings(settings: Settings) -> None:
    if settings.algorithm not in HMAC_ALGORITHMS:
        raise ConfigError(
            f"TOKENGUARD_JWT_ALGORITHM must be one of {', '.join(HMAC_ALGORITHMS)}, "
            f"not {settings.algorithm!r}"
        )
    for name in ("access_token_ttl_ms", "refresh_token_ttl_ms", "session_cookie_ttl_ms"):
        if getattr(settings, name) <= 0:
            raise ConfigError(f"{ENV_NAMES[name]} must be a positive duration")
    if (
        settings.session_refresh_grace_ms < 0
        or settings.leeway_ms < 0
        or settings.login_stall_ms < 0
    ):
        raise ConfigError("grace period, leeway and stall time cannot be negative")
    if settings.leeway_ms > 300_000:
        raise ConfigError("TOKENGUARD_JWT_LEEWAY above 5 minutes defeats expiry; keep it small")
    if not 64 <= settings.max_token_length <= 1_000_000:
        raise ConfigError("TOKENGUARD_MAX_TOKEN_LENGTH must be between 64 and 1000000")


def _check_parameter_names(settings: Settings) -> None:
    if not settings.query_params:
        raise ConfigError("TOKENGUARD_QUERY_PARAMS needs at least one name")
    for name in settings.redact_names:
        if not name or any(c in name for c in "=&;# \t\r\n"):
            raise ConfigError(
                f"TOKENGUARD_REDACT_NAMES entries are parameter names, not {name!r}"
            )


def _check_audit_kind(settings: Settings) -> None:
    if settings.audit_store not in ("none", "memory", "sqlite", "redis", "pg"):
        raise ConfigError("TOKENGUARD_AUDIT_STORE must be none, memory, sqlite, redis or pg")


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


def _check_audit_settings(settings: Settings) -> None:
    if settings.audit_store == "sqlite" and not settings.db_filename:
        raise ConfigError("TOKENGUARD_AUDIT_STORE=sqlite needs DB_FILENAME")
    if settings.audit_store == "redis" and not settings.redis_url:
        raise ConfigError("TOKENGUARD_AUDIT_STORE=redis needs REDIS (the connection URL)")
    if settings.audit_max_events < 1:
        raise ConfigError("TOKENGUARD_AUDIT_MAX_EVENTS must be positive")


def _check_request_settings(settings: Settings) -> None:
    if settings.hash_concurrency is not None and settings.hash_concurrency < 1:
        raise ConfigError("TOKENGUARD_HASH_CONCURRENCY must be at least 1")
    if settings.hash_queue is not None and settings.hash_queue < 0:
        raise ConfigError("TOKENGUARD_HASH_QUEUE cannot be negative")
    if not 0 < settings.hash_wait_ms <= 60_000:
        raise ConfigError("TOKENGUARD_HASH_WAIT must be between 1ms and 60s")
    if not settings.auth_prefix.startswith("/") or settings.auth_prefix.endswith("/"):
        raise ConfigError('TOKENGUARD_AUTH_PREFIX must start with "/" and not end with one')
    for prefix in ("refresh", "session"):
        if getattr(settings, f"{prefix}_cookie_same_site") == "none" and not getattr(
            settings, f"{prefix}_cookie_secure"
        ):
            upper = "REFRESH_TOKEN" if prefix == "refresh" else "SESSION"
            raise ConfigError(
                f"{upper}_COOKIE_SAME_SITE=none needs {upper}_COOKIE_SECURE=true "
                "(browsers drop such cookies otherwise)"
            )
    if not 0 < settings.max_payload_bytes <= 1024**3:
        raise ConfigError("MAX_PAYLOAD_SIZE must be between 1 byte and 1gb")
    if settings.token_cache_size < 0:
        raise ConfigError("TOKENGUARD_TOKEN_CACHE_SIZE cannot be negative")


def _check_rate_limits(settings: Settings) -> None:
    if settings.rate_limiter_store not in ("memory", "redis"):
        raise ConfigError("RATE_LIMITER_STORE must be memory or redis")
    if settings.rate_limiter_store == "redis" and not settings.redis_url:
        raise ConfigError("RATE_LIMITER_STORE=redis needs REDIS (the connection URL)")
    if settings.rate_limiter_points < 1 or settings.rate_limiter_duration_ms < 1:
        raise ConfigError("RATE_LIMITER_POINTS and RATE_LIMITER_DURATION must be positive")
    if settings.rate_limiter_global_points < 1 or settings.rate_limiter_global_duration_ms < 1:
        raise ConfigError(
            "RATE_LIMITER_GLOBAL_POINTS and RATE_LIMITER_GLOBAL_DURATION must be positive"
        )
    if settings.rate_limiter_global_enabled:
        # As Directus refuses to start: a global limit only makes sense above the
        # per-address one, which must be on (else one client could use the whole budget).
        if not settings.rate_limiter_enabled:
            raise ConfigError("RATE_LIMITER_GLOBAL_ENABLED needs RATE_LIMITER_ENABLED=true")
        global_rate = settings.rate_limiter_global_points / settings.rate_limiter_global_duration_ms
        address_rate = settings.rate_limiter_points / settings.rate_limiter_duration_ms
        if global_rate <= address_rate:
            raise ConfigError(
                "RATE_LIMITER_GLOBAL_POINTS/_DURATION must allow more requests per second "
                "than RATE_LIMITER_POINTS/_DURATION"
            )
    if settings.login_account_points < 0 or settings.login_account_duration_ms < 1:
        raise ConfigError("TOKENGUARD_LOGIN_ACCOUNT_POINTS/_DURATION cannot be negative")
    if settings.auth_login_attempts < 0 or settings.ip_trust_proxy < 0:
        raise ConfigError("AUTH_LOGIN_ATTEMPTS and IP_TRUST_PROXY cannot be negative")


def _check_csrf_settings(settings: Settings) -> None:
    for origin in settings.csrf_trusted_origins:
        if "://" not in origin or origin.endswith("/") or origin.count("/") != 2:
            raise ConfigError(
                "TOKENGUARD_CSRF_TRUSTED_ORIGINS entries are origins such as "
                f"https://app.example.com (scheme, host, optional port), not {origin!r}"
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


def _check_realtime_settings(settings: Settings) -> None:
    if settings.websockets_rest_auth not in WEBSOCKET_AUTH_MODES:
        raise ConfigError(
            "WEBSOCKETS_REST_AUTH must be public, handshake or strict, "
            f"not {settings.websockets_rest_auth!r}"
        )
    for name in ("websockets_rest_auth_timeout_s", "websockets_heartbeat_period_s"):
        value = getattr(settings, name)
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ConfigError(f"{ENV_NAMES[name]} must be a positive number of seconds")
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
            raise ConfigError(f'{ENV_NAMES[name]} must start with "/" and not end with one')


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


_CHECKS = (
    _check_token_settings,
    _check_parameter_names,
    _check_audit_kind,
    _check_database_settings,
    _check_audit_settings,
    _check_request_settings,
    _check_rate_limits,
    _check_csrf_settings,
    _check_account_settings,
    _check_realtime_settings,
    _check_scaling_settings,
)
