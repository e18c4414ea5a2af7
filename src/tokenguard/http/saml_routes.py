"""Handlers for a ``saml`` provider's routes under ``<auth>/login/<provider>``.

As Directus's SAML driver (spec §10.2): ``GET /metadata`` is our metadata (the configured
``AUTH_<P>_SP_metadata``); ``GET /`` answers 302 to the IdP with ``RelayState=redirect``;
``POST /acs`` (the IdP's HTTP-POST form) answers 200 with the tokens without ``RelayState``,
or sets the session (or refresh) cookie and answers 302 to it; a failure with an allowed
``RelayState`` is a 302 to it with ``?reason=<CODE>``. ``POST /logout`` ends the session of
the session cookie, clears it, and sends the browser to the IdP's single logout service
when it has one (and the form names the ``nameID``), else answers 204.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any
from urllib.parse import parse_qsl

from ..auth.drivers.saml import SAMLLogin
from ..auth.drivers.sso import SSOFailure
from ..auth.service import ClientInfo, Tokens
from ..config import CookieSettings
from .cookies import clear_cookie
from .redirects import first_values, signed_in, with_reason
from .views import RequestView, ResponseView, json_response

__all__ = ["SAMLRoutes"]

_NO_STORE = [("cache-control", "no-store")]
_FORM = "application/x-www-form-urlencoded"


def _form(request: RequestView) -> dict[str, str]:
    """The urlencoded body's fields (first value wins); another content type is no form."""
    kind = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if kind != _FORM:
        return {}
    fields: dict[str, str] = {}
    for key, value in parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True):
        fields.setdefault(key, value)
    return fields


class SAMLRoutes:
    """The four routes of each ``saml`` provider, over
    :class:`~tokenguard.auth.drivers.saml.SAMLLogin`."""

    def __init__(
        self,
        login: SAMLLogin,
        refresh_cookie: CookieSettings,
        session_cookie: CookieSettings,
        clock: Callable[[], float],
    ) -> None:
        self.login = login
        self.refresh_cookie = refresh_cookie
        self.session_cookie = session_cookie
        self.clock = clock
        self._clear_session = clear_cookie(session_cookie)

    def metadata(self, name: str) -> ResponseView:
        saml = self.login.provider(name)
        assert saml is not None  # the router only sends known providers
        headers = [("content-type", "text/xml; charset=utf-8"), ("cache-control", "no-cache")]
        return ResponseView(200, headers, saml.metadata_xml)

    def start(self, name: str, request: RequestView) -> ResponseView:
        saml = self.login.provider(name)
        assert saml is not None
        redirect = first_values(request.query_string).get("redirect") or None
        location = self.login.start(saml, redirect)
        return ResponseView(302, [("location", location), *_NO_STORE], b"")

    def acs(
        self, name: str, request: RequestView, client: ClientInfo
    ) -> Generator[Any, Any, ResponseView]:
        saml = self.login.provider(name)
        assert saml is not None
        try:
            tokens, redirect = yield from self.login.finish(saml, _form(request), client)
        except SSOFailure as failure:
            if failure.redirect:
                location = with_reason(failure.redirect, failure.error.code)
                return ResponseView(302, [("location", location), *_NO_STORE], b"")
            return json_response(failure.error.status, failure.error.body, _NO_STORE)
        return self._success(tokens, redirect)

    def _success(self, tokens: Tokens, redirect: str | None) -> ResponseView:
        return signed_in(
            tokens, redirect, _NO_STORE, self.refresh_cookie, self.session_cookie, self.clock()
        )

    def logout_response(self, name: str, request: RequestView, had_session: bool) -> ResponseView:
        """The answer once the router has ended the session cookie's session (if any)."""
        saml = self.login.provider(name)
        assert saml is not None
        headers = list(_NO_STORE)
        if had_session:
            headers.append(("set-cookie", self._clear_session))
        location = self.login.logout_location(saml, _form(request).get("nameID"))
        if location is not None:
            return ResponseView(302, [("location", location), *headers], b"")
        return ResponseView(204, headers, b"")
