"""What the browser sign-in routes share: reading their query, and the answers at the end.

Both the OAuth 2/OpenID routes (:mod:`tokenguard.http.sso_routes`) and the SAML routes
(:mod:`tokenguard.http.saml_routes`) send the browser back to a ``redirect`` when a login
ends: with the session or refresh cookie on success, with ``?reason=<CODE>`` on failure.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..auth.service import Tokens
from ..config import CookieSettings
from .cookies import set_cookie
from .views import ResponseView, json_response

__all__ = ["first_values", "signed_in", "with_reason"]


def first_values(query_string: str) -> dict[str, str]:
    """The fields of a query string, the first value of each name winning (a repeated
    ``state`` or ``redirect`` cannot smuggle in a second one)."""
    values: dict[str, str] = {}
    for key, value in parse_qsl(query_string, keep_blank_values=True):
        values.setdefault(key, value)
    return values


def with_reason(redirect: str, code: str) -> str:
    """``redirect`` with its query replaced by ``reason=<code>`` (and no fragment): where a
    failed login sends the browser, as Directus does."""
    parts = urlsplit(redirect)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode({"reason": code}), ""))


def signed_in(
    tokens: Tokens,
    redirect: str | None,
    headers: list[tuple[str, str]],
    refresh_cookie: CookieSettings,
    session_cookie: CookieSettings,
    now: float,
) -> ResponseView:
    """The answer to a completed single sign-on (OAuth2/OpenID callback or SAML ACS): with a
    ``redirect``, the session cookie (session mode) or the refresh cookie and a 302 there;
    without one, 200 with the tokens, as Directus answers both."""
    if redirect:
        if tokens.mode == "session":
            cookie = set_cookie(session_cookie, tokens.access_token, now)
        else:
            cookie = set_cookie(refresh_cookie, tokens.refresh_token, now)
        return ResponseView(302, [("location", redirect), *headers, ("set-cookie", cookie)])
    data = {
        "access_token": tokens.access_token,
        "refresh_token": tokens.refresh_token,
        "expires": tokens.expires_ms,
    }
    body = json.dumps({"data": data}, separators=(",", ":")).encode()
    return json_response(200, body, headers)
