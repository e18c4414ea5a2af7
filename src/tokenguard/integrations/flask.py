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
import inspect
import os
import weakref
from collections.abc import Callable
from typing import Any, TypeVar, cast

from werkzeug.local import LocalProxy

from ..errors import MissingExtra

try:
    from flask import Flask, Response, has_request_context, request
    from flask.ctx import _AppCtxGlobals
except ImportError as exc:
    raise MissingExtra("tokenguard.integrations.flask", "Flask", "flask") from exc

from ..app import TokenGuard
from ..config import Settings, warn_unknown_settings
from ..config.settings import ENV_NAMES
from ..errors import AuthError
from ..logs.filter import redaction_filter
from ..principal import Principal
from ..shells.wsgi import ENVIRON_PRINCIPAL, TokenGuardWSGI
from .access import role_refusal, user_refusal

__all__ = [
    "DecoratorOrderError",
    "TokenGuardFlask",
    "current_user",
    "get_principal",
    "require_role",
    "require_user",
]

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


#: The views a decorator below guarded, as they were before it: one of them registered as a
#: route means the decorator was written above ``@app.route`` and the route is unguarded.
_guarded_views: weakref.WeakSet[Callable[..., Any]] = weakref.WeakSet()
#: The apps TokenGuardFlask is installed on, whose routes a late decorator is checked against.
_apps: weakref.WeakSet[Flask] = weakref.WeakSet()


class DecoratorOrderError(TypeError):
    """A tokenguard decorator written above ``@app.route``: the route would be left open."""


def _order_error(view: Callable[..., Any], rule: str | None = None) -> DecoratorOrderError:
    where = f" (route {rule})" if rule else ""
    return DecoratorOrderError(
        f"{view.__qualname__}{where}: @require_user / @require_role must be written below "
        "@app.route (nearer the function). Written above it, Flask registered the view before "
        "the check was added, and the route would answer without it. Swap the two decorators."
    )


def _check_registered(view: Callable[..., Any]) -> None:
    for app in list(_apps):
        for rule in app.url_map.iter_rules():
            if app.view_functions.get(rule.endpoint) is view:
                raise _order_error(view, rule.rule)


def _check_app(app: Flask) -> None:
    for rule in app.url_map.iter_rules():
        registered = app.view_functions.get(rule.endpoint)
        if registered is not None and registered in _guarded_views:
            raise _order_error(registered, rule.rule)


def _guarded(check: Callable[[Principal], AuthError | None]) -> Callable[[F], F]:
    def decorate(view: F) -> F:
        _check_registered(view)  # a route defined on an app already wrapped
        _guarded_views.add(view)
        if inspect.iscoroutinefunction(view):
            # Flask runs an `async def` view through app.ensure_sync, which must see a coroutine
            # function: a sync wrapper would hand it an un-awaited coroutine.
            @functools.wraps(view)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                error = check(get_principal())
                if error is not None:
                    return error_response(error)
                return await view(*args, **kwargs)

            return cast(F, async_wrapper)

        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            error = check(get_principal())
            if error is not None:
                return error_response(error)
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorate


#: Refuse the public caller with 401 ``INVALID_CREDENTIALS``, as Directus's ``/users/me``.
#: Write it below ``@app.route`` (nearer the function); above it, Flask would register the
#: unguarded view, and :class:`DecoratorOrderError` says so when the route is defined.
require_user = _guarded(user_refusal)


def require_role(*roles: str, admin_ok: bool = True) -> Callable[[F], F]:
    """Allow only users with one of ``roles`` (admins too, unless ``admin_ok=False``).

    The public caller gets 401 ``INVALID_CREDENTIALS``; another user 403 ``FORBIDDEN``.
    Works on ``async def`` views; written above ``@app.route`` it raises
    :class:`DecoratorOrderError`.
    """
    return _guarded(lambda principal: role_refusal(principal, roles, admin_ok))


class TokenGuardFlask:
    """Install tokenguard on a Flask app (``TokenGuardFlask(app)`` or ``init_app(app)``)."""

    def __init__(
        self, app: Flask | None = None, guard: TokenGuard | None = None, **options: Any
    ) -> None:
        self.guard = guard
        self.options = options
        self.middleware: TokenGuardWSGI | None = None
        #: The guard this extension made (and closes), or None when one was given.
        self._made: TokenGuard | None = None
        if app is not None:
            self.init_app(app)

    def close(self) -> None:
        """Close the guard this extension made (idempotent; one passed in is left to its
        owner). Flask has no shutdown hook: call it when the server stops."""
        if self._made is not None:
            self._made.close()

    def init_app(self, app: Flask) -> None:
        """Install on ``app``. Settings come from the keyword arguments given to the
        extension, then ``app.config`` (the environment variables' names: ``SECRET``,
        ``ACCESS_TOKEN_TTL``, ``TOKENGUARD_*``…), then the environment."""
        _check_app(app)  # routes defined before: a decorator written above one of them
        _apps.add(app)
        _watch_registrations(app)
        if self.guard is None:
            environ = {**os.environ, **_config_settings(app)}
            warn_unknown_settings(environ)
            self._made = self.guard = TokenGuard(
                Settings.from_env(environ, **self.options), flavour="sync"
            )
        self.middleware = TokenGuardWSGI(app.wsgi_app, self.guard)
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


_SETTING_NAMES = frozenset(ENV_NAMES.values())


def _config_settings(app: Flask) -> dict[str, Any]:
    """The entries of the app's config that name tokenguard settings (or provider variables),
    as Flask extensions read theirs.

    Flask's own keys are Flask's even where Directus uses the same name: ``SESSION_COOKIE_NAME``,
    ``_DOMAIN``, ``_PATH`` and ``_SECURE`` configure Flask's session cookie, so tokenguard's
    session cookie takes those from the environment or keyword arguments only."""
    flask_own = app.default_config.keys()
    return {
        key: _as_text(value)
        for key, value in app.config.items()
        if key not in flask_own
        and (key in _SETTING_NAMES or key.startswith(("TOKENGUARD_", "AUTH_")))
    }


def _as_text(value: Any) -> Any:
    # Read as the environment's text would be: True -> "true", 900 -> "900", a list of
    # names -> "a,b"; anything else is handed over as it is (and refused if it is wrong).
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return ",".join(str(item) for item in value)
    return value


def _watch_registrations(app: Flask) -> None:
    """Check each route registered from now on, blueprints' included (they register through
    ``app.add_url_rule`` when the blueprint is registered, long after their decorators ran)."""
    if getattr(app.add_url_rule, "_tokenguard_checked", False):
        return
    register = app.add_url_rule

    @functools.wraps(register)
    def add_url_rule(rule: str, *args: Any, **kwargs: Any) -> None:
        view = kwargs.get("view_func", args[1] if len(args) > 1 else None)
        if view is not None and view in _guarded_views:
            raise _order_error(view, rule)
        register(rule, *args, **kwargs)

    add_url_rule._tokenguard_checked = True  # type: ignore[attr-defined]
    app.add_url_rule = add_url_rule  # type: ignore[method-assign]


def _principal_or_none() -> Principal | None:
    if not has_request_context():
        return None
    return cast("Principal | None", request.environ.get(ENVIRON_PRINCIPAL))
