"""Managing users: create them, set roles, passwords and static tokens.

Used by the command line and by apps that seed users at start-up. These are administrative
operations, not on any request path. Each is written once as a flow
(:mod:`tokenguard.flow`): the plain functions drive a synchronous
:class:`~tokenguard.stores.base.UserStore`; the ``a``-prefixed ones (:func:`afind_user`,
:func:`aensure_admin`, :func:`aseed_from_env`) are awaited from an event loop and take either
flavour of store (an ASGI app whose users live in PostgreSQL has an async one), with password
hashing off the loop.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, get_args

from .auth.passwords import hash_password
from .flow import Call, Flow, run_async, run_sync
from .jose.tokens import hash_token
from .stores.base import AsyncUserStore, User, UserStatus, UserStore

__all__ = [
    "MIN_STATIC_TOKEN_LENGTH",
    "aensure_admin",
    "afind_user",
    "aseed_from_env",
    "create_user",
    "ensure_admin",
    "find_user",
    "new_static_token",
    "seed_from_env",
    "set_password",
    "set_role",
    "set_static_token",
    "set_status",
]

#: Shorter static tokens are refused: a stored SHA-256 of a guessable token is guessable.
MIN_STATIC_TOKEN_LENGTH = 16


def new_static_token() -> str:
    """A fresh static token: 32 random bytes, URL-safe (43 characters)."""
    return secrets.token_urlsafe(32)


def find_user(store: UserStore, email_or_id: str) -> User:
    """The user with that e-mail (case-insensitive) or id; ``LookupError`` if none."""
    return run_sync(_find_user(store, email_or_id))


async def afind_user(store: UserStore | AsyncUserStore, email_or_id: str) -> User:
    """:func:`find_user` from an event loop, for either flavour of store (e.g. an ASGI
    view's ``GET /users/me``)."""
    return await run_async(_find_user(store, email_or_id))


def _find_user(store: UserStore | AsyncUserStore, email_or_id: str) -> Flow[User]:
    user = yield Call(store.get_by_email, (email_or_id,))
    if user is None:
        user = yield Call(store.get_by_id, (email_or_id,))
    if user is None:
        raise LookupError(f"no user {email_or_id!r}")
    return user  # type: ignore[no-any-return]


def create_user(
    store: UserStore,
    email: str,
    *,
    password: str | None = None,
    role: str | None = None,
    admin_access: bool = False,
    app_access: bool = False,
    first_name: str | None = None,
    last_name: str | None = None,
) -> User:
    """Create an active user; the password is stored as an argon2id hash only."""
    user = _new_user(
        email,
        role=role,
        admin_access=admin_access,
        app_access=app_access or admin_access,
        first_name=first_name,
        last_name=last_name,
    )
    return run_sync(_create_user(store, user, password))


def _new_user(email: str, **fields: Any) -> User:
    if "@" not in email:
        raise ValueError(f"{email!r} is not an e-mail address")
    return User(id=str(uuid.uuid4()), email=email, **fields)


def _hash(password: str) -> Call:
    # Blocking: under an event loop it runs in the process's hashing pool, off the loop.
    return Call(hash_password, (password,), blocking=True)


def _create_user(
    store: UserStore | AsyncUserStore, user: User, password: str | None
) -> Flow[User]:
    if password:
        user = replace(user, password_hash=(yield _hash(password)))
    return (yield Call(store.create, (user,)))  # type: ignore[no-any-return]


def set_password(store: UserStore, email_or_id: str, password: str) -> User:
    """Replace a user's password (stored as an argon2id hash only)."""
    return run_sync(_set_password(store, email_or_id, password))


def _set_password(
    store: UserStore | AsyncUserStore, email_or_id: str, password: str
) -> Flow[User]:
    user = yield from _find_user(store, email_or_id)
    password_hash = yield _hash(password)
    updated = yield Call(store.update, (user.id,), {"password_hash": password_hash})
    if updated is None:
        raise LookupError(f"no user {email_or_id!r}")  # deleted meanwhile
    return updated  # type: ignore[no-any-return]


def set_role(
    store: UserStore,
    email_or_id: str,
    role: str | None,
    *,
    admin_access: bool | None = None,
    app_access: bool | None = None,
) -> User:
    """Change a user's role (and optionally its admin/app access flags).

    This changes the store only: access tokens already issued keep their old claims until
    :meth:`TokenGuard.revoke_user <tokenguard.app.TokenGuard.revoke_user>` voids them (the
    command line does so).
    """
    user = find_user(store, email_or_id)
    changes: dict[str, object] = {"role": role}
    if admin_access is not None:
        changes["admin_access"] = admin_access
    if app_access is not None:
        changes["app_access"] = app_access
    updated = store.update(user.id, **changes)
    assert updated is not None
    return updated


def set_status(store: UserStore, email_or_id: str, status: UserStatus) -> User:
    """Change a user's status; only ``active`` users can log in or use their static token.

    As with :func:`set_role`, access tokens already issued stay valid until
    :meth:`TokenGuard.revoke_user <tokenguard.app.TokenGuard.revoke_user>` voids them.
    """
    if status not in get_args(UserStatus):
        raise ValueError(f"{status!r} is not a user status")
    user = find_user(store, email_or_id)
    updated = store.update(user.id, status=status)
    assert updated is not None
    return updated


def set_static_token(store: UserStore, email_or_id: str, token: str | None = None) -> str:
    """Give a user a static token (a new random one unless ``token`` is given) and return it.

    Only its SHA-256 is stored: show the returned value once, it cannot be read back.
    Passing ``token=""`` removes the user's static token.
    """
    return run_sync(_set_static_token(store, email_or_id, token))


def _set_static_token(
    store: UserStore | AsyncUserStore, email_or_id: str, token: str | None
) -> Flow[str]:
    user = yield from _find_user(store, email_or_id)
    if token == "":
        yield Call(store.update, (user.id,), {"token_hash": None})
        return ""
    if token is None:
        token = new_static_token()
    if len(token) < MIN_STATIC_TOKEN_LENGTH:
        raise ValueError(f"a static token needs at least {MIN_STATIC_TOKEN_LENGTH} characters")
    yield Call(store.update, (user.id,), {"token_hash": hash_token(token)})
    return token


def ensure_admin(
    store: UserStore,
    email: str,
    password: str | None = None,
    token: str | None = None,
    *,
    role: str = "administrator",
) -> User:
    """Create the administrator if missing (as Directus does from ``ADMIN_EMAIL`` and
    ``ADMIN_PASSWORD``); set the password and static token (``ADMIN_TOKEN``) when given.

    Safe to call from every worker of a server at once: the one that loses the race to create
    the user finds it made by the winner and goes on as if it had existed."""
    return run_sync(_ensure_admin(store, email, password, token, role))


async def aensure_admin(
    store: UserStore | AsyncUserStore,
    email: str,
    password: str | None = None,
    token: str | None = None,
    *,
    role: str = "administrator",
) -> User:
    """:func:`ensure_admin` from an event loop, for either flavour of store."""
    return await run_async(_ensure_admin(store, email, password, token, role))


def _ensure_admin(
    store: UserStore | AsyncUserStore,
    email: str,
    password: str | None,
    token: str | None,
    role: str,
) -> Flow[User]:
    user = yield Call(store.get_by_email, (email,))
    if user is None:
        try:
            admin = _new_user(email, role=role, admin_access=True, app_access=True)
            user = yield from _create_user(store, admin, password)
            password = None  # just set
        except ValueError:
            # A sibling worker created it between our lookup and our insert (the store's
            # unique e-mail refused ours); any other clash is a real error.
            user = yield Call(store.get_by_email, (email,))
            if user is None:
                raise
    if password:
        user = yield from _set_password(store, user.id, password)
    if token:
        yield from _set_static_token(store, user.id, token)
    return (yield from _find_user(store, user.id))


def seed_from_env(store: UserStore, environ: Mapping[str, str] | None = None) -> User | None:
    """Seed the administrator from ``ADMIN_EMAIL``, ``ADMIN_PASSWORD`` and ``ADMIN_TOKEN``
    when they are set, like Directus's bootstrap; returns the admin, or ``None``."""
    seed = _seed(environ)
    return None if seed is None else ensure_admin(store, *seed)


async def aseed_from_env(
    store: UserStore | AsyncUserStore, environ: Mapping[str, str] | None = None
) -> User | None:
    """:func:`seed_from_env` from an event loop (an ASGI app's lifespan), for either flavour
    of store."""
    seed = _seed(environ)
    return None if seed is None else await aensure_admin(store, *seed)


def _seed(environ: Mapping[str, str] | None) -> tuple[str, str | None, str | None] | None:
    env = os.environ if environ is None else environ
    email = env.get("ADMIN_EMAIL")
    if not email:
        return None
    return email, env.get("ADMIN_PASSWORD") or None, env.get("ADMIN_TOKEN") or None
