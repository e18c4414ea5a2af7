"""The route table of tokenguard's HTTP endpoints, and the OpenAPI 3.1 document built from it.

One source of truth: :data:`ENDPOINTS` says, for every route name the
:class:`~tokenguard.http.routes.AuthRouter` can register, which methods it serves and what each
answers. The router refuses to register a name that is not here, answers a method that is not
listed with Directus's 404 ``ROUTE_NOT_FOUND``, and :func:`build_document` walks the router's
own table (paths as configured, providers as loaded) — so a route cannot be served without
being documented, nor documented without being served.

Every operation also lists the answers the guard may give before any route runs (a bad or
doubled token: 400, 401, 403; a store that cannot answer: 503) and, for ``POST`` (and every
method when the app-wide ``RATE_LIMITER_*`` limits are on), the rate limits' 429. ``HEAD`` is
served wherever ``GET`` is, with the same statuses and no body.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from ..config import Settings

__all__ = [
    "ENDPOINTS",
    "Endpoint",
    "Operation",
    "Reply",
    "RouteTable",
    "ServedRoute",
    "build_document",
    "document_body",
]

OPENAPI_VERSION = "3.1.0"


@dataclass(frozen=True, slots=True)
class Reply:
    """One documented answer: a status, and the body schema and headers it carries."""

    status: int
    description: str
    #: A name in ``components.schemas`` (JSON body), or ``None`` for no body.
    schema: str | None = None
    #: Names in ``components.headers``.
    headers: tuple[str, ...] = ()
    #: The body's media type when it is not JSON.
    media_type: str = "application/json"


@dataclass(frozen=True, slots=True)
class Operation:
    """One method of an endpoint."""

    method: str
    summary: str
    replies: tuple[Reply, ...]
    #: A name in ``components.schemas`` for a JSON request body.
    body: str | None = None
    #: The request body's media type when it is not JSON.
    body_media_type: str = "application/json"
    #: Query parameters: (name, JSON schema, description).
    query: tuple[tuple[str, Mapping[str, Any], str], ...] = ()
    #: Path parameters: (name, JSON schema, description); each is required.
    path: tuple[tuple[str, Mapping[str, Any], str], ...] = ()
    #: Which cookies the operation reads: ``refresh``, ``session``, ``sso_state``.
    cookies: tuple[str, ...] = ()
    #: Whether a signed-in user is required (no anonymous alternative in ``security``).
    needs_user: bool = False


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A route name with its operations. ``GET`` implies ``HEAD`` unless ``head`` is false."""

    tag: str
    operations: tuple[Operation, ...]
    head: bool = True

    @property
    def methods(self) -> frozenset[str]:
        names = {op.method for op in self.operations}
        if "GET" in names and self.head:
            names.add("HEAD")
        return frozenset(names)


# -- the endpoints ---------------------------------------------------------------------------

_STRING = {"type": "string"}
_SET_COOKIE = ("Set-Cookie",)
_ERR = "Error"

_TOKENS = Reply(
    200,
    "Signed in. `json` mode: both tokens in the body; `cookie` mode: the access token in the "
    "body and the refresh token in the refresh cookie; `session` mode: only `expires`, and the "
    "session cookie.",
    "TokensResponse",
    _SET_COOKIE,
)
_NO_CONTENT = Reply(204, "Done.", None, _SET_COOKIE)
_REDIRECT = ("redirect", {"type": "string"}, "Where to send the browser after the login.")

ENDPOINTS: dict[str, Endpoint] = {
    "providers": Endpoint(
        "auth",
        (
            Operation(
                "GET",
                "List the authentication providers",
                (Reply(200, "The configured providers.", "ProvidersResponse"),),
                query=(
                    (
                        "sessionOnly",
                        {"type": "string"},
                        "Present (any value): only providers that can sign in with a session.",
                    ),
                ),
            ),
        ),
    ),
    "login": Endpoint(
        "auth",
        (
            Operation(
                "POST",
                "Log in with e-mail and password",
                (
                    _TOKENS,
                    Reply(401, "`INVALID_CREDENTIALS`, `INVALID_OTP` or `USER_SUSPENDED`.", _ERR),
                ),
                body="LoginRequest",
            ),
        ),
    ),
    "ldap_login": Endpoint(
        "ldap",
        (
            Operation(
                "POST",
                "Log in with a directory (LDAP) identifier and password",
                (
                    _TOKENS,
                    Reply(401, "`INVALID_CREDENTIALS`, `INVALID_OTP` or `USER_SUSPENDED`.", _ERR),
                    Reply(503, "`SERVICE_UNAVAILABLE`: the directory cannot be reached.", _ERR),
                ),
                body="LdapLoginRequest",
            ),
        ),
    ),
    "refresh": Endpoint(
        "auth",
        (
            Operation(
                "POST",
                "Exchange a refresh token for new tokens (the refresh token is rotated)",
                (_TOKENS, Reply(401, "`INVALID_CREDENTIALS`: unknown, expired or reused.", _ERR)),
                body="RefreshRequest",
                cookies=("refresh", "session"),
            ),
        ),
    ),
    "logout": Endpoint(
        "auth",
        (
            Operation(
                "POST",
                "End the session of a refresh token; delete the auth cookies sent",
                (_NO_CONTENT,),
                body="RefreshRequest",
                cookies=("refresh", "session"),
            ),
        ),
    ),
    # Not Directus's: a user's own sessions (Directus lists none). The current session is
    # the one the request's access token names (its `sid` claim).
    "sessions": Endpoint(
        "sessions",
        (
            Operation(
                "GET",
                "List the current user's live sessions (the current one marked)",
                (
                    Reply(200, "The sessions, most recently used first.", "SessionsResponse"),
                    Reply(401, "`INVALID_CREDENTIALS`: no signed-in user.", _ERR),
                ),
                needs_user=True,
            ),
            Operation(
                "DELETE",
                "End every session of the current user but the current one",
                (
                    Reply(204, "Done; their access tokens are refused at once."),
                    Reply(401, "`INVALID_CREDENTIALS`: no signed-in user.", _ERR),
                ),
                needs_user=True,
            ),
        ),
    ),
    "session": Endpoint(
        "sessions",
        (
            Operation(
                "DELETE",
                "End one session of the current user",
                (
                    Reply(204, "Ended; its refresh and access tokens are refused at once."),
                    Reply(401, "`INVALID_CREDENTIALS`: no signed-in user.", _ERR),
                    Reply(
                        403,
                        "`FORBIDDEN`: no such session of this user (unknown, ended, or "
                        "another user's: the same answer).",
                        _ERR,
                    ),
                ),
                path=(("id", _STRING, "A session id, as listed by `GET` on the collection."),),
                needs_user=True,
            ),
        ),
    ),
    "password_request": Endpoint(
        "auth",
        (
            Operation(
                "POST",
                "Mail a password reset link (204 whether or not the account exists)",
                (Reply(204, "Accepted."),),
                body="PasswordRequest",
            ),
        ),
    ),
    "password_reset": Endpoint(
        "auth",
        (
            Operation(
                "POST",
                "Set a new password with a reset token",
                (Reply(204, "Password changed; every session of the user ended."),),
                body="PasswordReset",
            ),
        ),
    ),
    "tfa_generate": Endpoint(
        "tfa",
        (
            Operation(
                "POST",
                "Generate a TOTP secret for the current user",
                (Reply(200, "A new secret and its otpauth:// URL.", "TfaSecretResponse"),),
                body="TfaGenerateRequest",
                needs_user=True,
            ),
        ),
    ),
    "tfa_enable": Endpoint(
        "tfa",
        (
            Operation(
                "POST",
                "Enable two-factor authentication with a generated secret and a code",
                (Reply(204, "Enabled."),),
                body="TfaEnableRequest",
                needs_user=True,
            ),
        ),
    ),
    "tfa_disable": Endpoint(
        "tfa",
        (
            Operation(
                "POST",
                "Disable two-factor authentication",
                (Reply(204, "Disabled."),),
                body="TfaDisableRequest",
                needs_user=True,
            ),
        ),
    ),
    "sso_login": Endpoint(
        "sso",
        (
            Operation(
                "GET",
                "Start a single sign-on login: redirect to the provider",
                (Reply(302, "To the provider; the state cookie is set.", None, ("Location",
                       "Set-Cookie")),),
                query=(_REDIRECT, ("prompt", {"type": "string"}, "Present: ask the provider "
                       "to prompt for consent again.")),
            ),
        ),
    ),
    "sso_callback": Endpoint(
        "sso",
        (
            Operation(
                "GET",
                "The provider's answer: sign the user in",
                (
                    _TOKENS,
                    Reply(
                        302,
                        "Signed in, back to `redirect` with the session (or refresh) cookie; "
                        "or a failure, back to `redirect` with `?reason=<CODE>`.",
                        None,
                        ("Location", "Set-Cookie"),
                    ),
                ),
                query=(
                    ("code", {"type": "string"}, "The authorization code."),
                    ("state", {"type": "string"}, "The state sent to the provider."),
                ),
                cookies=("sso_state",),
            ),
            Operation(
                "POST",
                "The provider's answer as a form post (`response_mode=form_post`)",
                (Reply(303, "To the GET callback with the form's fields.", None, ("Location",)),),
                body="FormPost",
                body_media_type="application/x-www-form-urlencoded",
            ),
        ),
    ),
    "saml_metadata": Endpoint(
        "saml",
        (
            Operation(
                "GET",
                "This service provider's SAML metadata (`AUTH_<P>_SP_metadata`)",
                (Reply(200, "The SP metadata.", "XMLDocument", media_type="text/xml"),),
            ),
        ),
    ),
    "saml_login": Endpoint(
        "saml",
        (
            Operation(
                "GET",
                "Start a SAML login: redirect to the IdP with an AuthnRequest",
                (
                    Reply(302, "To the IdP (HTTP-Redirect binding), `RelayState=redirect`.",
                          None, ("Location",)),
                    Reply(400, "`INVALID_PAYLOAD`: a `redirect` that is not allowed.", _ERR),
                ),
                query=(_REDIRECT,),
            ),
        ),
    ),
    "saml_acs": Endpoint(
        "saml",
        (
            Operation(
                "POST",
                "The IdP's SAML response (HTTP-POST binding): sign the user in",
                (
                    _TOKENS,
                    Reply(
                        302,
                        "Signed in, to `RelayState` with the session (or refresh) cookie; or a "
                        "failure, to `RelayState` with `?reason=<CODE>`.",
                        None,
                        ("Location", "Set-Cookie"),
                    ),
                    Reply(400, "`INVALID_PAYLOAD`: a `RelayState` that is not allowed.", _ERR),
                ),
                body="SAMLPost",
                body_media_type="application/x-www-form-urlencoded",
            ),
        ),
    ),
    "saml_logout": Endpoint(
        "saml",
        (
            Operation(
                "POST",
                "End the session cookie's session, then to the IdP's single logout service",
                (
                    Reply(302, "To the IdP's single logout service.", None,
                          ("Location", "Set-Cookie")),
                    Reply(204, "Signed out (the IdP has no single logout service).", None,
                          ("Set-Cookie",)),
                ),
                body="FormPost",
                body_media_type="application/x-www-form-urlencoded",
                cookies=("session",),
            ),
        ),
    ),
    "jwks": Endpoint(
        "keys",
        (
            Operation(
                "GET",
                "The public keys that verify tokenguard's access tokens (JWKS)",
                (Reply(200, "A JSON Web Key Set.", "JWKS"),),
            ),
        ),
    ),
    "graphql_system": Endpoint(
        "graphql",
        (
            Operation(
                "GET",
                "Directus's GraphQL system endpoint (queries only over GET)",
                (
                    Reply(200, "A GraphQL result.", "GraphQLResult"),
                    Reply(405, "`METHOD_NOT_ALLOWED`: a mutation over GET.", _ERR),
                ),
                query=(
                    ("query", {"type": "string"}, "The GraphQL document."),
                    ("variables", {"type": "string"}, "The variables, as JSON."),
                    ("operationName", {"type": "string"}, "The operation to run."),
                ),
            ),
            Operation(
                "POST",
                "Directus's GraphQL system endpoint: `auth_login`, `auth_refresh`…",
                (Reply(200, "A GraphQL result.", "GraphQLResult", _SET_COOKIE),),
                body="GraphQLRequest",
                cookies=("refresh", "session"),
            ),
        ),
        head=False,
    ),
    "graphql_auth_service": Endpoint(
        "graphql",
        (
            Operation(
                "GET",
                "The `Auth` GraphQL service (`login`, `refresh`)",
                (Reply(200, "`{\"ok\": true, \"data\": …}`.", "AuthServiceResult"),),
                query=(
                    ("query", {"type": "string"}, "The GraphQL document."),
                    ("variables", {"type": "string"}, "The variables, as JSON."),
                    ("operationName", {"type": "string"}, "The operation to run."),
                ),
            ),
            Operation(
                "POST",
                "The `Auth` GraphQL service (`login`, `refresh`)",
                (Reply(200, "`{\"ok\": true, \"data\": …}`.", "AuthServiceResult"),),
                body="GraphQLRequest",
            ),
        ),
        head=False,
    ),
    "openapi": Endpoint(
        "meta",
        (
            Operation(
                "GET",
                "This document (OpenAPI 3.1)",
                (Reply(200, "The OpenAPI document.", "OpenAPIDocument"),),
            ),
        ),
    ),
}

#: The guard's refusals, possible before any route: (status, description).
_GUARD_REPLIES = (
    (400, "`INVALID_PAYLOAD`: a bad body, or two tokens in one request."),
    (401, "`INVALID_CREDENTIALS` or `TOKEN_EXPIRED`."),
    (403, "`INVALID_TOKEN`, or `FORBIDDEN` (a cookie-authenticated request from another origin)."),
    (503, "`SERVICE_UNAVAILABLE`: a store or the provider cannot answer."),
)
_RATE_LIMITED = Reply(429, "`REQUESTS_EXCEEDED`: over a rate limit.", _ERR, ("Retry-After",))
_DISABLED = Reply(404, "`ROUTE_NOT_FOUND`: disabled by `AUTH_DISABLE_DEFAULT`.", _ERR)


# -- schemas ---------------------------------------------------------------------------------

_MODE = {"type": "string", "enum": ["json", "cookie", "session"]}


def _object(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


def _data(schema: dict[str, Any]) -> dict[str, Any]:
    return _object({"data": schema}, ("data",))


_SCHEMAS: dict[str, Any] = {
    "Error": _object(
        {
            "errors": {
                "type": "array",
                "minItems": 1,
                "items": _object(
                    {
                        "message": _STRING,
                        "extensions": _object({"code": _STRING}, ("code",)),
                    },
                    ("message", "extensions"),
                ),
            }
        },
        ("errors",),
    ),
    "LoginRequest": _object(
        {
            "email": {"type": "string", "format": "email"},
            "password": _STRING,
            "mode": {**_MODE, "default": "json"},
            "otp": _STRING,
        },
        ("email", "password"),
    ),
    "LdapLoginRequest": _object(
        {
            "identifier": {**_STRING, "description": "The user's name in the directory."},
            "password": _STRING,
            "mode": {**_MODE, "default": "json"},
            "otp": _STRING,
        },
        ("identifier", "password"),
    ),
    "RefreshRequest": _object(
        {
            "refresh_token": {**_STRING, "description": "Required in `json` mode."},
            "mode": {
                **_MODE,
                "description": "Default: `json` when `refresh_token` is given, else `cookie`.",
            },
        }
    ),
    "TokensResponse": _data(
        _object(
            {
                "expires": {"type": "integer", "description": "Access token lifetime, in ms."},
                "access_token": _STRING,
                "refresh_token": _STRING,
            },
            ("expires",),
        )
    ),
    "SessionsResponse": _data(
        {
            "type": "array",
            "items": _object(
                {
                    "id": {**_STRING, "description": "Opaque; names the session in `DELETE`."},
                    "created_on": {
                        "type": "string",
                        "format": "date-time",
                        "description": "The session's login, as far as the store remembers it.",
                    },
                    "last_used_on": {
                        "type": "string",
                        "format": "date-time",
                        "description": "When its newest token was issued (login or refresh).",
                    },
                    "expires": {"type": "string", "format": "date-time"},
                    "ip": {"type": ["string", "null"]},
                    "user_agent": {"type": ["string", "null"]},
                    "origin": {"type": ["string", "null"]},
                    "current": {
                        "type": "boolean",
                        "description": "Whether the request's access token belongs to it.",
                    },
                },
                ("id", "created_on", "last_used_on", "expires", "ip", "user_agent", "origin",
                 "current"),
            ),
        }
    ),
    "ProvidersResponse": _object(
        {
            "data": {
                "type": "array",
                "items": _object(
                    {
                        "name": _STRING,
                        "label": {"type": ["string", "null"]},
                        "driver": _STRING,
                        "icon": {"type": ["string", "null"]},
                    },
                    ("name", "driver"),
                ),
            },
            "disableDefault": {"type": "boolean"},
        },
        ("data", "disableDefault"),
    ),
    "PasswordRequest": _object(
        {"email": {"type": "string", "format": "email"}, "reset_url": _STRING}, ("email",)
    ),
    "PasswordReset": _object({"token": _STRING, "password": _STRING}, ("token", "password")),
    "TfaGenerateRequest": _object({"password": _STRING}, ("password",)),
    "TfaEnableRequest": _object({"secret": _STRING, "otp": _STRING}, ("secret", "otp")),
    "TfaDisableRequest": _object({"otp": _STRING}, ("otp",)),
    "TfaSecretResponse": _data(
        _object({"secret": _STRING, "otpauth_url": _STRING}, ("secret", "otpauth_url"))
    ),
    "FormPost": {"type": "object", "additionalProperties": _STRING},
    "SAMLPost": _object({"SAMLResponse": _STRING, "RelayState": _STRING}, ("SAMLResponse",)),
    "XMLDocument": {"type": "string"},
    "JWKS": _object(
        {
            "keys": {
                "type": "array",
                "items": _object({"kty": _STRING, "kid": _STRING}, ("kty",)),
            }
        },
        ("keys",),
    ),
    "GraphQLRequest": _object(
        {
            "query": _STRING,
            "variables": {"type": ["object", "null"]},
            "operationName": {"type": ["string", "null"]},
        },
        ("query",),
    ),
    "GraphQLResult": _object(
        {
            "data": {"type": ["object", "null"]},
            "errors": {"type": "array", "items": _object({"message": _STRING}, ("message",))},
        }
    ),
    "AuthServiceResult": _object({"ok": {"type": "boolean"}, "data": {}}, ("ok",)),
    "OpenAPIDocument": _object(
        {"openapi": _STRING, "info": {"type": "object"}, "paths": {"type": "object"}},
        ("openapi", "info", "paths"),
    ),
}

_HEADERS: dict[str, Any] = {
    "Set-Cookie": {
        "description": "An auth cookie set or deleted (`HttpOnly`, `SameSite`).",
        "schema": _STRING,
    },
    "Location": {"description": "Where the browser goes next.", "schema": _STRING},
    "Retry-After": {
        "description": "Seconds until the limit resets.",
        "schema": {"type": "integer"},
    },
}


_COOKIE_TEXT = {
    "refresh": "The refresh token (`cookie` mode).",
    "session": "The session token (`session` mode).",
    "sso_state": "The signed login state set by the login route.",
}

# -- the document ----------------------------------------------------------------------------


def _reply(reply: Reply, head: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"description": reply.description}
    if reply.headers:
        out["headers"] = {name: {"$ref": f"#/components/headers/{name}"} for name in reply.headers}
    if reply.schema is not None and not head:
        out["content"] = {
            reply.media_type: {"schema": {"$ref": f"#/components/schemas/{reply.schema}"}}
        }
    return out


def _operation(
    op: Operation,
    method: str,
    tag: str,
    op_id: str,
    cookie_names: Mapping[str, str],
    disabled: bool,
    throttled: bool = False,
) -> dict[str, Any]:
    head = method == "HEAD"
    replies = {r.status: r for r in op.replies}
    if disabled:
        replies = {404: _DISABLED}
    for status, description in _GUARD_REPLIES:
        replies.setdefault(status, Reply(status, description, _ERR))
    if method == "POST" or throttled:
        replies.setdefault(429, _RATE_LIMITED)
    out: dict[str, Any] = {
        "tags": [tag],
        "summary": ("HEAD: " if head else "") + op.summary,
        "operationId": op_id,
        "responses": {str(s): _reply(replies[s], head) for s in sorted(replies)},
    }
    params: list[dict[str, Any]] = []
    for name, schema, description in op.path:
        params.append(
            {"name": name, "in": "path", "required": True, "schema": dict(schema),
             "description": description}
        )
    for name, schema, description in op.query:
        params.append(
            {"name": name, "in": "query", "required": False, "schema": dict(schema),
             "description": description}
        )
    for cookie in op.cookies:
        params.append(
            {"name": cookie_names[cookie], "in": "cookie", "required": False, "schema": _STRING,
             "description": _COOKIE_TEXT[cookie]}
        )
    if params:
        out["parameters"] = params
    if op.body is not None and not head:
        out["requestBody"] = {
            "required": False,
            "content": {
                op.body_media_type: {"schema": {"$ref": f"#/components/schemas/{op.body}"}}
            },
        }
    if op.needs_user:
        out["security"] = [{"bearerAuth": []}, {"accessToken": []}, {"sessionCookie": []}]
    return out


class ServedRoute(NamedTuple):
    """One path the router answers, with the route name and the methods it serves there
    (empty: the route answers 404, as ``/auth/login`` under ``AUTH_DISABLE_DEFAULT``)."""

    path: str
    name: str
    methods: frozenset[str]
    #: The single sign-on provider of an SSO path, and its state cookie's name.
    provider: str | None = None
    state_cookie: str | None = None


class RouteTable(Protocol):
    """What the document is built from (:class:`~tokenguard.http.routes.AuthRouter`)."""

    @property
    def settings(self) -> Settings: ...

    def served(self) -> list[ServedRoute]: ...


def build_document(router: RouteTable) -> dict[str, Any]:
    """The OpenAPI 3.1 document of everything ``router`` serves, as configured."""
    settings = router.settings
    cookie_names = {
        "refresh": settings.refresh_cookie_name,
        "session": settings.session_cookie_name,
    }
    throttled = settings.rate_limiter_enabled or settings.rate_limiter_global_enabled
    paths: dict[str, Any] = {}
    for route in router.served():
        path, name, methods = route.path, route.name, route.methods
        endpoint = ENDPOINTS[name]
        cookies = dict(cookie_names)
        if route.state_cookie is not None:
            cookies["sso_state"] = route.state_cookie
        item: dict[str, Any] = {}
        disabled = not methods
        for op in endpoint.operations:
            for method in ("GET", "HEAD") if op.method == "GET" else (op.method,):
                if method not in (endpoint.methods if disabled else methods):
                    continue
                op_id = f"{method.lower()}_{name}"
                if route.provider:
                    op_id += f"_{route.provider}"
                item[method.lower()] = _operation(
                    op, method, endpoint.tag, op_id, cookies, disabled, throttled
                )
        paths[path] = item
    document: dict[str, Any] = {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "tokenguard authentication API",
            "version": _version(),
            "description": (
                "Directus-compatible authentication endpoints served by tokenguard. Errors "
                'have Directus\'s shape, `{"errors":[{"message":…,"extensions":{"code":…}}]}`. '
                "Each path also answers with one trailing slash."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": _SCHEMAS,
            "headers": _HEADERS,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "accessToken": {
                    "type": "apiKey",
                    "in": "query",
                    "name": settings.query_params[0],
                },
                "sessionCookie": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": settings.session_cookie_name,
                },
            },
        },
        # Anonymous, or any of the three ways Directus reads a token.
        "security": [{}, {"bearerAuth": []}, {"accessToken": []}, {"sessionCookie": []}],
    }
    if settings.public_url:
        document["servers"] = [{"url": settings.public_url.rstrip("/")}]
    return document


def document_body(router: RouteTable) -> bytes:
    """:func:`build_document` as compact JSON."""
    return json.dumps(build_document(router), separators=(",", ":")).encode()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tokenguard")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0"
