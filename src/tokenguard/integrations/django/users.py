"""Django's own users (``django.contrib.auth``, any ``AUTH_USER_MODEL``) as tokenguard's users.

::

    # settings.py
    INSTALLED_APPS = [..., "django.contrib.auth", "django.contrib.contenttypes"]
    TOKENGUARD = {"django_users": {"roles": {"Editors": "editor"}}}

With it ``/auth/login``, ``/auth/refresh`` and ``@directus/sdk`` work with the accounts the
project already has, without a migration. How a Django user reads as a tokenguard user:

- ``id``: the primary key as a string (an integer or a UUID key works);
- ``email``: the model's ``EMAIL_FIELD`` (or ``email_field``), looked up case-insensitively
  with the database's ``iexact``; when two accounts share an e-mail up to case, only an exact
  match is found, and two exact matches are none (Django's ``User`` does not make e-mails
  unique: the store refuses to guess);
- ``password_hash``: Django's encoded ``password``, checked by Django's own hashers
  (:class:`DjangoPasswords`: ``PASSWORD_HASHERS``, the hash upgraded as Django would);
- ``status``: ``is_active`` is "active", otherwise "suspended" (the login lockout sets
  ``is_active = False``, as tokenguard suspends its own users);
- ``admin_access``: ``is_superuser``; ``app_access``: ``is_staff`` or ``is_superuser``
  (administrators reach the app, as in Directus);
- ``role``: the first group of ``roles`` (Django group name -> role name, in order) the user
  belongs to, else ``default_role``.

Static tokens, two-factor secrets, external identifiers (single sign-on) and providers have no
column in Django's ``User``. ``columns={"token_hash": "api_token_sha256", ...}`` names fields of
a custom user model that hold them; without one, no static token authenticates, and writing
one (``tokenguard tokens set``, enabling two-factor, an SSO registration) fails with
:class:`NotAvailable`, a ``ValueError`` saying which column is missing.

Every call is one short use of Django's ORM, which is synchronous: under Django's ASGI handler
the middleware runs the store in a worker thread (``io_bound``), never on the event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import fields, replace
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import (
    check_password,
    get_hasher,
    identify_hasher,
    is_password_usable,
    make_password,
)
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import DEFAULT_DB_ALIAS, DatabaseError, IntegrityError, connections, transaction

from ...auth.passwords import Passwords
from ...errors import ConfigError
from ...stores.base import StoreUnavailable, User

__all__ = ["DjangoPasswords", "DjangoUserStore", "NotAvailable"]

log = logging.getLogger("tokenguard")

#: The user fields a custom model may hold in a column of its own (``columns=``).
OPTIONAL_COLUMNS = ("token_hash", "tfa_secret", "external_identifier", "provider")
_WHAT = {
    "token_hash": "static tokens are",
    "tfa_secret": "two-factor authentication is",
    "external_identifier": "single sign-on identities are",
    "provider": "login providers other than the default are",
}
_DEFAULTS = {f.name: f.default for f in fields(User) if f.name not in ("id", "email")}
_WRITABLE = frozenset(f.name for f in fields(User)) - {"id"}


class NotAvailable(ValueError):
    """A user field the Django user model has no column for (see the module docstring)."""


class DjangoPasswords(Passwords):
    """Passwords checked and made by Django's hashers (``PASSWORD_HASHERS``), so that a
    password works the same at ``/auth/login`` and in Django's admin.

    :meth:`needs_rehash` asks what ``check_password`` asks before calling its setter (another
    preferred hasher, or more iterations): the login then stores :meth:`hash`'s
    ``make_password`` value. An argon2id hash tokenguard wrote (its CLI) still verifies when
    Django has no argon2 hasher configured, and is replaced at the next login. An unknown
    account costs one ``make_password``, as Django's ``ModelBackend`` does.
    """

    def hash(self, password: str) -> str:
        """``make_password(password)`` with Django's preferred hasher."""
        return str(make_password(password))

    @property
    def warm(self) -> bool:
        return True  # Django's hashers need no dummy hash made in advance

    def warm_up(self) -> None:
        """Nothing to prepare (see :attr:`warm`)."""

    def verify(self, password_hash: str | None, password: str) -> bool:
        """Django's ``check_password``, without its setter (see :meth:`needs_rehash`)."""
        if not password_hash or not is_password_usable(password_hash):
            self.burn(password)
            return False
        if not _django_knows(password_hash):
            return super().verify(password_hash, password)  # argon2id from tokenguard
        try:
            return bool(check_password(password, password_hash))
        except (UnicodeError, ValueError):  # a lone surrogate from JSON
            return False

    def burn(self, password: str) -> None:
        """Spend what checking one password costs, as Django does for an unknown user."""
        try:
            make_password(password)
        except (UnicodeError, ValueError):
            super().burn(password)

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether Django would re-encode ``password_hash`` after a successful check."""
        if not password_hash or not is_password_usable(password_hash):
            return False
        if not _django_knows(password_hash):
            return True
        hasher = identify_hasher(password_hash)
        preferred = get_hasher("default")
        return bool(hasher.algorithm != preferred.algorithm or preferred.must_update(password_hash))


def _django_knows(encoded: str) -> bool:
    try:
        identify_hasher(encoded)
    except ValueError:
        return False
    return True


def _as_django(password_hash: str | None) -> str | None:
    # tokenguard's argon2id PHC string in Django's encoding ("argon2" + PHC), which Django's
    # Argon2PasswordHasher reads; anything else is stored as it is.
    if password_hash and password_hash.startswith("$argon2"):
        return "argon2" + password_hash
    return password_hash


class DjangoUserStore:
    """A :class:`~tokenguard.stores.base.UserStore` over Django's user model.

    ``roles`` maps Django group names to role names (the first the user is in wins);
    ``default_role`` is the role of a user in none of them. ``model`` defaults to
    ``get_user_model()``, ``email_field`` to its ``EMAIL_FIELD``, ``using`` to the default
    database. ``columns`` maps the optional fields (``token_hash``, ``tfa_secret``,
    ``external_identifier``, ``provider``) to fields of a custom model.
    """

    io_bound = True  # under ASGI, its calls run in a worker thread
    #: How these users' passwords are checked and made (the guard built from
    #: ``settings.TOKENGUARD`` uses it).
    passwords: Passwords = DjangoPasswords()

    def __init__(
        self,
        *,
        roles: Mapping[str, str] | None = None,
        default_role: str | None = None,
        model: type[Any] | None = None,
        email_field: str | None = None,
        columns: Mapping[str, str] | None = None,
        using: str | None = None,
    ) -> None:
        self.roles = dict(roles or {})
        self.default_role = default_role
        self._model = model
        self._email_field = email_field
        self.columns = dict(columns or {})
        unknown = sorted(set(self.columns) - set(OPTIONAL_COLUMNS))
        if unknown:
            raise ConfigError(
                f"DjangoUserStore columns: {', '.join(unknown)} (known: "
                f"{', '.join(OPTIONAL_COLUMNS)})"
            )
        self.using = using

    # -- the model (resolved on first use: the app registry is ready by then) ---------------

    @property
    def model(self) -> type[Any]:
        """The user model (``AUTH_USER_MODEL`` unless one was given)."""
        if self._model is None:
            self._model = get_user_model()
        return self._model

    @property
    def email_field(self) -> str:
        """The model field holding the e-mail users log in with."""
        return self._email_field or str(self.model.get_email_field_name())

    @contextmanager
    def _database(self) -> Iterator[None]:
        """Django's database errors as the store protocol's."""
        try:
            yield
        except IntegrityError as exc:
            raise ValueError(
                "the user table refused the write (a unique or required column)"
            ) from exc
        except DatabaseError as exc:
            # Under ASGI this runs in a worker thread, where no request signal ever closes a
            # broken connection: drop it here, so that the next call connects again.
            try:
                connections[self.using or DEFAULT_DB_ALIAS].close_if_unusable_or_obsolete()
            except DatabaseError:
                pass
            raise StoreUnavailable(
                "database", f"the user table cannot be reached ({type(exc).__name__})"
            ) from exc

    def _has(self, name: str) -> bool:
        try:
            self.model._meta.get_field(name)
        except FieldDoesNotExist:
            return False
        return True

    def _objects(self) -> Any:
        manager = self.model._default_manager.db_manager(self.using)
        query = manager.all()
        if self.roles and self._has("groups"):
            query = query.prefetch_related("groups")
        return query

    # -- Django user -> tokenguard user -------------------------------------------------------

    def _role(self, account: Any) -> str | None:
        if self.roles and self._has("groups"):
            names = {group.name for group in account.groups.all()}
            for group, role in self.roles.items():
                if group in names:
                    return role
        return self.default_role

    def as_user(self, account: Any) -> User:
        """The tokenguard :class:`~tokenguard.stores.base.User` a Django user reads as."""
        superuser = bool(getattr(account, "is_superuser", False))
        values: dict[str, Any] = {
            "id": str(account.pk),
            "email": getattr(account, self.email_field) or "",
            "password_hash": account.password or None,
            "role": self._role(account),
            "status": "active" if getattr(account, "is_active", True) else "suspended",
            "admin_access": superuser,
            "app_access": superuser or bool(getattr(account, "is_staff", False)),
            "first_name": getattr(account, "first_name", None) or None,
            "last_name": getattr(account, "last_name", None) or None,
        }
        for name, column in self.columns.items():
            value = getattr(account, column)
            values[name] = _DEFAULTS[name] if name == "provider" and not value else value
        return User(**values)

    # -- look-ups -----------------------------------------------------------------------------

    def _pk(self, user_id: str) -> Any:
        """``user_id`` as the primary key holds it, or ``None`` when it cannot be one (only
        the key's own spelling counts: " 1" or "01" is no user's id)."""
        if not isinstance(user_id, str) or not user_id:
            return None
        try:
            value = self.model._meta.pk.to_python(user_id)
        except (ValidationError, TypeError, ValueError):
            return None
        if value is None or str(value) != user_id:
            return None
        if isinstance(value, int) and not -(2**63) <= value < 2**63:
            return None  # no 64-bit key; the driver would raise
        return value

    def account_by_id(self, user_id: str) -> Any:
        """The Django user with this id, or ``None``."""
        pk = self._pk(user_id)
        if pk is None:
            return None
        with self._database():
            return self._objects().filter(pk=pk).first()

    def account_by_email(self, email: str) -> Any:
        """The Django user with this e-mail (case-insensitive, never a guess), or ``None``."""
        return self._folded(self.email_field, email)

    def _folded(self, field: str, value: str) -> Any:
        if not isinstance(value, str) or not value:
            return None
        with self._database():
            rows = list(self._objects().filter(**{f"{field}__iexact": value})[:3])
        exact = [row for row in rows if getattr(row, field) == value]
        if len(exact) == 1:
            return exact[0]
        return rows[0] if len(rows) == 1 else None

    def get_by_id(self, user_id: str) -> User | None:
        account = self.account_by_id(user_id)
        return None if account is None else self.as_user(account)

    def get_by_email(self, email: str) -> User | None:
        account = self.account_by_email(email)
        return None if account is None else self.as_user(account)

    def get_by_token_hash(self, token_hash: str) -> User | None:
        column = self.columns.get("token_hash")
        if column is None or not token_hash:
            return None  # no column: no static token exists
        with self._database():
            rows = list(self._objects().filter(**{column: token_hash})[:2])
        return self.as_user(rows[0]) if len(rows) == 1 else None

    def get_by_external_identifier(self, identifier: str) -> User | None:
        column = self.columns.get("external_identifier")
        if column is None:
            return None
        account = self._folded(column, identifier)
        return None if account is None else self.as_user(account)

    def list_users(self) -> list[User]:
        with self._database():
            return [self.as_user(account) for account in self._objects().order_by("pk")]

    # -- writes -------------------------------------------------------------------------------

    def _unavailable(self, name: str, value: Any) -> None:
        if name in OPTIONAL_COLUMNS and name not in self.columns and value != _DEFAULTS[name]:
            error = NotAvailable(
                f"{_WHAT[name]} not available with Django's users: "
                f"{self.model.__name__} has no column for {name} "
                f"(DjangoUserStore(columns={{{name!r}: '<field>'}}) names one)"
            )
            log.warning("%s", error)
            raise error
        if name in ("first_name", "last_name") and value and not self._has(name):
            raise NotAvailable(f"{self.model.__name__} has no field {name}")

    def _clash(self, user: User, own_pk: Any) -> None:
        for name, find in (
            ("email", self.account_by_email),
            ("external_identifier", self._by_identifier),
            ("token_hash", self._by_token),
        ):
            value = getattr(user, name)
            other = find(value) if value else None
            if other is not None and other.pk != own_pk:
                raise ValueError(f"another user has this {name.replace('_', ' ')} ({other.pk!r})")

    def _by_identifier(self, identifier: str) -> Any:
        column = self.columns.get("external_identifier")
        return None if column is None else self._folded(column, identifier)

    def _by_token(self, token_hash: str) -> Any:
        column = self.columns.get("token_hash")
        if column is None:
            return None
        with self._database():
            return self._objects().filter(**{column: token_hash}).first()

    def _apply(self, account: Any, changes: Mapping[str, Any]) -> list[str]:
        """Set ``changes`` on ``account``; the model fields changed (groups aside)."""
        changed: list[str] = []

        def put(field: str, value: Any) -> None:
            setattr(account, field, value)
            changed.append(field)

        for name, value in changes.items():
            self._unavailable(name, value)
            if name == "email":
                put(self.email_field, value)
            elif name == "password_hash":
                put("password", _as_django(value) or make_password(None))
            elif name == "status":
                if value not in ("active", "suspended"):
                    raise NotAvailable(
                        f"Django's users are active or suspended (is_active), not {value!r}"
                    )
                put("is_active", value == "active")
            elif name == "admin_access":
                if self._has("is_superuser"):
                    put("is_superuser", bool(value))
                elif value:
                    raise NotAvailable(f"{self.model.__name__} has no is_superuser")
            elif name == "app_access":
                if self._has("is_staff"):
                    put("is_staff", bool(value))
            elif name in ("first_name", "last_name"):
                if self._has(name):
                    put(name, value or "")
            elif name in self.columns:
                put(self.columns[name], value)
        return changed

    def _set_role(self, account: Any, role: str | None) -> None:
        if not self.roles or not self._has("groups"):
            if role is not None and role != self.default_role:
                raise NotAvailable(
                    f"role {role!r}: no Django group maps to it (DjangoUserStore(roles=...))"
                )
            return
        from django.contrib.auth.models import Group  # only with groups: the app is installed

        groups = [name for name, mapped in self.roles.items() if mapped == role]
        if role is not None and role != self.default_role and not groups:
            raise NotAvailable(f"role {role!r}: no Django group maps to it")
        mapped = Group.objects.using(self.using).filter(name__in=list(self.roles))
        account.groups.remove(*mapped)
        if groups:
            group, _ = Group.objects.using(self.using).get_or_create(name=groups[0])
            account.groups.add(group)

    def create(self, user: User) -> User:
        """Add a Django user; its id is the one the database assigns (``user.id`` is kept
        only when it is a valid key no one has). The username, when it is not the e-mail
        field, is the e-mail."""
        if self.account_by_id(user.id) is not None:
            raise ValueError(f"a user with this id exists ({user.id!r})")
        self._clash(user, None)
        account = self.model()
        pk = self._pk(user.id)
        if pk is not None:
            account.pk = pk
        username = getattr(self.model, "USERNAME_FIELD", self.email_field)
        if username != self.email_field:
            setattr(account, username, user.email)
        changes = {name: getattr(user, name) for name in _WRITABLE if name != "role"}
        with self._database(), transaction.atomic(using=self.using):
            self._apply(account, changes)
            account.save(using=self.using)
            self._set_role(account, user.role)
        found = self.get_by_id(str(account.pk))
        assert found is not None
        return found

    def update(self, user_id: str, **changes: Any) -> User | None:
        unknown = set(changes) - _WRITABLE
        if unknown:
            raise ValueError(f"unknown user field(s): {', '.join(sorted(unknown))}")
        account = self.account_by_id(user_id)
        if account is None:
            return None
        if {"email", "token_hash", "external_identifier"} & set(changes):
            self._clash(replace(self.as_user(account), **changes), account.pk)
        with self._database(), transaction.atomic(using=self.using):
            changed = self._apply(account, {k: v for k, v in changes.items() if k != "role"})
            if changed:
                account.save(using=self.using, update_fields=changed)
            if "role" in changes:
                self._set_role(account, changes["role"])
        return self.get_by_id(user_id)

    def delete(self, user_id: str) -> bool:
        account = self.account_by_id(user_id)
        if account is None:
            return False
        with self._database():
            account.delete(using=self.using)
        return True

    def close(self) -> None:
        """Nothing to release: Django owns its database connections."""
