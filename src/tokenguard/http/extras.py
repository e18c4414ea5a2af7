"""Password reset, two-factor and single sign-on, assembled for the core.

The one-time store (used TOTP steps, used reset tokens) follows the session store: Redis
when sessions live in Redis, PostgreSQL when they live there, the SQLite file
``DB_FILENAME`` when set, memory otherwise (see :mod:`tokenguard.stores.select`).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.util import find_spec
from typing import Any

from ..auth.drivers.ldap import LdapLogin, ldap_logins
from ..auth.drivers.sso import SingleSignOn
from ..auth.mail import BackgroundMailer, Mailer, mailer_from_settings
from ..auth.providers import Provider, load_providers
from ..auth.reset import PasswordReset
from ..auth.service import AuthService
from ..auth.signed import SignedValues
from ..auth.totp import TwoFactor
from ..config import Settings
from ..errors import MissingExtra
from ..stores import select
from ..stores.base import AsyncOnceStore, OnceStore
from .account_routes import AccountRoutes
from .saml_routes import SAMLRoutes
from .sso_routes import SSORoutes

__all__ = ["Extras", "build_extras", "default_once_store"]


def default_once_store(settings: Settings, sessions: Any) -> OnceStore | AsyncOnceStore:
    """The one-time store next to ``sessions`` (chosen by
    :func:`tokenguard.stores.select.once_store`)."""
    return select.once_store(settings, sessions)


@dataclass(slots=True)
class Extras:
    """What :func:`build_extras` made; the router takes ``account``, ``sso``, ``ldap``, ``saml`` and
    ``providers``."""

    providers: tuple[Provider, ...]
    once: OnceStore | AsyncOnceStore
    mailer: Mailer
    two_factor: TwoFactor
    reset: PasswordReset
    account: AccountRoutes
    sso: SSORoutes | None
    #: The ``ldap`` providers' logins, by provider name.
    ldap: dict[str, LdapLogin]
    #: The ``saml`` providers' routes (:mod:`tokenguard.auth.drivers.saml`), if any is configured.
    saml: SAMLRoutes | None = None


def build_extras(
    service: AuthService,
    sessions: Any,
    *,
    once: OnceStore | AsyncOnceStore | None = None,
    mailer: Mailer | None = None,
    http: Any = None,
) -> Extras:
    """Build the features over ``service``'s stores and plug the TOTP check into its login."""
    if find_spec("pyotp") is None:
        # Without it every code would be refused after an enrolment that looked fine.
        raise MissingExtra("two-factor authentication", "pyotp", "totp")
    settings = service.settings
    providers = load_providers(settings)
    once = once if once is not None else default_once_store(settings, sessions)
    mailer = mailer if mailer is not None else BackgroundMailer(mailer_from_settings(settings))
    # One signing mechanism for the values the flows hand out (each under its own purpose).
    signing = SignedValues(settings.secret_bytes, clock=service.clock)
    two_factor = TwoFactor(
        settings.secret_bytes,
        service.users,
        once,
        passwords=service.passwords,
        issuer=settings.totp_issuer,
        clock=service.clock,
        store_call=service._store,
        audit=service.audit,
        password_providers=service.password_providers,  # filled by ldap_logins below
        signing=signing,
        user_changed=service.user_changed,
    )
    service.two_factor = two_factor
    reset = PasswordReset(service, once, mailer)
    account = AccountRoutes(reset, two_factor, service.monotonic)
    sso = None
    if any(p.signs_in for p in providers):
        single = SingleSignOn(service, providers, http=http, signing=signing)
        sso = SSORoutes(single, settings.refresh_cookie, settings.session_cookie, service.clock)
    ldap = ldap_logins(service, providers)
    saml = None
    if any(p.driver == "saml" for p in providers):
        from ..auth.drivers.saml import SAMLLogin, check_acs_url  # needs the `saml` extra

        login = SAMLLogin(service, providers, once, signing=signing)
        for configured in login.providers.values():
            check_acs_url(configured, settings.public_url, settings.auth_prefix)
        saml = SAMLRoutes(login, settings.refresh_cookie, settings.session_cookie, service.clock)
    return Extras(providers, once, mailer, two_factor, reset, account, sso, ldap, saml)
