"""Auth providers from ``AUTH_PROVIDERS`` and ``AUTH_<NAME>_*``, and ``GET /auth``'s list.

Providers are read the way Directus reads them (spec §10): each name in ``AUTH_PROVIDERS``
whose ``AUTH_<NAME>_DRIVER`` is set is listed, in that order. ``openid`` and ``oauth2``
providers also sign users in (:mod:`tokenguard.auth.sso`); other drivers (``ldap``,
``saml``) are listed so a front end shows them, but tokenguard does not serve them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from ..config import Settings, _as_bool, _as_duration, _as_list
from ..errors import ConfigError

__all__ = ["SSO_DRIVERS", "Provider", "load_providers", "providers_body"]

#: The drivers tokenguard signs users in with.
SSO_DRIVERS = ("openid", "oauth2")
_MODES = ("json", "cookie", "session")


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
    #: The claim holding the e-mail address the user is found (or created) by.
    identifier_key: str = "email"
    first_name_key: str | None = None
    last_name_key: str | None = None
    allow_public_registration: bool = False
    default_role_id: str | None = None
    redirect_allow_list: tuple[str, ...] = ()
    #: tokenguard-specific: let a local (``default``) user with the same, verified e-mail
    #: sign in through this provider too. Off by default: it trusts the provider's e-mails.
    link_existing: bool = False
    login_timeout_ms: int = 300_000

    def __repr__(self) -> str:
        return f"Provider(name={self.name!r}, driver={self.driver!r})"

    @property
    def signs_in(self) -> bool:
        return self.driver in SSO_DRIVERS


def _provider(name: str, env: Mapping[str, str]) -> Provider | None:
    prefix = f"AUTH_{name.upper()}_"

    def get(key: str) -> str | None:
        value = env.get(prefix + key)
        return value if value else None

    driver = get("DRIVER")
    if driver is None:
        return None
    mode = (get("MODE") or "session").lower()
    if mode not in _MODES:
        raise ConfigError(f"{prefix}MODE must be json, cookie or session, not {mode!r}")
    openid = driver == "openid"
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
        identifier_key=get("IDENTIFIER_KEY") or get("EMAIL_KEY") or "email",
        first_name_key=get("FIRST_NAME_KEY") or ("given_name" if openid else None),
        last_name_key=get("LAST_NAME_KEY") or ("family_name" if openid else None),
        allow_public_registration=_as_bool(
            prefix + "ALLOW_PUBLIC_REGISTRATION", get("ALLOW_PUBLIC_REGISTRATION") or "false"
        ),
        default_role_id=get("DEFAULT_ROLE_ID"),
        redirect_allow_list=_as_list(
            prefix + "REDIRECT_ALLOW_LIST", get("REDIRECT_ALLOW_LIST") or ""
        ),
        link_existing=_as_bool(prefix + "LINK_EXISTING", get("LINK_EXISTING") or "false"),
        login_timeout_ms=_as_duration(prefix + "LOGIN_TIMEOUT", get("LOGIN_TIMEOUT") or "5m"),
    )
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
