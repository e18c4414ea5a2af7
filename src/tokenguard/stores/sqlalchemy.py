"""Bring your own users: a user store over a mapped class of yours, with SQLAlchemy 2.0.

::

    from sqlalchemy import create_engine
    from tokenguard.stores.sqlalchemy import sqlalchemy_users

    users = sqlalchemy_users(Account, create_engine(url), email="email_address",
                             password_hash="password", role="role_name")
    guard = TokenGuard(users=users)

``sqlalchemy_users`` takes an ``Engine``, an ``AsyncEngine``, a ``sessionmaker`` or an
``async_sessionmaker`` and returns :class:`SQLAlchemyUserStore` or
:class:`AsyncSQLAlchemyUserStore`. Each keyword names the attribute of your class that holds
one of tokenguard's user fields (:class:`UserColumns`); a field you do not map reads as its
default (``status`` "active", flags false, the rest empty) and cannot be written — enabling
two-factor, say, fails loudly rather than being dropped.

Both stores run the same *plans*: generators that yield steps (a function of the session) and
decide on what comes back; the sync store calls each step, the async one also awaits it. So
the queries, conversions and checks exist once.

Differences from tokenguard's own stores, all because the table is yours: e-mails and
external identifiers are compared with SQL ``lower()`` (not full Unicode case folding), and
when two rows differ only by case, neither is found by a case-insensitive look-up (an exact
match still is). Uniqueness is checked before writing, and your table's own constraints are
the last word (an ``IntegrityError`` is reported as a clash). An integer (or UUID) primary key
works: ids are strings to tokenguard, converted both ways, and a user tokenguard registers
(single sign-on) gets the id your database assigns.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable, Generator
from dataclasses import dataclass, fields, replace
from typing import Any

from ..errors import ConfigError, MissingExtra

try:
    from sqlalchemy import func, select
    from sqlalchemy import inspect as sa_inspect
    from sqlalchemy.exc import IntegrityError, SQLAlchemyError
except ImportError as exc:
    raise MissingExtra("tokenguard.stores.sqlalchemy", "SQLAlchemy", "sqlalchemy") from exc
from .base import StoreUnavailable, User

__all__ = [
    "AsyncSQLAlchemyUserStore",
    "SQLAlchemyUserStore",
    "UserColumns",
    "sqlalchemy_users",
]

Step = Callable[[Any], Any]
Plan = Generator[Step, Any, Any]

_DEFAULTS = {f.name: f.default for f in fields(User) if f.name not in ("id", "email")}
_WRITABLE = frozenset(f.name for f in fields(User)) - {"id"}


@dataclass(frozen=True, slots=True)
class UserColumns:
    """The attribute of the mapped class holding each user field; ``None``: not in the table."""

    id: str = "id"
    email: str = "email"
    password_hash: str | None = "password_hash"
    role: str | None = "role"
    status: str | None = None
    admin_access: str | None = None
    app_access: str | None = None
    provider: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    token_hash: str | None = None
    tfa_secret: str | None = None
    external_identifier: str | None = None

    def mapped(self) -> dict[str, str]:
        """tokenguard field -> attribute, for the mapped fields."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}


class _Plans:
    """What both stores do, as plans over a session (see the module docstring)."""

    def __init__(self, model: type[Any], columns: UserColumns) -> None:
        mapper = sa_inspect(model, raiseerr=False)
        if mapper is None or not hasattr(mapper, "attrs"):
            raise ConfigError(f"{model!r} is not a mapped SQLAlchemy class")
        available = {attr.key for attr in mapper.attrs}
        self.model = model
        self.fields = columns.mapped()
        missing = sorted(a for a in self.fields.values() if a not in available)
        if missing:
            raise ConfigError(
                f"{model.__name__} has no attribute(s) {', '.join(missing)} "
                f"(it has: {', '.join(sorted(available))})"
            )
        self.attr = {name: getattr(model, attr) for name, attr in self.fields.items()}
        id_type = self.attr["id"].type
        try:
            self._id_type: type[Any] = id_type.python_type
        except NotImplementedError:
            self._id_type = str

    # -- conversions ------------------------------------------------------------------------

    def id_value(self, user_id: str) -> Any:
        """``user_id`` as the id column holds it, or ``None`` if it cannot be one."""
        kind = self._id_type
        if kind is str:
            return user_id
        try:
            if kind is int:
                # Digits only (no sign, no spaces, no other scripts' digits), and within a
                # BIGINT: anything else is no row's id, and must not reach the driver.
                if not (user_id.isascii() and user_id.isdigit() and len(user_id) <= 19):
                    return None
                number = int(user_id)
                return number if number < 2**63 else None
            if kind is uuid.UUID:
                return uuid.UUID(user_id)
            return kind(user_id)
        except (TypeError, ValueError):
            return None

    def user(self, row: Any) -> User:
        values: dict[str, Any] = {}
        for name, attr in self.fields.items():
            value = getattr(row, attr)
            if name == "id":
                value = str(value)
            elif name in ("admin_access", "app_access"):
                value = bool(value)
            elif name in ("status", "provider") and value is None:
                value = _DEFAULTS[name]
            values[name] = value
        return User(**values)

    def _unmapped(self, changes: dict[str, Any]) -> None:
        lost = sorted(k for k, v in changes.items() if k not in self.fields and v != _DEFAULTS[k])
        if lost:
            raise ValueError(
                f"user field(s) {', '.join(lost)} have no column in {self.model.__name__}; "
                "map them (sqlalchemy_users(..., <field>='<attribute>')) to store them"
            )

    # -- plans ------------------------------------------------------------------------------

    def _rows(self, condition: Any) -> Plan:
        result = yield lambda s: s.execute(select(self.model).where(condition).limit(3))
        return list(result.scalars().all())

    def get_by_id(self, user_id: str) -> Plan:
        value = self.id_value(user_id) if isinstance(user_id, str) else None
        if value is None:
            return None
        rows = yield from self._rows(self.attr["id"] == value)
        return self.user(rows[0]) if rows else None

    def _folded(self, name: str, value: str) -> Plan:
        # An exact match wins; otherwise one case-insensitive match, never a guess among many.
        attr = self.attr.get(name)
        if attr is None or not value:
            return None
        rows = yield from self._rows(func.lower(attr) == value.lower())
        exact = [r for r in rows if getattr(r, self.fields[name]) == value]
        if len(exact) == 1:
            return exact[0]
        return rows[0] if len(rows) == 1 else None

    def get_by_email(self, email: str) -> Plan:
        row = yield from self._folded("email", email)
        return None if row is None else self.user(row)

    def get_by_external_identifier(self, identifier: str) -> Plan:
        row = yield from self._folded("external_identifier", identifier)
        return None if row is None else self.user(row)

    def get_by_token_hash(self, token_hash: str) -> Plan:
        attr = self.attr.get("token_hash")
        if attr is None or not token_hash:
            return None
        rows = yield from self._rows(attr == token_hash)
        return self.user(rows[0]) if len(rows) == 1 else None

    def _clashes(self, user: User, own_id: str | None) -> Plan:
        """Refuse a user whose e-mail, token or identifier another user has."""
        checks: list[Plan] = [self.get_by_email(user.email)]
        if user.token_hash:
            checks.append(self.get_by_token_hash(user.token_hash))
        if user.external_identifier:
            checks.append(self.get_by_external_identifier(user.external_identifier))
        for check in checks:
            other = yield from check
            if other is not None and other.id != own_id:
                raise ValueError(
                    f"another user has this e-mail, token or external identifier ({other.id!r})"
                )

    def create(self, user: User) -> Plan:
        self._unmapped({f: getattr(user, f) for f in _DEFAULTS})
        existing = yield from self.get_by_id(user.id)
        if existing is not None:
            raise ValueError(f"a user with this id exists ({user.id!r})")
        yield from self._clashes(user, None)
        values = {
            attr: getattr(user, name) for name, attr in self.fields.items() if name != "id"
        }
        id_value = self.id_value(user.id)
        if id_value is not None:
            values[self.fields["id"]] = id_value  # else the database assigns one
        row = self.model(**values)
        yield lambda s: s.add(row)
        yield lambda s: s.commit()
        yield lambda s: s.refresh(row)
        return self.user(row)

    def update(self, user_id: str, changes: dict[str, Any]) -> Plan:
        unknown = set(changes) - _WRITABLE
        if unknown:
            raise ValueError(f"unknown user field(s): {', '.join(sorted(unknown))}")
        self._unmapped(changes)
        value = self.id_value(user_id)
        if value is None:
            return None
        rows = yield from self._rows(self.attr["id"] == value)
        if not rows:
            return None
        row = rows[0]
        updated = replace(self.user(row), **changes)
        if {"email", "token_hash", "external_identifier"} & set(changes):
            yield from self._clashes(updated, updated.id)
        for name, new in changes.items():
            if name in self.fields:  # an unmapped one can only be its default (checked above)
                setattr(row, self.fields[name], new)
        yield lambda s: s.commit()
        return updated

    def delete(self, user_id: str) -> Plan:
        value = self.id_value(user_id)
        if value is None:
            return False
        rows = yield from self._rows(self.attr["id"] == value)
        if not rows:
            return False
        yield lambda s: s.delete(rows[0])
        yield lambda s: s.commit()
        return True

    def list_users(self) -> Plan:
        result = yield lambda s: s.execute(select(self.model).order_by(self.attr["id"]))
        return [self.user(row) for row in result.scalars().all()]


def _failure(exc: Exception) -> Exception:
    if isinstance(exc, IntegrityError):
        return ValueError("the user table refused the write (a unique or required column)")
    return StoreUnavailable("users", f"the user table cannot be reached ({type(exc).__name__})")


class SQLAlchemyUserStore:
    """A :class:`~tokenguard.stores.base.UserStore` over your mapped class, with a
    ``sessionmaker`` (one short session per call)."""

    io_bound = True  # under ASGI, its calls run in a worker thread

    def __init__(
        self, model: type[Any], sessions: Callable[[], Any], columns: UserColumns | None = None
    ) -> None:
        self._plans = _Plans(model, columns or UserColumns())
        self._sessions = sessions

    def _run(self, plan: Plan) -> Any:
        try:
            with self._sessions() as session:
                answer: Any = None
                while True:
                    try:
                        step = plan.send(answer)
                    except StopIteration as stop:
                        return stop.value
                    answer = step(session)
        except SQLAlchemyError as exc:
            raise _failure(exc) from exc

    def get_by_id(self, user_id: str) -> User | None:
        return self._run(self._plans.get_by_id(user_id))  # type: ignore[no-any-return]

    def get_by_email(self, email: str) -> User | None:
        return self._run(self._plans.get_by_email(email))  # type: ignore[no-any-return]

    def get_by_token_hash(self, token_hash: str) -> User | None:
        return self._run(self._plans.get_by_token_hash(token_hash))  # type: ignore[no-any-return]

    def get_by_external_identifier(self, identifier: str) -> User | None:
        plan = self._plans.get_by_external_identifier(identifier)
        return self._run(plan)  # type: ignore[no-any-return]

    def create(self, user: User) -> User:
        return self._run(self._plans.create(user))  # type: ignore[no-any-return]

    def update(self, user_id: str, **changes: Any) -> User | None:
        return self._run(self._plans.update(user_id, changes))  # type: ignore[no-any-return]

    def delete(self, user_id: str) -> bool:
        return bool(self._run(self._plans.delete(user_id)))

    def list_users(self) -> list[User]:
        return self._run(self._plans.list_users())  # type: ignore[no-any-return]

    def close(self) -> None:
        """Nothing to release: the engine is yours (dispose of it when you are done)."""


class AsyncSQLAlchemyUserStore:
    """An :class:`~tokenguard.stores.base.AsyncUserStore` over your mapped class, with an
    ``async_sessionmaker``; the same plans as :class:`SQLAlchemyUserStore`."""

    def __init__(
        self, model: type[Any], sessions: Callable[[], Any], columns: UserColumns | None = None
    ) -> None:
        self._plans = _Plans(model, columns or UserColumns())
        self._sessions = sessions

    async def _run(self, plan: Plan) -> Any:
        try:
            async with self._sessions() as session:
                answer: Any = None
                while True:
                    try:
                        step = plan.send(answer)
                    except StopIteration as stop:
                        return stop.value
                    answer = step(session)
                    if inspect.isawaitable(answer):
                        answer = await answer
        except SQLAlchemyError as exc:
            raise _failure(exc) from exc

    async def get_by_id(self, user_id: str) -> User | None:
        return await self._run(self._plans.get_by_id(user_id))  # type: ignore[no-any-return]

    async def get_by_email(self, email: str) -> User | None:
        return await self._run(self._plans.get_by_email(email))  # type: ignore[no-any-return]

    async def get_by_token_hash(self, token_hash: str) -> User | None:
        plan = self._plans.get_by_token_hash(token_hash)
        return await self._run(plan)  # type: ignore[no-any-return]

    async def get_by_external_identifier(self, identifier: str) -> User | None:
        plan = self._plans.get_by_external_identifier(identifier)
        return await self._run(plan)  # type: ignore[no-any-return]

    async def create(self, user: User) -> User:
        return await self._run(self._plans.create(user))  # type: ignore[no-any-return]

    async def update(self, user_id: str, **changes: Any) -> User | None:
        plan = self._plans.update(user_id, changes)
        return await self._run(plan)  # type: ignore[no-any-return]

    async def delete(self, user_id: str) -> bool:
        return bool(await self._run(self._plans.delete(user_id)))

    async def list_users(self) -> list[User]:
        return await self._run(self._plans.list_users())  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        """Nothing to release: the engine is yours (dispose of it when you are done)."""


def sqlalchemy_users(
    model: type[Any], bind: Any, **columns: str | None
) -> SQLAlchemyUserStore | AsyncSQLAlchemyUserStore:
    """A user store over ``model`` in one call: ``bind`` is an ``Engine``, an ``AsyncEngine``,
    a ``sessionmaker`` or an ``async_sessionmaker``; ``columns`` name the attributes
    (:class:`UserColumns`' fields, e.g. ``email="email_address"``)."""
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import sessionmaker

    try:
        spec = UserColumns(**columns)  # type: ignore[arg-type]  # id/email: str, checked below
    except TypeError:
        known = ", ".join(f.name for f in fields(UserColumns))
        raise ConfigError(f"sqlalchemy_users: the user fields are {known}") from None
    if not spec.id or not spec.email:
        raise ConfigError("sqlalchemy_users: id and email must name attributes")
    if isinstance(bind, sessionmaker):
        return SQLAlchemyUserStore(model, bind, spec)
    if isinstance(bind, Engine):
        return SQLAlchemyUserStore(model, sessionmaker(bind, expire_on_commit=False), spec)
    wrong = ConfigError(
        "sqlalchemy_users needs an Engine, AsyncEngine, sessionmaker or async_sessionmaker"
    )
    try:
        # Only here: SQLAlchemy's asyncio module needs greenlet, which a sync app may not have
        # (and whoever made an AsyncEngine has).
        from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
    except ImportError:
        raise wrong from None
    if isinstance(bind, async_sessionmaker):
        return AsyncSQLAlchemyUserStore(model, bind, spec)
    if isinstance(bind, AsyncEngine):
        return AsyncSQLAlchemyUserStore(
            model, async_sessionmaker(bind, expire_on_commit=False), spec
        )
    raise wrong
