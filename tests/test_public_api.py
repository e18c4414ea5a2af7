"""The public API is a promise: every name below stays importable from where it is today.

A name that goes, or a private name that leaks into an ``__all__``, fails here, so that a
change to the public surface is a deliberate act (in the style of httpx's
``tests/test_exported_members.py``). The modules are the package's face, the integrations',
the client's, and every module the README tells users to import.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import types

import pytest

from tokenguard.errors import MissingExtra

PUBLIC = {
    "tokenguard": {
        "AuthError", "ConfigError", "ENVIRON_PRINCIPAL", "ENVIRON_ROLE", "ENVIRON_USER", "Guard",
        "Principal", "RedactingFilter", "Refusal", "SessionRecord", "Settings",
        "StoreUnavailable", "TokenGuard", "TokenGuardMiddleware", "TokenGuardWSGI", "User",
        "generate_secret",
    },
    "tokenguard.integrations.flask": {
        "DecoratorOrderError", "TokenGuardFlask", "current_user", "get_principal", "require_role", "require_user",
    },
    "tokenguard.integrations.starlette": {
        "TokenGuardBackend", "TokenRefused", "error_response", "get_principal", "on_error",
        "require_role", "require_user",
    },
    "tokenguard.integrations.fastapi": {
        "auth_error_handler", "bearer_scheme", "current_user", "document_auth_routes", "install", "optional_user",
        "require_role",
    },
    "tokenguard.integrations.django": {
        "TokenGuardMiddleware", "TokenGuardUser", "close_guard", "error_response", "get_guard",
        "get_principal", "require_role", "require_user", "requires_role", "requires_user",
    },
    "tokenguard.integrations.django.users": {
        "DjangoPasswords", "DjangoUserStore", "NotAvailable",
    },
    "tokenguard.integrations.drf": {
        "HasRole", "IsAdmin", "RolePermission", "TokenGuardAuthentication", "TokenRefused",
        "anonymous_user",
    },
    "tokenguard.integrations.channels": {
        "TokenGuardChannelsMiddleware",
    },
    "tokenguard.integrations.access": {
        "role_refusal", "user_refusal",
    },
    "tokenguard.client": {
        "AsyncClient", "AsyncTokenStorage", "AuthData", "AuthFailed", "Client", "DirectusError",
        "FileStorage", "Forbidden", "InvalidCredentials", "InvalidOtp", "InvalidPayload",
        "InvalidToken", "MemoryStorage", "Mode", "RefreshFailed", "RequestsExceeded",
        "RouteNotFound", "ServiceUnavailable", "TokenExpired", "TokenStorage",
        "UnexpectedResponse", "UserSuspended", "check_realtime_auth_reply", "error_from_response",
        "raise_for_error", "realtime_auth_message",
    },
    "tokenguard.logs": {
        "LOGGERS", "RedactingFilter", "install_log_redaction", "redaction_filter",
    },
    "tokenguard.errors": {
        "AuthError", "ConfigError", "MissingExtra", "forbidden", "invalid_credentials", "invalid_otp",
        "invalid_payload", "invalid_token", "method_not_allowed", "requests_exceeded",
        "route_not_found", "service_unavailable", "token_expired", "user_suspended",
    },
    "tokenguard.redact": {
        "DEFAULT_COOKIE_NAMES", "DEFAULT_PARAM_NAMES", "DEFAULT_SECRET_NAMES", "PLACEHOLDER",
        "Redactor", "default_redactor", "redact_cookie", "redact_headers", "redact_query",
        "redact_text", "redact_url", "redactor_for", "remove_query_params",
        "settings_cookie_names", "settings_param_names",
    },
    "tokenguard.audit": {
        "AsyncAuditStore", "Audit", "AuditEvent", "AuditStore", "ClientLike", "EVENTS", "Outcome",
    },
    "tokenguard.users": {
        "MIN_STATIC_TOKEN_LENGTH", "aensure_admin", "afind_user", "aseed_from_env", "create_user",
        "ensure_admin", "find_user", "new_static_token", "seed_from_env", "set_password",
        "set_role", "set_static_token", "set_status",
    },
    "tokenguard.stores": {
        "AsyncSessionStore", "AsyncUserStore", "RotateOutcome", "SessionInfo", "SessionRecord",
        "SessionStore", "StoreUnavailable", "User", "UserStore",
    },
    "tokenguard.stores.base": {
        "AsyncOnceStore", "AsyncSessionStore", "AsyncUserStore", "OnceStore", "RotateOutcome",
        "SessionInfo", "SessionRecord", "SessionStore", "StoreUnavailable", "User", "UserStore",
        "family_of", "refresh_token_key", "session_id", "summarize_sessions",
    },
    "tokenguard.stores.sqlalchemy": {
        "AsyncSQLAlchemyUserStore", "SQLAlchemyUserStore", "UserColumns", "sqlalchemy_users",
    },
    "tokenguard.principal": {
        "AuthMethod", "Principal",
    },
    "tokenguard.http.openapi": {
        "ENDPOINTS", "Endpoint", "Operation", "Reply", "RouteTable", "ServedRoute",
        "build_document", "document_body",
    },
    "tokenguard.config": {
        "CookieSettings", "ConfigError", "HMAC_ALGORITHMS", "MIN_SECRET_BYTES", "SameSite",
        "Settings", "WEBSOCKET_AUTH_MODES", "generate_secret", "password_policy_pattern",
        "token_policy", "unknown_settings", "warn_unknown_settings",
    },
    "tokenguard.guard": {
        "Guard", "Outcome", "Refusal",
    },
}

#: Packages whose ``__init__`` is a face: everything public on them is declared.
FACES = ["tokenguard", "tokenguard.client", "tokenguard.integrations.django", "tokenguard.logs"]


def _import(module: str) -> types.ModuleType:
    """The module, or a skip when an optional package it needs is not installed (the core
    tests also run against an install with only some extras); a missing tokenguard module is
    never a skip."""
    try:
        return importlib.import_module(module)
    except MissingExtra as exc:
        pytest.skip(f"{module}: {exc}")
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] == "tokenguard":
            raise
        pytest.skip(f"{module} needs {exc.name}, not installed here")


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_public_names_are_pinned(module: str) -> None:
    mod = _import(module)
    assert set(mod.__all__) == PUBLIC[module]
    assert len(mod.__all__) == len(set(mod.__all__))  # no name declared twice
    for name in mod.__all__:
        assert not name.startswith("_"), f"{module}.{name} is private"
        assert hasattr(mod, name), f"{module}.{name} is declared but missing"


@pytest.mark.parametrize("module", FACES)
def test_a_face_exports_exactly_what_it_declares(module: str) -> None:
    mod = _import(module)
    public = {
        name
        for name, value in vars(mod).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
        and name != "annotations"  # `from __future__ import annotations`
    }
    assert public == set(mod.__all__)


#: Methods promised on public classes besides their modules' names (a user's own sessions).
PUBLIC_METHODS = {
    "tokenguard.client:Client": {"sessions", "revoke_session", "revoke_other_sessions"},
    "tokenguard.client:AsyncClient": {"sessions", "revoke_session", "revoke_other_sessions"},
    "tokenguard.stores.base:SessionStore": {"sessions", "revoke_session"},
    "tokenguard.stores.base:AsyncSessionStore": {"sessions", "revoke_session"},
    "tokenguard.stores.base:SessionInfo": {"id"},
}


@pytest.mark.parametrize("target", sorted(PUBLIC_METHODS))
def test_public_methods_are_pinned(target: str) -> None:
    module, _, name = target.partition(":")
    cls = getattr(_import(module), name)
    for method in PUBLIC_METHODS[target]:
        assert callable(getattr(cls, method, None)) or isinstance(
            getattr(cls, method, None), property
        ), f"{target}.{method} is missing"


def test_moved_modules_are_the_same_objects() -> None:
    # tokenguard.redact and tokenguard.audit moved under tokenguard.logs; the old names alias
    # the new modules' objects, so isinstance checks and monkeypatches agree.
    from tokenguard import audit, redact
    from tokenguard.logs import audit as logs_audit
    from tokenguard.logs import redact as logs_redact

    assert redact.redact_url is logs_redact.redact_url
    assert audit.Audit is logs_audit.Audit


def test_core_does_not_import_frameworks() -> None:
    code = (
        "import sys, tokenguard, tokenguard.guard, tokenguard.auth.service;"
        "print(','.join(m for m in ('flask', 'starlette', 'werkzeug') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # The ASGI shell needs nothing from Starlette; Werkzeug/Flask only for their integrations.
    assert out.stdout.strip() == ""
