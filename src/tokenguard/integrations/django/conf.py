"""The process's guard, built once from Django's settings and the environment.

``settings.TOKENGUARD`` is a dict of keyword settings (the names of
:class:`~tokenguard.config.Settings`: ``{"secret": ..., "public_role": "public"}``, or a store
such as ``"users": MyUserStore()``); whatever it leaves out is read from the environment under
Directus's names (``SECRET``, ``ACCESS_TOKEN_TTL``, ``REDIS``…), as for the other shells.
``{"guard": "myproject.auth.guard"}`` (a dotted path, or the object) uses a
:class:`~tokenguard.app.TokenGuard` you built, and close, yourself.

``{"django_users": True}``, or a dict of
:class:`~tokenguard.integrations.django.users.DjangoUserStore`'s keywords
(``{"django_users": {"roles": {"Editors": "editor"}, "default_role": "viewer"}}``), makes
the project's ``django.contrib.auth`` users tokenguard's users, their passwords checked by
Django's hashers (:class:`~tokenguard.integrations.django.users.DjangoPasswords`). A user
store with a ``passwords`` attribute (a ``DjangoUserStore`` given as ``"users"``) brings its
own password scheme.

Why one *sync*-flavour guard, under WSGI and ASGI alike: the middleware drives its flows with
:func:`~tokenguard.flow.run_sync` under WSGI and with :func:`~tokenguard.flow.run_async` under
ASGI, which runs every blocking step (SQLite, synchronous Redis, password hashing) in a worker
thread, so the event loop never waits. Synchronous stores also belong to no event loop, where
asyncio Redis connections belong to the loop that opened them: Django's test ``Client`` and
``AsyncClient``, and ``async_to_sync`` code, can share the guard (and its in-memory users).
"""

from __future__ import annotations

import atexit
import inspect
import logging
import threading
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from ...app import TokenGuard
from ...auth.passwords import Passwords
from ...errors import ConfigError

__all__ = ["close_guard", "get_guard"]

log = logging.getLogger("tokenguard")


class _ProcessGuard:
    """The one guard of this process, and whether it is ours to close."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.guard: TokenGuard | None = None
        self.owned = False
        self.closes_at_exit = False


_process = _ProcessGuard()


def get_guard() -> TokenGuard:
    """The guard of this process, built on first use from ``settings.TOKENGUARD``.

    Seed users into ``get_guard().users`` (e.g. in an ``AppConfig.ready``), or share it with
    your own code. ``ImproperlyConfigured`` when the settings are wrong (no ``SECRET``…)."""
    guard = _process.guard
    if guard is not None:
        return guard
    with _process.lock:
        if _process.guard is None:
            _process.guard, _process.owned = _build()
            if _process.owned and not _process.closes_at_exit:
                # Neither Django's WSGI handler nor its ASGI handler has a shutdown event (the
                # ASGI one refuses lifespan scopes): process exit is the last chance.
                atexit.register(close_guard)
                _process.closes_at_exit = True
        return _process.guard


def close_guard() -> None:
    """Close the guard built from the settings (idempotent) and forget it: the next
    :func:`get_guard` builds a new one. A guard given as ``{"guard": ...}`` is only forgotten
    (it is yours to close). Called at process exit, and when a test overrides
    ``TOKENGUARD``."""
    with _process.lock:
        guard, owned = _process.guard, _process.owned
        _process.guard, _process.owned = None, False
    if guard is not None and owned:
        try:
            guard.close()
        except Exception as exc:  # at exit, or between tests: report, never raise
            log.warning("closing tokenguard failed: %s", type(exc).__name__)


def _build() -> tuple[TokenGuard, bool]:
    options: dict[str, Any] = dict(getattr(settings, "TOKENGUARD", None) or {})
    given = options.pop("guard", None)
    if given is not None:
        if options:
            raise ImproperlyConfigured(
                "TOKENGUARD: 'guard' takes a ready TokenGuard; give its settings to it instead"
            )
        return _given_guard(given), False
    if "flavour" in options:
        raise ImproperlyConfigured(
            "TOKENGUARD: 'flavour' is not a setting here: one synchronous guard serves "
            "Django under WSGI and ASGI"
        )
    _django_users(options)
    try:
        return TokenGuard(flavour="sync", **options), True
    except ConfigError as exc:
        raise ImproperlyConfigured(f"TOKENGUARD: {exc}") from exc
    except TypeError as exc:  # an unknown keyword
        raise ImproperlyConfigured(f"TOKENGUARD: {exc}") from exc


def _django_users(options: dict[str, Any]) -> None:
    """``"django_users"`` becomes the user store; a store's own password scheme is used."""
    wanted = options.pop("django_users", None)
    if wanted:
        if options.get("users") is not None:
            raise ImproperlyConfigured("TOKENGUARD: give 'users' or 'django_users', not both")
        # Only here: it imports django.contrib.auth, which a project may not install.
        from .users import DjangoUserStore

        keywords = dict(wanted) if isinstance(wanted, dict) else {}
        try:
            options["users"] = DjangoUserStore(**keywords)
        except (TypeError, ConfigError) as exc:
            raise ImproperlyConfigured(f"TOKENGUARD['django_users']: {exc}") from exc
    passwords = getattr(options.get("users"), "passwords", None)
    if isinstance(passwords, Passwords):
        options.setdefault("passwords", passwords)


def _given_guard(given: Any) -> TokenGuard:
    if isinstance(given, str):
        given = import_string(given)
    if not isinstance(given, TokenGuard):
        raise ImproperlyConfigured("TOKENGUARD['guard'] must be a TokenGuard or its dotted path")
    for store, method in ((given.users, "get_by_token_hash"), (given.sessions, "get")):
        if inspect.iscoroutinefunction(getattr(store, method, None)):
            # run_sync cannot drive them, and under ASGI they would be bound to one loop.
            raise ImproperlyConfigured(
                "TOKENGUARD['guard'] has asynchronous stores: build it with flavour='sync'"
            )
    return given


def _settings_changed(*, setting: str, **_: Any) -> None:
    # override_settings(TOKENGUARD=...) in a test: the next middleware builds a new guard.
    if setting == "TOKENGUARD":
        close_guard()


setting_changed.connect(_settings_changed, dispatch_uid="tokenguard.integrations.django")
