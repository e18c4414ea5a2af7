"""Handlers for ``GET <auth>/login/<provider>`` and ``<auth>/login/<provider>/callback``.

Directus's browser behaviour (spec §10.2): the login route answers 302 to the provider and
sets the state cookie; a ``POST`` callback (``response_mode=form_post``) is turned into a 303
to the ``GET`` callback; the callback clears the state cookie, and then either answers 200
with the tokens (no ``redirect``) or sets the session or refresh cookie and answers 302 to
the ``redirect``. A failure with a ``redirect`` is a 302 to it with ``?reason=<CODE>``.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any
from urllib.parse import parse_qsl, urlencode

from ..auth.drivers.sso import SingleSignOn, SSOFailure
from ..auth.service import ClientInfo, Tokens
from ..config import CookieSettings
from ..guard.extract import parse_cookie
from .cookies import clear_cookie, set_cookie
from .redirects import first_values, signed_in, with_reason
from .views import RequestView, ResponseView, json_response

__all__ = ["SSORoutes"]

_NO_STORE = [("cache-control", "no-store")]


class SSORoutes:
    """The two SSO routes, over :class:`~tokenguard.auth.drivers.sso.SingleSignOn`."""

    def __init__(
        self,
        sso: SingleSignOn,
        refresh_cookie: CookieSettings,
        session_cookie: CookieSettings,
        clock: Callable[[], float],
    ) -> None:
        self.sso = sso
        self.refresh_cookie = refresh_cookie
        self.session_cookie = session_cookie
        self.clock = clock

    def _state_cookie(self, name: str, value: str, max_age_ms: int) -> CookieSettings:
        return CookieSettings(name, max_age_ms, self.sso.secure_cookie, "lax")

    def login(self, name: str, request: RequestView) -> Generator[Any, Any, ResponseView]:
        provider = self.sso.provider(name)
        assert provider is not None  # the router only sends known providers
        query = first_values(request.query_string)
        redirect = query.get("redirect") or None
        url, state = yield from self.sso.start(provider, redirect, "prompt" in query)
        cookie = self._state_cookie(
            self.sso.cookie_name(provider), state, provider.login_timeout_ms
        )
        headers = [("location", url), ("set-cookie", set_cookie(cookie, state, self.clock()))]
        return ResponseView(302, headers + _NO_STORE, b"")

    def form_post(self, name: str, request: RequestView) -> ResponseView:
        """``response_mode=form_post``: the form fields become the GET callback's query."""
        fields = parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True)
        # Relative to .../login/<name>/callback, as Directus sends it.
        location = "./callback" + ("?" + urlencode(fields) if fields else "")
        return ResponseView(303, [("location", location), *_NO_STORE])

    def callback(
        self, name: str, request: RequestView, client: ClientInfo
    ) -> Generator[Any, Any, ResponseView]:
        provider = self.sso.provider(name)
        assert provider is not None
        cookie_name = self.sso.cookie_name(provider)
        state_cookie = self._state_cookie(cookie_name, "", 0)
        headers = [("set-cookie", clear_cookie(state_cookie)), *_NO_STORE]
        raw = parse_cookie(request.cookie, cookie_name) if request.cookie else None
        try:
            tokens, redirect = yield from self.sso.finish(
                provider, first_values(request.query_string), raw, client
            )
        except SSOFailure as failure:
            if failure.redirect:
                location = with_reason(failure.redirect, failure.error.code)
                return ResponseView(302, [("location", location), *headers], b"")
            return json_response(failure.error.status, failure.error.body, headers)
        return self._success(tokens, redirect, headers)

    def _success(
        self, tokens: Tokens, redirect: str | None, headers: list[tuple[str, str]]
    ) -> ResponseView:
        return signed_in(
            tokens, redirect, headers, self.refresh_cookie, self.session_cookie, self.clock()
        )
