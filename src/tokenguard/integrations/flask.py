"""Flask integration: wrap ``app.wsgi_app`` and offer ``current_user`` and ``g.user``.

::

    from tokenguard.integrations.flask import TokenGuardFlask, current_user, require_role

    app = Flask(__name__)
    TokenGuardFlask(app)            # settings from the environment, or as keyword arguments

    @app.get("/admin")
    @require_role("administrator")
    def admin():
        return {"hello": current_user.user}
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import Flask, Response, has_request_context, request
from flask.ctx import _AppCtxGlobals
from werkzeug.local import LocalProxy

from ..app import TokenGuard
from ..errors import AuthError
from ..logs.filter import redaction_filter
from ..principal import Principal
from ..shells.wsgi import ENVIRON_PRINCIPAL, TokenGuardWSGI
from .access import role_refusal, user_refusal

__all__ = ["TokenGuardFlask", "current_user", "get_principal", "require_role", "require_user"]

F = TypeVar("F", bound=Callable[..., Any])


def get_principal() -> Principal:
    """The principal of the current request (raises if the app is not wrapped)."""
    principal = request.environ.get(ENVIRON_PRINCIPAL)
    if principal is None:
        raise RuntimeError("tokenguard is not installed on this app: call TokenGuardFlask(app)")
    return cast(Principal, principal)


#: The current request's :class:`~tokenguard.principal.Principal`.
current_user: Principal = cast(Principal, LocalProxy(get_principal))


def error_response(error: AuthError) -> Response:
    return Response(error.body, status=error.status, content_type="application/json; charset=utf-8")


def require_user(view: F) -> F:
    """Refuse the public caller with 401 ``INVALID_CREDENTIALS``, as Directus's ``/users/me``."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        error = user_refusal(get_principal())
        if error is not None:
            return error_response(error)
        return view(*args, **kwargs)

    return cast(F, wrapper)


def require_role(*roles: str, admin_ok: bool = True) -> Callable[[F], F]:
    """Allow only users with one of ``roles`` (admins too, unless ``admin_ok=False``).

    The public caller gets 401 ``INVALID_CREDENTIALS``; another user 403 ``FORBIDDEN``.
    """

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            error = role_refusal(get_principal(), roles, admin_ok)
            if error is not None:
                return error_response(error)
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorate


class TokenGuardFlask:
    """Install tokenguard on a Flask app (``TokenGuardFlask(app)`` or ``init_app(app)``)."""

    def __init__(
        self, app: Flask | None = None, guard: TokenGuard | None = None, **options: Any
    ) -> None:
        self.guard = guard
        self.options = options
        self.middleware: TokenGuardWSGI | None = None
        if app is not None:
            self.init_app(app)

    def close(self) -> None:
        """Close the guard this extension made (idempotent; one passed in is left to its
        owner). Flask has no shutdown hook: call it when the server stops."""
        if self.middleware is not None:
            self.middleware.close()

    def init_app(self, app: Flask) -> None:
        self.middleware = TokenGuardWSGI(app.wsgi_app, self.guard, **self.options)
        self.guard = self.middleware.core
        app.wsgi_app = self.middleware  # type: ignore[method-assign]
        app.extensions["tokenguard"] = self.guard
        # Flask's own logger reports unhandled errors with the request URL: keep tokens out.
        if redaction_filter() not in app.logger.filters:
            app.logger.addFilter(redaction_filter())

        # ``g.user`` is looked up only when read: a before_request hook would cost every
        # request a call, a proxy lookup and a proxy write, needed or not.
        base = app.app_ctx_globals_class
        if not issubclass(base, _PrincipalGlobals):
            app.app_ctx_globals_class = cast(
                "type[_AppCtxGlobals]", type("TokenGuardGlobals", (_PrincipalGlobals, base), {})
            )


class _PrincipalGlobals(_AppCtxGlobals):
    """``flask.g`` with a default ``user``: the request's principal unless the app set one."""

    def __getattr__(self, name: str) -> Any:
        if name == "user":
            principal = _principal_or_none()
            if principal is not None:
                return principal
        return super().__getattr__(name)

    def get(self, name: str, default: Any | None = None) -> Any:
        if name == "user" and "user" not in self.__dict__:
            principal = _principal_or_none()
            return principal if principal is not None else default
        return super().get(name, default)

    def __contains__(self, item: str) -> bool:
        return super().__contains__(item) or (item == "user" and _principal_or_none() is not None)


def _principal_or_none() -> Principal | None:
    if not has_request_context():
        return None
    return cast("Principal | None", request.environ.get(ENVIRON_PRINCIPAL))
