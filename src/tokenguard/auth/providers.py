"""Auth providers from ``AUTH_PROVIDERS`` and ``AUTH_<NAME>_*``, and ``GET /auth``'s list.

Providers are read the way Directus reads them (spec §10): each name in ``AUTH_PROVIDERS``
whose ``AUTH_<NAME>_DRIVER`` is set is listed, in that order. ``openid`` and ``oauth2``
providers also sign users in (:mod:`tokenguard.auth.sso`), and so do ``saml`` providers
(:mod:`tokenguard.auth.saml`, the ``saml`` extra); other drivers (``ldap``) are listed so a
front end shows them, but tokenguard does not serve them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from ..config import Settings, _as_bool, _as_duration, _as_list
from ..errors import ConfigError
from .external import Registration

__all__ = [
    "SAML_DEFAULT_KEYS",
    "SSO_DRIVERS",
    "Provider",
    "load_providers",
    "providers_body",
    "role_mapping",
]

#: The drivers tokenguard signs users in with.
SSO_DRIVERS = ("openid", "oauth2")
_MODES = ("json", "cookie", "session")
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
            update_role=bool(self.role_mapping),
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


def _provider(name: str, env: Mapping[str, str]) -> Provider | None:
    prefix = f"AUTH_{name.upper()}_"

    def get(key: str) -> str | None:
        value = env.get(prefix + key)
        return value if value else None

    driver = get("DRIVER")
    if driver is None:
        return None

    def either(key: str) -> str | None:
        # Directus reads AUTH_<P>_IDP_* into samlify's options, camel-cased: `metadata` and
        # `METADATA` both name the metadata.
        return get(key + "metadata") or get(key + "METADATA")

    mode = (get("MODE") or "session").lower()
    if mode not in _MODES:
        raise ConfigError(f"{prefix}MODE must be json, cookie or session, not {mode!r}")
    openid = driver == "openid"
    saml = driver == "saml"
    # The default claim (attribute) names: identifier, e-mail, first and last name.
    keys: tuple[str | None, ...] = (None, "email", None, None)
    if saml:
        keys = SAML_DEFAULT_KEYS
    elif openid:
        keys = ("sub", "email", "given_name", "family_name")
    provider = Provider(
        name=name,
        driver=driver,
        label=get("LABEL"),
        icon=get("ICON"),
        mode=mode,
        client_id=get("CLIENT_ID"),
        client_secret=get("CLIENT_SECRET"),
        scope=get("SCOPE") or ("openid profile email" if openid else "email"),
        issuer_url=get("ISSUER_URL"),
        authorize_url=get("AUTHORIZE_URL"),
        access_url=get("ACCESS_URL"),
        profile_url=get("PROFILE_URL"),
        identifier_key=get("IDENTIFIER_KEY") or keys[0],
        email_key=get("EMAIL_KEY") or keys[1] or "email",
        first_name_key=get("GIVEN_NAME_KEY" if saml else "FIRST_NAME_KEY") or keys[2],
        last_name_key=get("FAMILY_NAME_KEY" if saml else "LAST_NAME_KEY") or keys[3],
        allow_public_registration=_as_bool(
            prefix + "ALLOW_PUBLIC_REGISTRATION", get("ALLOW_PUBLIC_REGISTRATION") or "false"
        ),
        default_role_id=get("DEFAULT_ROLE_ID"),
        sync_user_info=_as_bool(prefix + "SYNC_USER_INFO", get("SYNC_USER_INFO") or "false"),
        role_mapping=role_mapping(prefix + "ROLE_MAPPING", get("ROLE_MAPPING")),
        group_claim_name=get("GROUP_CLAIM_NAME") or "groups",
        redirect_allow_list=_as_list(
            prefix + "REDIRECT_ALLOW_LIST", get("REDIRECT_ALLOW_LIST") or ""
        ),
        link_existing=_as_bool(prefix + "LINK_EXISTING", get("LINK_EXISTING") or "false"),
        login_timeout_ms=_as_duration(prefix + "LOGIN_TIMEOUT", get("LOGIN_TIMEOUT") or "5m"),
        idp_metadata=either("IDP_") if saml else None,
        sp_metadata=either("SP_") if saml else None,
        allow_unsolicited=saml
        and _as_bool(prefix + "ALLOW_UNSOLICITED", get("ALLOW_UNSOLICITED") or "false"),
        sp_key_file=get("SP_KEY_FILE") if saml else None,
        sp_cert_file=get("SP_CERT_FILE") if saml else None,
    )
    if saml:
        # Parsed (and checked further) when the SAML login is built, at start-up.
        for side in ("IDP", "SP"):
            value = provider.idp_metadata if side == "IDP" else provider.sp_metadata
            if not value or "<" not in value:
                raise ConfigError(
                    f"{prefix}{side}_metadata (the {side} metadata XML) is required for the "
                    "saml driver"
                )
        if (provider.sp_key_file is None) != (provider.sp_cert_file is None):
            raise ConfigError(f"{prefix}SP_KEY_FILE and {prefix}SP_CERT_FILE go together")
    if provider.signs_in:
        if not provider.client_id:
            raise ConfigError(f"{prefix}CLIENT_ID is required for the {driver} driver")
        if openid and not provider.issuer_url:
            raise ConfigError(f"{prefix}ISSUER_URL is required for the openid driver")
        if not openid and not (
            provider.authorize_url and provider.access_url and provider.profile_url
        ):
            raise ConfigError(
                f"{prefix}AUTHORIZE_URL, {prefix}ACCESS_URL and {prefix}PROFILE_URL are required "
                "for the oauth2 driver"
            )
    return provider


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
