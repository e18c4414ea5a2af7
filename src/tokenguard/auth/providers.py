"""Auth providers from ``AUTH_PROVIDERS`` and ``AUTH_<NAME>_*``, and ``GET /auth``'s list.

Providers are read the way Directus reads them (spec §10): each name in ``AUTH_PROVIDERS``
whose ``AUTH_<NAME>_DRIVER`` is set is listed, in that order. ``openid`` and ``oauth2``
providers sign users in through a redirect (:mod:`tokenguard.auth.drivers.sso`), ``saml``
providers through the identity provider's signed POST (:mod:`tokenguard.auth.drivers.saml`, the
``saml`` extra), and ``ldap`` providers with an identifier and a password checked against the
directory (:mod:`tokenguard.auth.drivers.ldap`); other drivers are listed so a front end shows
them, but tokenguard does not serve them.

How each driver reads its variables is registered in :data:`DRIVERS` (a :class:`Driver`: its
defaults, the fields it reads itself and the checks it makes); reading a provider is a
lookup there, with :data:`LISTED_ONLY` for the drivers that are only listed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from ..config import Settings
from ..config.parsers import as_bool, as_duration, as_list
from ..errors import ConfigError
from .drivers.external import Registration

__all__ = [
    "DRIVERS",
    "LDAP_DRIVER",
    "LISTED_ONLY",
    "SAML_DEFAULT_KEYS",
    "SSO_DRIVERS",
    "Driver",
    "LdapConfig",
    "Provider",
    "Variables",
    "driver_for",
    "load_providers",
    "providers_body",
    "role_mapping",
]

#: The drivers tokenguard signs users in with through a redirect.
SSO_DRIVERS = ("openid", "oauth2")
#: The driver whose users log in with an identifier and a password (``POST /auth/login/<p>``).
LDAP_DRIVER = "ldap"
_MODES = ("json", "cookie", "session")
_SCOPES = ("base", "one", "sub")


@dataclass(frozen=True, slots=True)
class LdapConfig:
    """An ``ldap`` provider's directory settings (``AUTH_<P>_*``, Directus's names)."""

    #: ``CLIENT_URL``: ``ldap://host:port`` or ``ldaps://host:port``.
    client_url: str
    #: ``USER_DN``: where the people are searched.
    user_dn: str
    #: ``BIND_DN`` / ``BIND_PASSWORD``: the service account that searches (both empty: an
    #: anonymous search).
    bind_dn: str = ""
    bind_password: str = field(default="", repr=False)
    user_attribute: str = "cn"
    user_scope: str = "one"
    mail_attribute: str = "mail"
    first_name_attribute: str = "givenName"
    last_name_attribute: str = "sn"
    #: ``GROUP_DN``: where the groups naming the user are searched (their ``cn`` is matched
    #: against ``ROLE_MAPPING``); ``None``: roles are not taken from the directory.
    group_dn: str | None = None
    group_attribute: str = "member"
    group_scope: str = "one"
    #: ``CLIENT_CONNECT_TIMEOUT`` and ``CLIENT_TIMEOUT`` (each operation), in milliseconds
    #: (the operation timeout is applied in whole seconds, rounded up).
    connect_timeout_ms: int = 5_000
    timeout_ms: int = 10_000
    #: tokenguard-specific ``CLIENT_TLS_CA_FILE``: the CA bundle ``ldaps://`` and StartTLS
    #: certificates are checked against (the system's when unset; never unchecked).
    ca_file: str | None = None
    #: tokenguard-specific ``CLIENT_START_TLS``: upgrade an ``ldap://`` connection first.
    start_tls: bool = False


_CLAIMS = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/"
#: Directus's SAML attribute names for the identifier, e-mail, given and family name.
SAML_DEFAULT_KEYS = (
    _CLAIMS + "nameidentifier",
    _CLAIMS + "emailaddress",
    _CLAIMS + "givenname",
    _CLAIMS + "surname",
)


@dataclass(frozen=True, slots=True)
class Provider:
    """One configured provider (``AUTH_<NAME>_*``)."""

    name: str
    driver: str
    label: str | None = None
    icon: str | None = None
    mode: str = "session"
    client_id: str | None = None
    client_secret: str | None = None
    scope: str = "openid profile email"
    issuer_url: str | None = None
    authorize_url: str | None = None
    access_url: str | None = None
    profile_url: str | None = None
    #: The claim naming the user at the provider, kept as their ``external_identifier``
    #: (``sub`` for openid; oauth2 has none by default). Missing: the e-mail is used.
    identifier_key: str | None = "sub"
    #: The claim holding the user's e-mail address.
    email_key: str = "email"
    first_name_key: str | None = None
    last_name_key: str | None = None
    allow_public_registration: bool = False
    default_role_id: str | None = None
    #: ``AUTH_<P>_SYNC_USER_INFO``: refresh names and e-mail at each login.
    sync_user_info: bool = False
    #: ``AUTH_<P>_ROLE_MAPPING`` (group -> role, in order) and the claim listing the groups.
    role_mapping: tuple[tuple[str, str], ...] = ()
    group_claim_name: str = "groups"
    redirect_allow_list: tuple[str, ...] = ()
    #: tokenguard-specific: let a local (``default``) user with the same, verified e-mail
    #: sign in through this provider too. Off by default: it trusts the provider's e-mails.
    link_existing: bool = False
    login_timeout_ms: int = 300_000
    #: The directory settings of an ``ldap`` provider, else ``None``.
    ldap: LdapConfig | None = None
    #: ``saml``: ``AUTH_<P>_IDP_metadata`` and ``AUTH_<P>_SP_metadata`` (XML documents).
    idp_metadata: str | None = None
    sp_metadata: str | None = None
    #: ``saml``, tokenguard-specific: accept IdP-initiated responses (no ``InResponseTo``).
    allow_unsolicited: bool = False
    #: ``saml``, tokenguard-specific: PEM files of our key and certificate
    #: (``AUTH_<P>_SP_KEY_FILE``/``_SP_CERT_FILE``): sign AuthnRequests, decrypt assertions.
    sp_key_file: str | None = None
    sp_cert_file: str | None = None

    def __repr__(self) -> str:
        return f"Provider(name={self.name!r}, driver={self.driver!r})"

    @property
    def signs_in(self) -> bool:
        return self.driver in SSO_DRIVERS

    @property
    def registration(self) -> Registration:
        """The account rules users of this provider are found or registered by."""
        return Registration(
            allow_public_registration=self.allow_public_registration,
            default_role_id=self.default_role_id,
            sync_user_info=self.sync_user_info,
            # LDAP takes roles from groups only when GROUP_DN is set (as Directus does).
            update_role=bool(self.role_mapping)
            and (self.ldap is None or self.ldap.group_dn is not None),
            link_existing=self.link_existing,
        )


def role_mapping(name: str, value: str | None) -> tuple[tuple[str, str], ...]:
    """``AUTH_<P>_ROLE_MAPPING``: a JSON object of group name -> role id, order kept."""
    if not value:
        return ()
    try:
        mapping = json.loads(value)
    except ValueError:
        mapping = None
    if not isinstance(mapping, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and k and v for k, v in mapping.items()
    ):
        example = '{"admins": "<role id>"}'
        raise ConfigError(f"{name} must be a JSON object of group -> role id, e.g. {example}")
    return tuple(mapping.items())


class Variables:
    """One provider's ``AUTH_<NAME>_*`` variables, as its driver reads them."""

    def __init__(self, name: str, env: Mapping[str, str]) -> None:
        self.prefix = f"AUTH_{name.upper()}_"
        self.env = env

    def get(self, key: str) -> str | None:
        """``AUTH_<NAME>_<key>``, ``None`` when unset or empty."""
        value = self.env.get(self.prefix + key)
        return value if value else None

    def flag(self, key: str, default: str = "false") -> bool:
        """``AUTH_<NAME>_<key>`` as a boolean (``default`` when unset); raises ``ConfigError``."""
        return as_bool(self.prefix + key, self.get(key) or default)


def _no_fields(variables: Variables) -> dict[str, Any]:
    return {}


def _as_read(provider: Provider, variables: Variables) -> Provider:
    return provider


@dataclass(frozen=True, slots=True)
class Driver:
    """How one login driver reads its ``AUTH_<NAME>_*`` variables into a :class:`Provider`.

    :func:`load_providers` reads the variables every driver has (label, mode, claim names,
    registration, …) with the defaults given here, ``read`` first for the driver's own fields
    and ``finish`` last to check the whole (both raise ``ConfigError``), in that order so
    that the first error reported for a configuration stays the same.
    """

    #: The claim (attribute) names used when not configured: identifier, e-mail, first and
    #: last name.
    default_keys: tuple[str | None, str, str | None, str | None] = (None, "email", None, None)
    #: The variables naming the first- and last-name claims.
    name_keys: tuple[str, str] = ("FIRST_NAME_KEY", "LAST_NAME_KEY")
    #: ``AUTH_<NAME>_SCOPE`` when unset.
    default_scope: str = "email"
    #: ``AUTH_<NAME>_ALLOW_PUBLIC_REGISTRATION`` when unset.
    registers: bool = False
    #: The driver's own :class:`Provider` fields, read before the common ones.
    read: Callable[[Variables], dict[str, Any]] = _no_fields
    #: The provider once read, checked (and completed) by the driver.
    finish: Callable[[Provider, Variables], Provider] = _as_read


def _finish_openid(provider: Provider, variables: Variables) -> Provider:
    prefix = variables.prefix
    if not provider.client_id:
        raise ConfigError(f"{prefix}CLIENT_ID is required for the openid driver")
    if not provider.issuer_url:
        raise ConfigError(f"{prefix}ISSUER_URL is required for the openid driver")
    return provider


def _finish_oauth2(provider: Provider, variables: Variables) -> Provider:
    prefix = variables.prefix
    if not provider.client_id:
        raise ConfigError(f"{prefix}CLIENT_ID is required for the oauth2 driver")
    if not (provider.authorize_url and provider.access_url and provider.profile_url):
        raise ConfigError(
            f"{prefix}AUTHORIZE_URL, {prefix}ACCESS_URL and {prefix}PROFILE_URL are required "
            "for the oauth2 driver"
        )
    return provider


def _read_saml(variables: Variables) -> dict[str, Any]:
    def either(key: str) -> str | None:
        # Directus reads AUTH_<P>_IDP_* into samlify's options, camel-cased: `metadata` and
        # `METADATA` both name the metadata.
        return variables.get(key + "metadata") or variables.get(key + "METADATA")

    return {
        "idp_metadata": either("IDP_"),
        "sp_metadata": either("SP_"),
        "sp_key_file": variables.get("SP_KEY_FILE"),
        "sp_cert_file": variables.get("SP_CERT_FILE"),
    }


def _finish_saml(provider: Provider, variables: Variables) -> Provider:
    prefix = variables.prefix
    provider = replace(provider, allow_unsolicited=variables.flag("ALLOW_UNSOLICITED"))
    # Parsed (and checked further) when the SAML login is built, at start-up.
    for side in ("IDP", "SP"):
        value = provider.idp_metadata if side == "IDP" else provider.sp_metadata
        if not value or "<" not in value:
            raise ConfigError(
                f"{prefix}{side}_metadata (the {side} metadata XML) is required for the saml driver"
            )
    if (provider.sp_key_file is None) != (provider.sp_cert_file is None):
        raise ConfigError(f"{prefix}SP_KEY_FILE and {prefix}SP_CERT_FILE go together")
    return provider


def _read_ldap(variables: Variables) -> dict[str, Any]:
    prefix, env, get = variables.prefix, variables.env, variables.get
    url = get("CLIENT_URL")
    if not url:
        raise ConfigError(f"{prefix}CLIENT_URL is required for the ldap driver")
    if not url.lower().startswith(("ldap://", "ldaps://")):
        raise ConfigError(f"{prefix}CLIENT_URL must be an ldap:// or ldaps:// URL")
    user_dn = get("USER_DN")
    if not user_dn:
        raise ConfigError(f"{prefix}USER_DN is required for the ldap driver")
    # As in Directus both must be given; set to empty they mean an anonymous search.
    bind_dn, bind_password = env.get(prefix + "BIND_DN"), env.get(prefix + "BIND_PASSWORD")
    if bind_dn is None or bind_password is None:
        raise ConfigError(
            f"{prefix}BIND_DN and {prefix}BIND_PASSWORD are required for the ldap driver "
            "(set both empty for an anonymous search)"
        )
    if bool(bind_dn) != bool(bind_password):
        raise ConfigError(f"{prefix}BIND_DN and {prefix}BIND_PASSWORD go together")
    scopes = {}
    for key in ("USER_SCOPE", "GROUP_SCOPE"):
        scope = (get(key) or "one").lower()
        if scope not in _SCOPES:
            raise ConfigError(f"{prefix}{key} must be base, one or sub, not {scope!r}")
        scopes[key] = scope
    timeouts = {}
    for key, default in (("CLIENT_CONNECT_TIMEOUT", "5000"), ("CLIENT_TIMEOUT", "10000")):
        ms = as_duration(prefix + key, get(key) or default)
        if ms <= 0:
            raise ConfigError(f"{prefix}{key} must be positive")
        timeouts[key] = ms
    ldap = LdapConfig(
        client_url=url,
        user_dn=user_dn,
        bind_dn=bind_dn,
        bind_password=bind_password,
        user_attribute=get("USER_ATTRIBUTE") or "cn",
        user_scope=scopes["USER_SCOPE"],
        mail_attribute=get("MAIL_ATTRIBUTE") or "mail",
        first_name_attribute=get("FIRST_NAME_ATTRIBUTE") or "givenName",
        last_name_attribute=get("LAST_NAME_ATTRIBUTE") or "sn",
        group_dn=get("GROUP_DN"),
        group_attribute=get("GROUP_ATTRIBUTE") or "member",
        group_scope=scopes["GROUP_SCOPE"],
        connect_timeout_ms=timeouts["CLIENT_CONNECT_TIMEOUT"],
        timeout_ms=timeouts["CLIENT_TIMEOUT"],
        ca_file=get("CLIENT_TLS_CA_FILE"),
        start_tls=variables.flag("CLIENT_START_TLS"),
    )
    return {"ldap": ldap}


def _finish_ldap(provider: Provider, variables: Variables) -> Provider:
    prefix = variables.prefix
    ldap = provider.ldap
    if ldap is not None and ldap.group_dn is not None and not provider.role_mapping:
        # Directus matches the group names with its roles table; tokenguard has none.
        raise ConfigError(
            f"{prefix}GROUP_DN needs {prefix}ROLE_MAPPING (a JSON object of group cn -> role id)"
        )
    return provider


#: The drivers tokenguard serves, by ``AUTH_<NAME>_DRIVER``.
DRIVERS: Mapping[str, Driver] = MappingProxyType(
    {
        "openid": Driver(
            default_keys=("sub", "email", "given_name", "family_name"),
            default_scope="openid profile email",
            finish=_finish_openid,
        ),
        "oauth2": Driver(finish=_finish_oauth2),
        "saml": Driver(
            default_keys=SAML_DEFAULT_KEYS,
            name_keys=("GIVEN_NAME_KEY", "FAMILY_NAME_KEY"),
            read=_read_saml,
            finish=_finish_saml,
        ),
        # Directus registers every directory user who logs in; the others register nobody
        # unless told to.
        LDAP_DRIVER: Driver(registers=True, read=_read_ldap, finish=_finish_ldap),
    }
)
#: Any other driver (Directus's ``local`` among them): listed by ``GET /auth`` so a front end
#: shows it, with the common variables only, but not served.
LISTED_ONLY = Driver()


def driver_for(name: str) -> Driver:
    """The :class:`Driver` of ``AUTH_<P>_DRIVER=name`` (:data:`LISTED_ONLY` when not served)."""
    return DRIVERS.get(name, LISTED_ONLY)


def _provider(name: str, env: Mapping[str, str]) -> Provider | None:
    variables = Variables(name, env)
    get, prefix = variables.get, variables.prefix
    driver_name = get("DRIVER")
    if driver_name is None:
        return None
    driver = driver_for(driver_name)
    mode = (get("MODE") or "session").lower()
    if mode not in _MODES:
        raise ConfigError(f"{prefix}MODE must be json, cookie or session, not {mode!r}")
    own = driver.read(variables)
    keys, (first_name, last_name) = driver.default_keys, driver.name_keys
    provider = Provider(
        name=name,
        driver=driver_name,
        label=get("LABEL"),
        icon=get("ICON"),
        mode=mode,
        client_id=get("CLIENT_ID"),
        client_secret=get("CLIENT_SECRET"),
        scope=get("SCOPE") or driver.default_scope,
        issuer_url=get("ISSUER_URL"),
        authorize_url=get("AUTHORIZE_URL"),
        access_url=get("ACCESS_URL"),
        profile_url=get("PROFILE_URL"),
        identifier_key=get("IDENTIFIER_KEY") or keys[0],
        email_key=get("EMAIL_KEY") or keys[1],
        first_name_key=get(first_name) or keys[2],
        last_name_key=get(last_name) or keys[3],
        allow_public_registration=variables.flag(
            "ALLOW_PUBLIC_REGISTRATION", "true" if driver.registers else "false"
        ),
        default_role_id=get("DEFAULT_ROLE_ID"),
        sync_user_info=variables.flag("SYNC_USER_INFO"),
        role_mapping=role_mapping(prefix + "ROLE_MAPPING", get("ROLE_MAPPING")),
        group_claim_name=get("GROUP_CLAIM_NAME") or "groups",
        redirect_allow_list=as_list(
            prefix + "REDIRECT_ALLOW_LIST", get("REDIRECT_ALLOW_LIST") or ""
        ),
        link_existing=variables.flag("LINK_EXISTING"),
        login_timeout_ms=as_duration(prefix + "LOGIN_TIMEOUT", get("LOGIN_TIMEOUT") or "5m"),
        **own,
    )
    return driver.finish(provider, variables)


def load_providers(settings: Settings) -> tuple[Provider, ...]:
    """The providers of ``settings`` in ``AUTH_PROVIDERS`` order; raises ``ConfigError``."""
    env = dict(settings.auth_provider_env)
    found: list[Provider] = []
    seen: set[str] = set()
    for name in settings.auth_providers:
        if not name.replace("-", "").replace("_", "").isalnum() or name.lower() == "default":
            raise ConfigError(f"AUTH_PROVIDERS: {name!r} is not a usable provider name")
        if name.lower() in seen:
            raise ConfigError(f"AUTH_PROVIDERS names {name!r} twice")
        seen.add(name.lower())
        provider = _provider(name, env)
        if provider is not None:
            found.append(provider)
    if any(p.signs_in for p in found) and not settings.public_url:
        raise ConfigError("single sign-on needs PUBLIC_URL (the providers' callback address)")
    return tuple(found)


def providers_body(
    providers: tuple[Provider, ...], disable_default: bool, *, session_only: bool = False
) -> bytes:
    """``GET /auth``'s body: ``{"data":[{name,label,driver,icon}…],"disableDefault":…}``.

    ``session_only`` (``?sessionOnly``) keeps the openid/oauth2/saml providers whose mode is
    ``session`` and every other driver, as Directus does.
    """
    data = []
    for p in providers:
        if session_only and p.driver in ("openid", "oauth2", "saml") and p.mode != "session":
            continue
        item: dict[str, str] = {"name": p.name}
        if p.label is not None:
            item["label"] = p.label
        item["driver"] = p.driver
        if p.icon is not None:
            item["icon"] = p.icon
        data.append(item)
    body = {"data": data, "disableDefault": disable_default}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
