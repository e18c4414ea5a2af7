"""A Flask app with its own SQLAlchemy ``User`` model, wrapped by tokenguard in one call.

The table is the app's: integer ids, its own column names, and passwords hashed long ago
with Werkzeug's ``generate_password_hash``. tokenguard reads it through
:func:`tokenguard.stores.sqlalchemy.sqlalchemy_users`, verifies those hashes and upgrades each
to argon2id at its owner's next login. Run it with ``bash examples/run.sh flask_sqlalchemy``
(gunicorn, through ``python -m examples.serve flask_sqlalchemy``; ``python -m
examples.flask_sqlalchemy_app.app`` is Werkzeug's development server, for development only).
It listens on ``HOST``/``PORT`` (default 127.0.0.1:8055), keeps the table in
``APP_DATABASE_URL`` (default: SQLite in memory) and seeds an administrator from
``ADMIN_EMAIL``/``ADMIN_PASSWORD``/``ADMIN_TOKEN``, the way the app itself would (Werkzeug hash,
its own columns).
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask
from sqlalchemy import Boolean, String, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.pool import StaticPool
from werkzeug.security import generate_password_hash

from examples.users import users_me_body
from tokenguard import TokenGuard
from tokenguard.errors import invalid_credentials
from tokenguard.integrations.flask import TokenGuardFlask, current_user, require_role, require_user
from tokenguard.jose.tokens import hash_token
from tokenguard.stores.sqlalchemy import sqlalchemy_users


class Base(DeclarativeBase):
    pass


class User(Base):
    """The app's own user table (nothing here is tokenguard's)."""

    __tablename__ = "app_users"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password: Mapped[str | None] = mapped_column(String(400))
    group: Mapped[str | None] = mapped_column(String(64))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    api_key_sha256: Mapped[str | None] = mapped_column(String(64), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(200))


url = os.environ.get("APP_DATABASE_URL", "sqlite://")
# In-memory SQLite: one connection shared by every thread, or each would see its own database.
engine = (
    create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    if url == "sqlite://"
    else create_engine(url)
)
Base.metadata.create_all(engine)


def seed_admin() -> None:
    """What the app's own sign-up code did: a Werkzeug hash, its own columns."""
    email, password = os.environ.get("ADMIN_EMAIL"), os.environ.get("ADMIN_PASSWORD")
    if not email:
        return
    token = os.environ.get("ADMIN_TOKEN")
    with Session(engine) as session:
        if session.execute(select(User).where(User.email == email)).scalar() is None:
            session.add(
                User(
                    email=email,
                    password=generate_password_hash(password) if password else None,
                    group="administrator",
                    is_admin=True,
                    api_key_sha256=hash_token(token) if token else None,
                    display_name="Admin",
                )
            )
            session.commit()


seed_admin()
# One call: which attribute holds which of tokenguard's user fields.
users = sqlalchemy_users(
    User,
    engine,
    password_hash="password",
    role="group",
    admin_access="is_admin",
    token_hash="api_key_sha256",
    first_name="display_name",
)
app = Flask(__name__)
tokenguard = TokenGuardFlask(app, TokenGuard(users=users))


@app.get("/")
def home() -> dict[str, Any]:
    return {"data": {"hello": "world", "role": current_user.role, "via": current_user.via}}


@app.get("/users/me")
@require_user
def users_me() -> Any:
    """Who am I: the app's row, read through the same bridge tokenguard uses."""
    user = users.get_by_id(current_user.user)  # type: ignore[arg-type, union-attr]
    if user is None:
        raise invalid_credentials()
    return users_me_body(user)


@app.get("/private")
@require_user
def private() -> dict[str, Any]:
    return {"data": {"secret": "for users only", "user": current_user.user}}


@app.get("/admin")
@require_role("administrator")
def admin() -> dict[str, Any]:
    return {"data": {"secret": "for administrators only"}}


def main() -> None:
    from werkzeug.serving import run_simple

    try:
        host, port = os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8055"))
        run_simple(host, port, app, threaded=True)
    finally:
        tokenguard.close()
        engine.dispose()


if __name__ == "__main__":
    main()
