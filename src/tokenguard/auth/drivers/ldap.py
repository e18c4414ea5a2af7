"""LDAP login (``POST <auth>/login/<provider>``), as Directus's ``ldap`` driver does it.

The flow, for ``{identifier, password}`` (spec §10.2):

1. An empty password is refused before anything is sent: a simple bind with a DN and no
   password is an *unauthenticated* bind (RFC 4513 §5.1.2), which many servers answer with
   success.
2. The service account (``AUTH_<P>_BIND_DN`` / ``_BIND_PASSWORD``) binds and searches
   ``USER_DN`` (``USER_SCOPE``) for ``(<USER_ATTRIBUTE>=<identifier>)``. The identifier is
   escaped (RFC 4515), so ``*`` or ``a)(uid=*`` is a literal value that names nobody; an
   identifier that several entries share is refused rather than guessed.
3. With ``GROUP_DN``, the groups whose ``GROUP_ATTRIBUTE`` names the user (their DN; their
   ``uid`` for ``memberUid``) are read, and their ``cn`` picks the role from
   ``ROLE_MAPPING`` (else ``DEFAULT_ROLE_ID``). Active Directory's ``userAccountControl``
   (disabled, locked out, password expired) refuses the login.
4. The user's own DN binds with the password: that is the password check, under the same
   lockout as a local login (an existing user's failed binds count towards
   ``AUTH_LOGIN_ATTEMPTS``).
5. The user is found by their DN (``external_identifier``), or registered, with the account
   rules of :mod:`tokenguard.auth.drivers.external` (Directus registers every directory user; set
   ``ALLOW_PUBLIC_REGISTRATION=false`` to admit only users that already exist). Then the
   one-time password, and the tokens, exactly as for ``/auth/login``.

At each refresh of an LDAP user's session the DN is looked up again (as Directus does): an
account removed from the directory or disabled there loses its session then.

Wrong password and unknown user are the same 401 ``INVALID_CREDENTIALS``. A directory that
cannot be reached, times out or answers something unexpected is 503 ``SERVICE_UNAVAILABLE``
and nobody is let in. ldap3 is blocking: every directory call is a blocking
:class:`~tokenguard.flow.Call`, which the ASGI driver runs in a worker thread.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from ...errors import AuthError, MissingExtra, invalid_credentials, service_unavailable
from ...flow import Call, Flow
from ...stores.base import User
from ..providers import LdapConfig, Provider
from ..service import AuthService, ClientInfo, Credentials
from .external import ExternalIdentity, check_user_store, mapped_role, user_for_identity

__all__ = ["Directory", "DirectoryEntry", "LdapLogin", "MAX_IDENTIFIER_LENGTH", "ldap_logins"]

log = logging.getLogger("tokenguard.auth")
T = TypeVar("T")

#: Active Directory's ``userAccountControl`` flags that refuse a login, as Directus checks
#: them: ACCOUNTDISABLE (0x2), LOCKOUT (0x10), PASSWORD_EXPIRED (0x800000).
INVALID_ACCOUNT_FLAGS = 0x800012
#: Longest identifier sent to the directory; a longer one names nobody.
MAX_IDENTIFIER_LENGTH = 512
UNREACHABLE = "Service is unreachable"
UNEXPECTED = "Service returned unexpected response"
#: LDAP result codes that mean "these credentials are not good" (RFC 4511): a 401, not a 503.
_REFUSED = frozenset({"invalidCredentials", "inappropriateAuthentication",
                      "insufficientAccessRights", "invalidDNSyntax"})


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    """The person an identifier names in the directory."""

    dn: str
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    uid: str | None = None
    account_control: int = 0
    #: The ``cn`` of every group under ``GROUP_DN`` that names the user.
    groups: tuple[str, ...] = ()

    @property
    def disabled(self) -> bool:
        return bool(self.account_control & INVALID_ACCOUNT_FLAGS)


def _first(value: Any) -> str | None:
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if value is None:
        return None
    text = str(value)
    return text or None


def _control(values: Any) -> int:
    control = _first(values.get("userAccountControl"))
    return int(control) if control and control.isdigit() else 0


def _all(value: Any) -> list[str]:
    values = value if isinstance(value, (list, tuple)) else [value]
    return [v for v in (_first(v) for v in values) if v]


class _Unavailable(Exception):
    """The directory did not answer as a directory should (a 503)."""


class Directory:
    """One ``ldap`` provider's directory, through ldap3. Every method blocks.

    A connection is opened per operation and closed after it: a login costs two short
    connections to the directory, and nothing is shared between threads.
    """

    def __init__(self, name: str, config: LdapConfig) -> None:
        self.name = name
        self.config = config
        try:
            import ldap3  # noqa: F401  (the `ldap` extra)
        except ImportError as exc:
            raise MissingExtra(f"the ldap driver of AUTH_{name.upper()}", "ldap3", "ldap") from exc

    def __repr__(self) -> str:
        return f"Directory({self.name!r})"

    # -- connections ------------------------------------------------------------------------

    def _server(self) -> Any:
        import ssl

        import ldap3

        config = self.config
        tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=config.ca_file)
        return ldap3.Server(
            config.client_url,
            get_info=ldap3.NONE,  # no schema read: one round trip less, and no schema checks
            connect_timeout=config.connect_timeout_ms / 1000,
            tls=tls,
        )

    def _connection(self, user: str | None, password: str | None) -> Any:
        import ldap3

        return ldap3.Connection(
            self._server(),
            user=user,
            password=password,
            auto_bind=ldap3.AUTO_BIND_NONE,
            # Whole seconds: ldap3 packs it into SO_RCVTIMEO as an integer.
            receive_timeout=_seconds(self.config.timeout_ms),
            raise_exceptions=False,
            read_only=True,
            # A referral would carry the bind (the service password, the user's) to another
            # server: never followed.
            auto_referrals=False,
        )

    def _open(self, connection: Any) -> None:
        connection.open()
        # A StartTLS that did not happen must not leave the bind to go out in clear.
        if self.config.start_tls and not connection.server.ssl and not connection.start_tls():
            raise _Unavailable("StartTLS failed")

    def _unavailable(self, what: str, exc: BaseException | None = None) -> AuthError:
        # Only the exception's type is logged: its text may carry the server's words.
        log.warning(
            "ldap provider %s: %s%s", self.name, what, f" ({type(exc).__name__})" if exc else ""
        )
        if exc is not None:
            return service_unavailable("ldap", UNREACHABLE)
        return service_unavailable("ldap", UNEXPECTED)

    def _run(self, user: str | None, password: str | None, operation: Callable[[Any], T]) -> T:
        """``operation`` over a fresh connection as ``user``, closed afterwards; whatever the
        directory does wrong is a 503 :class:`~tokenguard.errors.AuthError`."""
        from ldap3.core.exceptions import LDAPException

        connection = self._connection(user, password)
        try:
            self._open(connection)
            return operation(connection)
        except AuthError:
            raise
        except _Unavailable as exc:
            raise self._unavailable(str(exc)) from None
        except (LDAPException, OSError) as exc:
            raise self._unavailable("the directory is unreachable", exc) from None
        finally:
            _close(connection)

    def _as_service(self, operation: Callable[[Any], T]) -> T:
        """``operation`` bound as the service account (``BIND_DN``; anonymous when empty)."""
        config = self.config

        def bound(connection: Any) -> T:
            if not connection.bind():
                description = connection.result.get("description")
                raise _Unavailable(f"the service account could not bind ({description})")
            return operation(connection)

        return self._run(config.bind_dn or None, config.bind_password or None, bound)

    # -- the operations ---------------------------------------------------------------------

    def find(self, identifier: str) -> DirectoryEntry | None:
        """The entry ``identifier`` names (``None``: nobody, or more than one), with its
        groups. Raises a 503 :class:`~tokenguard.errors.AuthError` when the directory
        cannot answer."""

        def search(connection: Any) -> DirectoryEntry | None:
            entry = self._search_user(connection, identifier)
            if entry is None or self.config.group_dn is None:
                return entry
            return replace(entry, groups=self._search_groups(connection, entry))

        return self._as_service(search)

    def lookup(self, dn: str) -> DirectoryEntry | None:
        """The entry at ``dn`` (``None``: it is gone). Raises a 503 like :meth:`find`."""

        def read(connection: Any) -> DirectoryEntry | None:
            try:
                found = self._search(
                    connection, dn, "(objectClass=*)", "base", ("userAccountControl",)
                )
            except _Unavailable:
                if connection.result.get("description") == "noSuchObject":
                    return None
                raise
            if not found:
                return None
            values = found[0].get("attributes") or {}
            return DirectoryEntry(str(found[0]["dn"]), account_control=_control(values))

        return self._as_service(read)

    def verify(self, dn: str, password: str) -> bool:
        """Whether ``dn`` binds with ``password``. An empty password is ``False`` without
        asking (it would be an unauthenticated bind). Raises a 503 when the directory cannot
        answer."""
        if not password or not dn:
            return False

        def bind(connection: Any) -> bool:
            if connection.bind():
                return True
            description = connection.result.get("description")
            if description in _REFUSED:
                return False
            raise _Unavailable(f"the user bind failed ({description})")

        return self._run(dn, password, bind)

    # -- searches ---------------------------------------------------------------------------

    def _search(
        self, connection: Any, base: str, query: str, scope: str, attributes: Sequence[str]
    ) -> list[dict[str, Any]]:
        import ldap3

        scopes = {"base": ldap3.BASE, "one": ldap3.LEVEL, "sub": ldap3.SUBTREE}
        connection.search(
            base, query, search_scope=scopes[scope], attributes=list(attributes),
            time_limit=_seconds(self.config.timeout_ms),
        )
        result = connection.result.get("description")
        if result == "noSuchObject":
            # The base itself is missing: a configuration to fix, not a wrong password.
            raise _Unavailable(f"{base!r} does not exist")
        if result not in ("success", "sizeLimitExceeded"):
            raise _Unavailable(f"the search failed ({result})")
        return [r for r in connection.response or () if r.get("type") == "searchResEntry"]

    def _search_user(self, connection: Any, identifier: str) -> DirectoryEntry | None:
        from ldap3.utils.conv import escape_filter_chars

        config = self.config
        attributes = (
            "uid",
            config.mail_attribute,
            config.first_name_attribute,
            config.last_name_attribute,
            "userAccountControl",
        )
        query = f"({config.user_attribute}={escape_filter_chars(identifier)})"
        found = self._search(connection, config.user_dn, query, config.user_scope, attributes)
        if not found:
            return None
        if len(found) > 1:
            log.warning(
                "ldap provider %s: %d entries share one %s; refused",
                self.name, len(found), config.user_attribute,
            )
            return None
        entry = found[0]
        values = entry.get("attributes") or {}
        return DirectoryEntry(
            dn=str(entry["dn"]),
            email=_first(values.get(config.mail_attribute)),
            first_name=_first(values.get(config.first_name_attribute)),
            last_name=_first(values.get(config.last_name_attribute)),
            uid=_first(values.get("uid")),
            account_control=_control(values),
        )

    def _search_groups(self, connection: Any, entry: DirectoryEntry) -> tuple[str, ...]:
        from ldap3.utils.conv import escape_filter_chars

        config = self.config
        assert config.group_dn is not None
        member = entry.dn
        if config.group_attribute.lower() == "memberuid" and entry.uid:
            member = entry.uid
        query = f"({config.group_attribute}={escape_filter_chars(member)})"
        found = self._search(connection, config.group_dn, query, config.group_scope, ("cn",))
        groups: list[str] = []
        for group in found:
            groups.extend(_all((group.get("attributes") or {}).get("cn")))
        return tuple(groups)


def _seconds(ms: int) -> int:
    return max(1, -(-ms // 1000))


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _close(connection: Any) -> None:
    try:
        connection.unbind()
    except Exception:  # already closed, or never opened: nothing to release
        log.debug("ldap connection closed with an error")


class LdapLogin:
    """The login of one ``ldap`` provider, a
    :class:`~tokenguard.auth.service.PasswordProvider` for :meth:`AuthService.login`."""

    def __init__(self, provider: Provider, directory: Directory | None = None) -> None:
        if provider.ldap is None:
            raise ValueError(f"provider {provider.name!r} is not an ldap provider")
        self.provider = provider
        self.directory = directory if directory is not None else Directory(
            provider.name, provider.ldap
        )
        self._roles = {group.casefold(): role for group, role in provider.role_mapping}

    @property
    def name(self) -> str:
        return self.provider.name

    def __repr__(self) -> str:
        return f"LdapLogin({self.provider.name!r})"

    def _directory(self, fn: Any, *args: Any) -> Flow[Any]:
        """A directory call in a worker thread; whatever goes wrong there is a 503."""
        try:
            return (yield Call(fn, args, blocking=True))
        except AuthError:
            raise
        except Exception as exc:
            log.error("ldap provider %s failed: %s", self.name, type(exc).__name__)
            raise service_unavailable("ldap", UNEXPECTED) from None

    def _bind(self, dn: str, password: str) -> Flow[bool]:
        ok: bool = yield from self._directory(self.directory.verify, dn, password)
        return ok

    def identity(self, entry: DirectoryEntry) -> ExternalIdentity:
        """The identity a directory entry stands for: its DN is the external identifier."""
        role = None
        if self.provider.ldap is not None and self.provider.ldap.group_dn is not None:
            role = mapped_role([g.casefold() for g in entry.groups], self._roles)
        return ExternalIdentity(
            provider=self.name,
            identifier=entry.dn,
            email=entry.email,
            first_name=entry.first_name,
            last_name=entry.last_name,
            role=role,
        )

    def authenticate(
        self,
        service: AuthService,
        credentials: Credentials,
        client: ClientInfo,
        found: list[User],
    ) -> Flow[User]:
        identifier, password = credentials.email, credentials.password
        # Nothing is sent for an empty password (an unauthenticated bind would "succeed"),
        # nor for what cannot be sent as UTF-8 (a lone surrogate from JSON's \ud800).
        if not identifier or not password or len(identifier) > MAX_IDENTIFIER_LENGTH:
            raise invalid_credentials()
        if not (_utf8(identifier) and _utf8(password)):
            raise invalid_credentials()
        entry: DirectoryEntry | None = yield from self._directory(
            self.directory.find, identifier
        )
        if entry is None or entry.disabled:
            if entry is not None:
                log.info("ldap provider %s: the account is disabled", self.name)
            raise invalid_credentials()
        users = service.users
        known: User | None = yield from service._store(
            users.get_by_external_identifier, entry.dn
        )
        if known is not None:
            # As for a local login: an inactive user, or one of another provider, is refused
            # before the password is tried (and so before the lockout counts).
            if known.status != "active" or known.provider != self.name:
                raise invalid_credentials()
            found.append(known)
            yield from service.check_password(known, client, self._bind(entry.dn, password))
        else:
            ok = yield from self._bind(entry.dn, password)
            if not ok:
                raise invalid_credentials()
        user = yield from user_for_identity(
            users,
            self.identity(entry),
            self.provider.registration,
            # The role sync of this sign-in is audited with its client.
            changed=functools.partial(service.user_changed, client=client),
        )
        if not found:
            found.append(user)
        yield from service.check_otp(user, credentials.otp)
        return user

    def verify_password(self, user: User, password: str) -> Flow[bool]:
        """Whether ``password`` binds as ``user``'s DN (``POST /users/me/tfa/generate``)."""
        if not user.external_identifier or not password or not _utf8(password):
            return False
        return (yield from self._bind(user.external_identifier, password))

    def still_valid(self, user: User) -> Flow[bool]:
        """At each refresh, as Directus does: the user's DN must still be in the directory
        and not disabled (``userAccountControl``). A directory that cannot answer is a 503,
        which keeps the session for a later try."""
        dn = user.external_identifier
        if not dn:
            return False
        entry: DirectoryEntry | None = yield from self._directory(self.directory.lookup, dn)
        if entry is None or entry.disabled:
            log.info("ldap provider %s: user %s is gone or disabled", self.name, user.id)
            return False
        return True


def ldap_logins(service: AuthService, providers: Sequence[Provider]) -> dict[str, LdapLogin]:
    """The logins of the ``ldap`` providers among ``providers``, by name."""
    logins = {p.name: LdapLogin(p) for p in providers if p.ldap is not None}
    if logins:
        check_user_store(service.users)
        service.password_providers.update(logins)
    return logins
