"""FastAPI: the principal as a dependency, a Bearer security scheme and the ``/auth`` routes in
the OpenAPI schema.

::

    from fastapi import Depends, FastAPI
    from tokenguard import Principal
    from tokenguard.integrations.fastapi import current_user, install, require_role

    app = FastAPI()
    install(app)  # TokenGuardMiddleware, and Directus-shaped answers to refused dependencies

    @app.get("/me")
    async def me(user: Annotated[Principal, Depends(current_user)]) -> dict[str, str | None]:
        return {"id": user.id}

    @app.get("/reports", dependencies=[Depends(require_role("editor-role"))])
    async def reports() -> list[str]: ...

    @app.get("/admin")
    async def admin(user: Annotated[Principal, Security(current_user, scopes=["admin"])]): ...

The dependencies only read what :class:`~tokenguard.shells.asgi.TokenGuardMiddleware` decided: the
token was already checked (a bad token never reaches the endpoint), so they cost no
verification. ``current_user`` refuses the public caller with 401 ``INVALID_CREDENTIALS``, and
a user lacking one of the ``Security`` scopes (:attr:`~tokenguard.principal.Principal.scopes`:
``authenticated``, ``role:<role>``, ``admin``, ``app``) with 403 ``FORBIDDEN``;
``require_role`` refuses other roles with 403 ``FORBIDDEN`` — Directus's bodies, whether the
middleware came with :func:`install` or with ``app.add_middleware(TokenGuardMiddleware)`` (the
middleware answers the error a dependency raises; :func:`install` also registers
:func:`auth_error_handler`, and adds tokenguard's ``/auth`` routes to ``/openapi.json`` and
``/docs``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from starlette.responses import Response

from ..errors import MissingExtra

try:
    from fastapi import Depends, FastAPI, Request
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes
except ImportError as exc:
    raise MissingExtra("tokenguard.integrations.fastapi", "FastAPI", "fastapi") from exc

from ..app import TokenGuard
from ..errors import AuthError, forbidden, invalid_credentials
from ..http.openapi import build_document
from ..principal import Principal
from ..shells.asgi import TokenGuardMiddleware
from ..types import ASGIApp
from .starlette import error_response, get_principal

__all__ = [
    "auth_error_handler",
    "bearer_scheme",
    "current_user",
    "document_auth_routes",
    "install",
    "optional_user",
    "require_role",
]

#: The security scheme the dependencies declare, so that the OpenAPI schema (and the docs
#: page's "Authorize" button) shows a Bearer token. It never refuses by itself
#: (``auto_error=False``): the middleware has already judged the token, wherever it came from
#: (header, ``access_token`` query parameter or session cookie).
bearer_scheme = HTTPBearer(
    auto_error=False,
    bearerFormat="JWT",
    scheme_name="directusToken",
    description="A Directus access token (JWT) or a user's static token.",
)


async def optional_user(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    """The caller: a user, or the public principal when the request carried no token."""
    return get_principal(request)


async def current_user(
    security_scopes: SecurityScopes,
    principal: Annotated[Principal, Depends(optional_user)],
) -> Principal:
    """The logged-in caller; the public caller gets 401 ``INVALID_CREDENTIALS``.

    Under ``Security(current_user, scopes=[...])`` each scope must be one of the principal's
    (:attr:`~tokenguard.principal.Principal.scopes`), else 403 ``FORBIDDEN``."""
    if not principal.is_authenticated:
        raise invalid_credentials()
    if security_scopes.scopes:
        held = principal.scopes
        for scope in security_scopes.scopes:
            if scope not in held:
                raise forbidden()
    return principal


def require_role(*roles: str, admin_ok: bool = True) -> Callable[..., Awaitable[Principal]]:
    """A dependency allowing only users of one of ``roles`` (and administrators unless
    ``admin_ok=False``): 401 for the public caller, 403 ``FORBIDDEN`` for other users."""

    async def role_required(principal: Annotated[Principal, Depends(current_user)]) -> Principal:
        if principal.role in roles or (admin_ok and principal.admin):
            return principal
        raise forbidden()

    return role_required


async def auth_error_handler(request: Request, exc: Exception) -> Response:
    """An :class:`~tokenguard.errors.AuthError` raised by a dependency or an endpoint, as
    Directus answers it (``{"errors":[…]}``, its status)."""
    if not isinstance(exc, AuthError):  # registered for AuthError only
        raise exc
    return error_response(exc)


def install(app: FastAPI, guard: TokenGuard | None = None, **options: Any) -> None:
    """Wrap ``app`` in :class:`~tokenguard.shells.asgi.TokenGuardMiddleware`, register
    :func:`auth_error_handler` for :class:`~tokenguard.errors.AuthError`, and add the ``/auth``
    routes to the app's OpenAPI document (:func:`document_auth_routes`).

    ``guard`` is shared (you close it); without one, a guard is made from ``options`` and the
    environment when the app first needs it (its first request or OpenAPI document: in the
    worker process, not in a pre-forking parent) and the middleware closes it at the lifespan
    shutdown.
    """
    made: list[TokenGuard] = [] if guard is None else [guard]

    def core() -> TokenGuard:
        if not made:
            made.append(TokenGuard(flavour="async", **options))
        return made[0]

    # Named `app`: Starlette before 0.38 builds middleware as `cls(app=app, **options)`.
    def middleware(app: ASGIApp) -> TokenGuardMiddleware:
        wrapper = TokenGuardMiddleware(app, guard=core())
        wrapper.owns_core = guard is None
        return wrapper

    app.add_middleware(middleware)
    app.add_exception_handler(AuthError, auth_error_handler)
    _document(app, core)


def document_auth_routes(app: FastAPI, guard: TokenGuard) -> None:
    """Merge the OpenAPI paths of the ``/auth`` routes ``guard`` serves into ``app.openapi()``
    (``/openapi.json``, ``/docs``). The app's own paths and components win a name clash;
    tokenguard's clashing components are renamed ``tokenguard_<name>``."""
    _document(app, lambda: guard)


def _document(app: FastAPI, guard: Callable[[], TokenGuard]) -> None:
    original = app.openapi
    ours: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        schema = original()  # FastAPI builds it once and caches it; merged in place, idempotent
        if not ours:
            ours.append(build_document(guard().router))
        _merge(schema, ours[0])
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _merge(schema: dict[str, Any], document: dict[str, Any]) -> None:
    components = schema.setdefault("components", {})
    renames: dict[str, str] = {}
    for section, entries in document["components"].items():
        target = components.setdefault(section, {})
        for name, value in entries.items():
            if name in target and target[name] != value and section != "securitySchemes":
                renames[f"#/components/{section}/{name}"] = (
                    f"#/components/{section}/tokenguard_{name}"
                )
    for section, entries in document["components"].items():
        target = components[section]
        for name, value in entries.items():
            key = f"#/components/{section}/{name}"
            if key in renames:
                name = renames[key].rpartition("/")[2]
            target.setdefault(name, _renamed(value, renames))
    paths = schema.setdefault("paths", {})
    default_security = document.get("security")
    for path, item in document["paths"].items():
        if path in paths:
            continue
        item = _renamed(item, renames)
        if default_security is not None:
            for operation in item.values():
                operation.setdefault("security", default_security)
        paths[path] = item


def _renamed(value: Any, renames: dict[str, str]) -> Any:
    """A copy of ``value`` with its ``$ref`` pointers renamed."""
    if isinstance(value, dict):
        return {
            k: renames.get(v, v) if k == "$ref" and isinstance(v, str) else _renamed(v, renames)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_renamed(v, renames) for v in value]
    return value
