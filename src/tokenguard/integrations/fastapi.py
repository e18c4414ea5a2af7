"""FastAPI: the principal as a dependency, and a Bearer security scheme in the OpenAPI schema.

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

The dependencies only read what :class:`~tokenguard.shells.asgi.TokenGuardMiddleware` decided: the
token was already checked (a bad token never reaches the endpoint), so they cost no
verification. ``current_user`` refuses the public caller with 401 ``INVALID_CREDENTIALS``;
``require_role`` refuses other roles with 403 ``FORBIDDEN`` — both Directus's bodies, through
the exception handler :func:`install` registers (:func:`auth_error_handler`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from starlette.responses import Response

from ..errors import MissingExtra

try:
    from fastapi import Depends, FastAPI, Request
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
except ImportError as exc:
    raise MissingExtra("tokenguard.integrations.fastapi", "FastAPI", "fastapi") from exc

from ..app import TokenGuard
from ..errors import AuthError, forbidden, invalid_credentials
from ..principal import Principal
from ..shells.asgi import TokenGuardMiddleware
from .starlette import error_response, get_principal

__all__ = [
    "auth_error_handler",
    "bearer_scheme",
    "current_user",
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


async def current_user(principal: Annotated[Principal, Depends(optional_user)]) -> Principal:
    """The logged-in caller; the public caller gets 401 ``INVALID_CREDENTIALS``."""
    if not principal.is_authenticated:
        raise invalid_credentials()
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
    """Wrap ``app`` in :class:`~tokenguard.shells.asgi.TokenGuardMiddleware` (given ``guard``, or
    one made from ``options`` and the environment, closed at the lifespan shutdown) and register
    :func:`auth_error_handler` for :class:`~tokenguard.errors.AuthError`."""
    # Our ASGI types are structural (MutableMapping scopes), Starlette's are its own aliases.
    app.add_middleware(TokenGuardMiddleware, guard=guard, **options)  # type: ignore[arg-type]
    app.add_exception_handler(AuthError, auth_error_handler)
