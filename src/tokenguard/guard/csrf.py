"""Cross-site request forgery checks for credentials a browser sends on its own (cookies).

A bearer token or a query token is never sent by a browser unless a page's script put it
there, so those requests are not affected. A cookie is sent with any request to the site,
including a form posted from another one; ``SameSite=Lax`` (the default) already keeps it
off cross-site POSTs, and this check is the second layer for deployments that need
``SameSite=None`` or that share a site with less trusted subdomains.

The rule, for unsafe methods (``POST``, ``PUT``, ``PATCH``, ``DELETE`` and anything else not
``GET``/``HEAD``/``OPTIONS``/``TRACE``) authenticated by a cookie: the ``Origin`` header — or,
when there is none, the origin of ``Referer`` — must be the request's own origin (scheme and
``Host``), ``PUBLIC_URL``'s origin, or one of ``TOKENGUARD_CSRF_TRUSTED_ORIGINS``. A request
carrying neither header passes unless ``TOKENGUARD_CSRF_REQUIRE_ORIGIN`` is on: browsers send
``Origin`` on every cross-origin unsafe request, so a missing one means a non-browser client.
``Origin: null`` (sandboxed frames, ``file:``) is refused.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ..errors import AuthError, forbidden

__all__ = ["CsrfPolicy", "SAFE_METHODS", "origin_of"]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

CROSS_ORIGIN = (
    "Cross-site request refused: the Origin of a request authenticated by cookie is not trusted"
)
NO_ORIGIN = (
    "Cross-site request refused: a request authenticated by cookie must carry an Origin header"
)

_DEFAULT_PORTS = {"http": "80", "https": "443"}


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of ``url``, lower-cased, default port dropped; ``None`` if
    ``url`` has no scheme and host (or is not a URL at all)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if port is not None and str(port) != _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}:{port}"
    return f"{scheme}://{host}"


class CsrfPolicy:
    """The check, built once from the settings.

    ``enabled``: ``TOKENGUARD_CSRF_PROTECTION``; ``trusted``: the allowed origins besides the
    request's own; ``require_origin``: whether a request with neither ``Origin`` nor
    ``Referer`` is refused.
    """

    __slots__ = ("enabled", "trusted", "require_origin")

    def __init__(
        self,
        *,
        enabled: bool = True,
        trusted_origins: tuple[str, ...] | list[str] = (),
        public_url: str | None = None,
        require_origin: bool = False,
    ) -> None:
        self.enabled = enabled
        trusted = {o for o in (origin_of(t) for t in trusted_origins) if o}
        if public_url:
            public = origin_of(public_url)
            if public:
                trusted.add(public)
        self.trusted = frozenset(trusted)
        self.require_origin = require_origin

    def check(
        self,
        method: str,
        origin: str | None,
        referer: str | None,
        host: str | None,
        scheme: str,
    ) -> AuthError | None:
        """``None`` if a cookie-authenticated ``method`` request with these headers may
        proceed, else the 403 ``FORBIDDEN`` to answer."""
        if not self.enabled or method.upper() in SAFE_METHODS:
            return None
        claimed: str | None
        if origin is not None:
            claimed = origin_of(origin)
        elif referer:
            claimed = origin_of(referer)
        else:
            return forbidden(NO_ORIGIN) if self.require_origin else None
        if claimed is None:  # "null", garbage, or a scheme that is not http(s)
            return forbidden(CROSS_ORIGIN)
        if claimed in self.trusted:
            return None
        if host:
            own = origin_of(f"{scheme}://{host}")
            if claimed == own:
                return None
            # Behind a TLS-terminating proxy the app sees http while the browser says https;
            # an https origin for our own host is at least as trustworthy.
            if own is not None and scheme == "http" and claimed == origin_of(f"https://{host}"):
                return None
        return forbidden(CROSS_ORIGIN)
