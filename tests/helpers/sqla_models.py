"""Mapped classes standing for "the user table an app already has", for the SQLAlchemy bridge."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Account(Base):
    """Every tokenguard field, under names of the app's own choosing."""

    __tablename__ = "accounts"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    email_address: Mapped[str] = mapped_column(String(320), unique=True)
    password: Mapped[str | None] = mapped_column(String(400), nullable=True)
    role_name: Mapped[str | None] = mapped_column(String(64), nullable=True)
    state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    uses_app: Mapped[bool] = mapped_column(Boolean, default=False)
    auth_provider: Mapped[str | None] = mapped_column(String(64), nullable=True)
    given_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    family_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    api_token_sha256: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    otp_secret: Mapped[str | None] = mapped_column(String(200), nullable=True)
    sso_subject: Mapped[str | None] = mapped_column(String(400), unique=True, nullable=True)


#: How Account's attributes map onto tokenguard's user fields.
ACCOUNT_COLUMNS: dict[str, Any] = {
    "id": "key",
    "email": "email_address",
    "password_hash": "password",
    "role": "role_name",
    "status": "state",
    "admin_access": "is_admin",
    "app_access": "uses_app",
    "provider": "auth_provider",
    "first_name": "given_name",
    "last_name": "family_name",
    "token_hash": "api_token_sha256",
    "tfa_secret": "otp_secret",
    "external_identifier": "sso_subject",
}


class Member(Base):
    """A minimal table with an integer key: id, e-mail, a password hash and a role."""

    __tablename__ = "members"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    pw_hash: Mapped[str | None] = mapped_column(String(400), nullable=True)
    role: Mapped[str | None] = mapped_column(String(64), nullable=True)
