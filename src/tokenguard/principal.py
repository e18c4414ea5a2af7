"""The principal: who a request speaks for, attached to every request that passes the guard."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["AuthMethod", "Principal"]

AuthMethod = Literal["jwt", "session", "static", "public"]


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller, or the public (anonymous) caller.

    ``admin`` and ``app`` come from the verified token's ``admin_access``/``app_access``
    claims (or, for static tokens, from the user store); they are never re-read per request.
    """

    user: str | None
    role: str | None
    admin: bool = False
    app: bool = False
    via: AuthMethod = "public"
    #: For ``via="session"``: the session the cookie belongs to (never logged).
    session: str | None = None
    #: Unix time (seconds) at which the credential stops being valid; ``None`` if it never does.
    expires_at: int | None = None
    #: The session the access token belongs to (its ``sid`` claim: the session family, not
    #: a secret); ``None`` for static tokens, the public caller and tokens minted elsewhere.
    sid: str | None = None
    #: Unix time (seconds, to the millisecond) the token was issued, if it says.
    issued_at: float | None = None

    @property
    def is_authenticated(self) -> bool:
        return self.user is not None

    @property
    def id(self) -> str | None:
        """Alias of :attr:`user`, matching Directus's ``id`` claim."""
        return self.user

    # Starlette's BaseUser and AuthCredentials, by duck typing: the ASGI shell puts the
    # principal in scope["user"] and scope["auth"], so `request.user.display_name` and
    # `@requires("authenticated")` work without Starlette's AuthenticationMiddleware.

    @property
    def display_name(self) -> str:
        return self.user or ""

    @property
    def identity(self) -> str:
        return self.user or ""

    @property
    def scopes(self) -> tuple[str, ...]:
        """``authenticated``, ``role:<role>``, ``admin`` and ``app`` as they apply, for
        Starlette's ``@requires(...)``; empty for the public caller."""
        if self.user is None:
            return ()
        found = ["authenticated"]
        if self.role is not None:
            found.append(f"role:{self.role}")
        if self.admin:
            found.append("admin")
        if self.app:
            found.append("app")
        return tuple(found)

    def __repr__(self) -> str:
        # The session id doubles as a refresh secret in session mode: keep it out of reprs.
        return (
            f"Principal(user={self.user!r}, role={self.role!r}, admin={self.admin}, "
            f"app={self.app}, via={self.via!r})"
        )
