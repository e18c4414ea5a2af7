"""Users an identity provider vouches for: found by their external identifier, or registered.

Every driver that signs users in through someone else (``openid``, ``oauth2``, ``ldap``,
``saml``) ends in :func:`user_for_identity`, so the account rules exist once, as Directus's
drivers apply them:

1. The user is found by ``external_identifier`` (compared case-insensitively): the OpenID
   ``sub``, the LDAP DN, the SAML NameID... never by e-mail alone, since an e-mail address
   can change hands at the provider while the identifier does not.
2. A user found that way must belong to this provider (``provider`` = the provider's name)
   and be active; otherwise the login is refused (401 ``INVALID_CREDENTIALS``).
3. An unknown identity is registered only with ``AUTH_<P>_ALLOW_PUBLIC_REGISTRATION``, with
   the role ``AUTH_<P>_DEFAULT_ROLE_ID`` (or the role a group mapping gave). An identity whose
   e-mail the provider says is unverified is never registered.

tokenguard additions, both off unless configured or needed:

- ``AUTH_<P>_LINK_EXISTING``: a local (``default``) user with the same *verified* e-mail may
  sign in through the provider (their password keeps working; nothing is linked in storage).
- Users this provider registered before tokenguard kept external identifiers (matched by
  e-mail then) are adopted on their next login: their identifier is recorded once, so the
  following logins match by identifier.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ...errors import AuthError, ConfigError, invalid_credentials, service_unavailable
from ...flow import Call, Flow
from ...stores.base import StoreUnavailable, User

__all__ = [
    "ExternalIdentity",
    "Registration",
    "check_user_store",
    "mapped_role",
    "user_for_identity",
]

log = logging.getLogger("tokenguard.auth")

#: Longest external identifier kept (Directus's column is a varchar(255)).
MAX_IDENTIFIER_LENGTH = 255
_MAX_NAME = 255
_MAX_EMAIL = 254


@dataclass(frozen=True, slots=True)
class ExternalIdentity:
    """Who the provider says signed in. Drivers fill it from claims, attributes or a DN."""

    provider: str
    identifier: str
    email: str | None = None
    #: ``True``/``False`` when the provider says so, ``None`` when it does not tell.
    email_verified: bool | None = None
    first_name: str | None = None
    last_name: str | None = None
    #: The role a group mapping gave (``AUTH_<P>_ROLE_MAPPING``), or ``None``.
    role: str | None = None


@dataclass(frozen=True, slots=True)
class Registration:
    """A provider's account rules (``AUTH_<P>_*``)."""

    allow_public_registration: bool = False
    default_role_id: str | None = None
    #: ``AUTH_<P>_SYNC_USER_INFO``: refresh names and e-mail from the provider at each login.
    sync_user_info: bool = False
    #: A role mapping is configured: the mapped (or default) role is re-applied at each login.
    update_role: bool = False
    link_existing: bool = False


def mapped_role(groups: Sequence[str], mapping: Mapping[str, str]) -> str | None:
    """The role of the first mapping entry (in configuration order) whose group the user is
    in, as Directus's ``ROLE_MAPPING`` does; ``None`` when none matches."""
    member = set(groups)
    for group, role in mapping.items():
        if group in member:
            return role
    return None


def check_user_store(users: Any) -> None:
    """Refuse, at start-up, a user store that cannot find users by external identifier
    (a store written before SSO needed ``get_by_external_identifier``)."""
    if not callable(getattr(users, "get_by_external_identifier", None)):
        raise ConfigError(
            f"single sign-on needs {type(users).__name__}.get_by_external_identifier"
            "(identifier) (see tokenguard.stores.base.UserStore)"
        )


def _clean(value: Any, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def _same(stored: str | None, identifier: str) -> bool:
    return stored is not None and stored.casefold() == identifier.casefold()


def _usable_email(email: str | None) -> str | None:
    if email is None or "@" not in email or len(email) > _MAX_EMAIL:
        return None
    return email


def _store(fn: Any, *args: Any, **kwargs: Any) -> Flow[Any]:
    """A store call; ``ValueError`` (a uniqueness clash) is the caller's, the rest is 503."""
    try:
        return (yield Call(fn, args, kwargs))
    except ValueError:
        raise
    except StoreUnavailable as exc:
        log.warning("store unavailable (%s): %s", exc.service, exc.reason)
        raise service_unavailable(exc.service, exc.reason) from None
    except AuthError:
        raise
    except Exception as exc:
        log.error("store call %s failed: %s", getattr(fn, "__name__", "?"), type(exc).__name__)
        raise service_unavailable("database", "Couldn't reach the store") from None


def user_for_identity(
    users: Any,
    identity: ExternalIdentity,
    registration: Registration,
    *,
    changed: Callable[[User, User | None], Flow[None]] | None = None,
) -> Flow[User]:
    """The active user ``identity`` names, registered if the rules allow; raises
    :class:`~tokenguard.errors.AuthError` (401, or 503 when the store cannot answer).

    ``users`` is a sync or async user store with ``get_by_external_identifier``.
    ``changed`` (:meth:`AuthService.user_changed
    <tokenguard.auth.service.AuthService.user_changed>`) is told of each update of a
    returning user, before and after: a role synced from the provider's groups voids the
    access tokens issued under the old one.
    """
    identifier = identity.identifier
    if not identifier or len(identifier) > MAX_IDENTIFIER_LENGTH:
        log.warning("provider %s sent no usable identifier", identity.provider)
        raise invalid_credentials()
    email = _usable_email(identity.email)
    user: User | None = yield from _store(users.get_by_external_identifier, identifier)
    if user is None:
        user = yield from _unmatched(users, identity, email, registration)
        if user is None:
            return (yield from _register(users, identity, email, registration))
    elif user.provider != identity.provider:
        log.warning(
            "provider %s vouched for user %s of provider %s: refused",
            identity.provider,
            user.id,
            user.provider,
        )
        raise invalid_credentials()
    if user.status != "active":
        raise invalid_credentials()
    if user.provider == identity.provider:
        user = yield from _refresh(users, user, identity, email, registration, changed)
    return user


def _unmatched(
    users: Any, identity: ExternalIdentity, email: str | None, registration: Registration
) -> Flow[User | None]:
    """No user has this identifier: a linked local user, an adopted legacy user, or None."""
    if email is None:
        return None
    by_email: User | None = yield from _store(users.get_by_email, email)
    if by_email is None:
        return None
    if by_email.provider == "default":
        if registration.link_existing and identity.email_verified is True:
            return by_email
    elif by_email.provider == identity.provider and _same(
        by_email.external_identifier, identity.identifier
    ):
        return by_email  # registered a moment ago by a concurrent first login
    elif (
        by_email.provider == identity.provider
        and by_email.external_identifier is None
        and identity.email_verified is not False
    ):
        # Registered by this provider before identifiers were kept, when e-mail was the
        # key: record the identifier once, so that e-mail never decides again.
        try:
            adopted: User | None = yield from _store(
                users.update, by_email.id, external_identifier=identity.identifier
            )
        except ValueError:
            adopted = None
        if adopted is not None:
            log.info("user %s of %s now matched by identifier", adopted.id, identity.provider)
            return adopted
    log.warning(
        "provider %s: the e-mail of a new identity belongs to user %s; refused",
        identity.provider,
        by_email.id,
    )
    raise invalid_credentials()


def _register(
    users: Any, identity: ExternalIdentity, email: str | None, registration: Registration
) -> Flow[User]:
    if not registration.allow_public_registration:
        log.info("provider %s: unknown user, and registration is off", identity.provider)
        raise invalid_credentials()
    if identity.email_verified is False:
        raise invalid_credentials()
    if email is None:
        # tokenguard's users are found by e-mail for password resets and the CLI.
        log.warning("provider %s sent no usable e-mail: cannot register", identity.provider)
        raise invalid_credentials()
    new = User(
        id=str(uuid.uuid4()),
        email=email,
        role=identity.role if identity.role is not None else registration.default_role_id,
        provider=identity.provider,
        first_name=_clean(identity.first_name, _MAX_NAME),
        last_name=_clean(identity.last_name, _MAX_NAME),
        external_identifier=identity.identifier,
    )
    try:
        created: User = yield from _store(users.create, new)
    except ValueError:
        # A concurrent first login may have created it; anything else (the e-mail belongs
        # to another user) is a refusal, as Directus's "not unique" is.
        again: User | None = yield from _store(
            users.get_by_external_identifier, identity.identifier
        )
        if again is None or again.provider != identity.provider or again.status != "active":
            raise invalid_credentials() from None
        return again
    log.info("registered user %s through %s", created.id, identity.provider)
    return created


def _refresh(
    users: Any,
    user: User,
    identity: ExternalIdentity,
    email: str | None,
    registration: Registration,
    changed: Callable[[User, User | None], Flow[None]] | None = None,
) -> Flow[User]:
    """Apply ``SYNC_USER_INFO`` and a role mapping to a returning user."""
    changes: dict[str, Any] = {}
    if registration.update_role:
        role = identity.role if identity.role is not None else registration.default_role_id
        if role != user.role:
            changes["role"] = role
    if registration.sync_user_info:
        for name, value in (
            ("first_name", _clean(identity.first_name, _MAX_NAME)),
            ("last_name", _clean(identity.last_name, _MAX_NAME)),
            ("email", email),
        ):
            if value is not None and value != getattr(user, name):
                changes[name] = value
    if not changes:
        return user
    try:
        updated: User | None = yield from _store(users.update, user.id, **changes)
    except ValueError:
        # The new e-mail belongs to someone else: keep the old one, change the rest.
        changes.pop("email", None)
        log.warning("provider %s: user %s's new e-mail is taken", identity.provider, user.id)
        updated = (yield from _store(users.update, user.id, **changes)) if changes else user
    if changed is not None:
        # Before the new tokens are issued: they are made after the revocation's moment.
        yield from changed(user, updated)
    return updated if updated is not None else user
