"""``Set-Cookie`` values in the exact form Directus (Express 4) sends them.

Attribute order: ``Max-Age; Domain; Path; Expires; HttpOnly; Secure; SameSite``.
Clearing is a real deletion (``Max-Age=0`` and a 1970 expiry, same Domain/Path/SameSite/
Secure) rather than Express 4's empty cookie with a future expiry.
"""

from __future__ import annotations

from email.utils import formatdate
from urllib.parse import quote

from ..config import CookieSettings

__all__ = ["clear_cookie", "set_cookie"]

_EPOCH = "Thu, 01 Jan 1970 00:00:00 GMT"
# encodeURIComponent's safe set: JWT and refresh-token characters pass unchanged.
_SAFE = "!'()*-._~"


def _attributes(cookie: CookieSettings, max_age: int, expires: str) -> str:
    parts = [f"Max-Age={max_age}"]
    if cookie.domain:
        parts.append(f"Domain={cookie.domain}")
    parts.append(f"Path={cookie.path}")
    parts.append(f"Expires={expires}")
    parts.append("HttpOnly")
    if cookie.secure:
        parts.append("Secure")
    parts.append(f"SameSite={cookie.same_site.capitalize()}")
    return "; ".join(parts)


def set_cookie(cookie: CookieSettings, value: str, now: float) -> str:
    """The ``Set-Cookie`` value that stores ``value`` for the cookie's lifetime."""
    max_age_s = cookie.max_age_ms // 1000
    expires = formatdate(now + cookie.max_age_ms / 1000, usegmt=True)
    return f"{cookie.name}={quote(value, safe=_SAFE)}; {_attributes(cookie, max_age_s, expires)}"


def clear_cookie(cookie: CookieSettings) -> str:
    """The ``Set-Cookie`` value that deletes the cookie."""
    return f"{cookie.name}=; {_attributes(cookie, 0, _EPOCH)}"
