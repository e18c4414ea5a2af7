"""The Directus ``/auth`` endpoints as framework-neutral handlers.

:class:`AuthRouter` answers ``GET <prefix>`` (the providers list) and ``POST
<prefix>/login``, ``<prefix>/refresh`` and ``<prefix>/logout`` (``prefix`` is
``TOKENGUARD_AUTH_PREFIX``, default ``/auth``). A handler takes a
:class:`~tokenguard.http.views.RequestView` and is a flow producing a
:class:`~tokenguard.http.views.ResponseView`; the shells drive it.

Routing choices: our four paths match exactly, with one optional trailing slash (Express's
non-strict routing) but case-sensitively; another method on one of them is Directus's 404
``ROUTE_NOT_FOUND``, except ``OPTIONS``, which goes on to the wrapped app so that its CORS
handling keeps working. Any other path under the prefix is not ours and also goes on to the
app.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Generator
from typing import Any

from ..auth.service import AuthService, ClientInfo, Credentials, Mode, Tokens
from ..config import Settings
from ..csrf import CsrfPolicy
from ..errors import AuthError, invalid_payload, route_not_found, service_unavailable
from ..extract import parse_cookie
from ..flow import Flow
from ..limits import TooManyRequests, client_address
from ..tokens import TokenVerifier
from .body import MAX_PAYLOAD_BYTES, MODES, TOO_LARGE, is_truthy, parse_json_body, validate_login
from .cookies import clear_cookie, set_cookie
from .views import RequestView, ResponseView, json_response

__all__ = ["AuthRouter"]

log = logging.getLogger("tokenguard.auth")

NO_REFRESH_TOKEN = "The refresh token is required in either the payload or cookie"

_PROVIDERS = b'{"data":[],"disableDefault":false}'
# Successful /auth replies are never cached (Directus sends the same two headers).
_NO_CACHE = [("cache-control", "no-cache"), ("vary", "Origin, Cache-Control")]


def _compact(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


class AuthRouter:
    """Dispatches requests under the auth prefix to :class:`AuthService`."""

    def __init__(
        self,
        service: AuthService,
        settings: Settings,
        verifier: TokenVerifier,
        *,
        max_payload_bytes: int = MAX_PAYLOAD_BYTES,
    ) -> None:
        self.service = service
        self.settings = settings
        self.verifier = verifier
        self.max_payload_bytes = max_payload_bytes
        self.prefix = settings.auth_prefix
        self._routes = {
            self.prefix: "providers",
            f"{self.prefix}/login": "login",
            f"{self.prefix}/refresh": "refresh",
            f"{self.prefix}/logout": "logout",
        }
        self._refresh_cookie = settings.refresh_cookie
        self._session_cookie = settings.session_cookie
        self._clear_refresh = clear_cookie(self._refresh_cookie)
        self._clear_session = clear_cookie(self._session_cookie)
        self.csrf = CsrfPolicy(
            enabled=settings.csrf_protection,
            trusted_origins=settings.csrf_trusted_origins,
            public_url=settings.public_url,
            require_origin=settings.csrf_require_origin,
        )
        self._trust_hops = settings.ip_trust_proxy

    # -- routing ---------------------------------------------------------------------------

    def route_of(self, path: str) -> str | None:
        """The name of our route at ``path``, or ``None`` if the path is not ours."""
        name = self._routes.get(path)
        if name is None and len(path) > 1 and path.endswith("/"):
            name = self._routes.get(path[:-1])
        return name

    def answers(self, method: str, path: str) -> bool:
        """Whether the router answers this request (otherwise the app does)."""
        return method != "OPTIONS" and self.route_of(path) is not None

    def wants_body(self, method: str, path: str) -> bool:
        """Whether the shell should read the request body (only our POST routes need it)."""
        return method == "POST" and self.route_of(path) in ("login", "refresh", "logout")

    def too_large(self) -> ResponseView:
        """The answer to a body above ``MAX_PAYLOAD_SIZE`` (Directus: a 400, not a 413)."""
        return self.error(invalid_payload(TOO_LARGE))

    @staticmethod
    def error(error: AuthError) -> ResponseView:
        """A Directus error body as a response."""
        if isinstance(error, TooManyRequests):
            return json_response(
                error.status, error.body, [("retry-after", str(error.retry_after))]
            )
        return json_response(error.status, error.body)

    def handle(self, request: RequestView, scheme: str = "http") -> Flow[ResponseView]:
        """Answer ``request`` (a flow). Never raises: every failure is a Directus error.

        ``scheme`` is the request's own (``http``/``https``), for the cross-site check."""
        try:
            return (yield from self._dispatch(request, scheme))
        except AuthError as error:
            return self.error(error)
        except Exception as exc:
            # A bug must not leak a traceback or, worse, an acceptance: refuse with a 503.
            log.error("auth route %s failed: %s", request.path, type(exc).__name__)
            return self.error(service_unavailable("authentication", "Unexpected error"))

    def _dispatch(
        self, request: RequestView, scheme: str = "http"
    ) -> Generator[Any, Any, ResponseView]:
        route = self.route_of(request.path)
        method = request.method
        if route == "providers" and method in ("GET", "HEAD"):
            return json_response(200, _PROVIDERS, _NO_CACHE)
        if method == "POST" and route in ("login", "refresh", "logout"):
            yield from self.service.limits.check_address(self._client(request).ip)
        if method == "POST":
            if route == "login":
                return (yield from self._login(request, scheme))
            if route == "refresh":
                return (yield from self._refresh(request, scheme))
            if route == "logout":
                return (yield from self._logout(request, scheme))
        return self.error(route_not_found(request.path))

    # -- helpers ---------------------------------------------------------------------------

    def _client(self, request: RequestView) -> ClientInfo:
        headers = request.headers
        ip = client_address(request.client_ip, headers.get("x-forwarded-for"), self._trust_hops)
        return ClientInfo(ip, headers.get("user-agent"), headers.get("origin"))

    def _check_origin(self, request: RequestView, mode: str, scheme: str) -> None:
        """Cookie and session modes use a credential the browser sends by itself: refuse
        them from an untrusted origin (see :mod:`tokenguard.csrf`)."""
        if mode == "json":
            return
        headers = request.headers
        refusal = self.csrf.check(
            request.method,
            headers.get("origin"),
            headers.get("referer"),
            headers.get("host"),
            scheme,
        )
        if refusal is not None:
            raise refusal

    def _tokens_response(self, tokens: Tokens) -> ResponseView:
        data: dict[str, Any] = {"expires": tokens.expires_ms}
        headers = list(_NO_CACHE)
        now = self.service.clock()
        if tokens.mode == "json":
            data["refresh_token"] = tokens.refresh_token
            data["access_token"] = tokens.access_token
        elif tokens.mode == "cookie":
            data["access_token"] = tokens.access_token
            headers.append(
                ("set-cookie", set_cookie(self._refresh_cookie, tokens.refresh_token, now))
            )
        else:
            headers.append(
                ("set-cookie", set_cookie(self._session_cookie, tokens.access_token, now))
            )
        return json_response(200, _compact({"data": data}), headers)

    def _presented(self, request: RequestView) -> tuple[Mode, Any]:
        """Mode and refresh token of a refresh/logout request (spec §6.1).

        Mode is ``body.mode`` when truthy, else ``json`` when the body has a refresh token,
        else ``cookie``. Raises 400 when that mode yields no token.
        """
        data = parse_json_body(request.body, request.headers.get("content-type"))
        if isinstance(data, AuthError):
            raise data
        body: dict[str, Any] = data if isinstance(data, dict) else {}
        mode: Any = body.get("mode")
        if not is_truthy(mode):
            mode = "json" if is_truthy(body.get("refresh_token")) else "cookie"
        token: Any = None
        cookie = request.cookie
        if mode == "json":
            token = body.get("refresh_token")
        elif mode == "cookie":
            token = parse_cookie(cookie, self._refresh_cookie.name) if cookie else None
        elif mode == "session":
            token = self._session_token(cookie)
        if not is_truthy(token) or mode not in MODES:
            raise invalid_payload(NO_REFRESH_TOKEN)
        return mode, token

    def _session_token(self, cookie: str | None) -> Any:
        # The session cookie is an access JWT; its `session` claim is the refresh token.
        # Verified here (not merely decoded), as Directus does, even if the guard already
        # authenticated the request through another credential.
        raw = parse_cookie(cookie, self._session_cookie.name) if cookie else None
        if not raw:
            return None
        claims = self.verifier.verify(raw, self.service.clock())
        if claims is None:
            return None  # not one of our JWTs: no token
        if isinstance(claims, AuthError):
            raise claims
        return claims.get("session")

    # -- handlers --------------------------------------------------------------------------

    def _login(
        self, request: RequestView, scheme: str = "http"
    ) -> Generator[Any, Any, ResponseView]:
        started = self.service.monotonic()
        data = parse_json_body(request.body, request.headers.get("content-type"))
        if isinstance(data, AuthError):
            # Express's body parser answers before the route runs: no stall, as in Directus.
            return self.error(data)
        payload = validate_login(data)
        if isinstance(payload, AuthError):
            yield from self.service.stall(started)
            return self.error(payload)
        credentials = Credentials(payload.email, payload.password, payload.otp)
        mode: Mode = payload.mode  # type: ignore[assignment]  # validated against MODES
        # Login CSRF: a cookie-mode login from an untrusted origin would plant its session.
        self._check_origin(request, mode, scheme)
        tokens = yield from self.service.login(credentials, mode, self._client(request), started)
        return self._tokens_response(tokens)

    def _refresh(
        self, request: RequestView, scheme: str = "http"
    ) -> Generator[Any, Any, ResponseView]:
        mode, token = self._presented(request)
        self._check_origin(request, mode, scheme)
        tokens = yield from self.service.refresh(token, mode, self._client(request))
        return self._tokens_response(tokens)

    def _logout(
        self, request: RequestView, scheme: str = "http"
    ) -> Generator[Any, Any, ResponseView]:
        mode, token = self._presented(request)
        self._check_origin(request, mode, scheme)
        yield from self.service.logout(token)
        headers = list(_NO_CACHE)
        cookie = request.cookie
        if cookie:
            # Whichever cookies the request carried go, whatever the mode (as in Directus),
            # but as a real deletion (Max-Age=0) rather than Express 4's empty cookie.
            if parse_cookie(cookie, self._refresh_cookie.name):
                headers.append(("set-cookie", self._clear_refresh))
            if parse_cookie(cookie, self._session_cookie.name):
                headers.append(("set-cookie", self._clear_session))
        return ResponseView(204, headers, b"")
