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
app. Which route names exist and which methods each serves is the table in
:mod:`tokenguard.http.openapi`, which also documents them (``GET /server/specs/oas``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Generator
from datetime import datetime, timezone
from typing import Any

from ..auth.providers import Provider, providers_body
from ..auth.service import AuthService, ClientInfo, Credentials, Mode, PasswordProvider, Tokens
from ..config import Settings
from ..errors import (
    AuthError,
    ConfigError,
    forbidden,
    invalid_credentials,
    invalid_payload,
    route_not_found,
    service_unavailable,
)
from ..flow import Flow
from ..guard.csrf import SAFE_METHODS, CsrfPolicy
from ..guard.extract import Extractor, parse_cookie
from ..guard.limits import client_address
from ..jose.tokens import TokenVerifier
from ..stores.base import SessionInfo
from .account_routes import AccountRoutes
from .body import (
    MAX_PAYLOAD_BYTES,
    MODES,
    TOO_LARGE,
    is_truthy,
    parse_json_body,
    validate_identifier_login,
    validate_login,
)
from .cookies import clear_cookie, set_cookie
from .openapi import ENDPOINTS, ServedRoute, document_body
from .saml_routes import SAMLRoutes
from .sso_routes import SSORoutes
from .views import RequestView, ResponseView, json_response

__all__ = ["AuthRouter", "ServedRoute"]

log = logging.getLogger("tokenguard.auth")

NO_REFRESH_TOKEN = "The refresh token is required in either the payload or cookie"

_BODY_ROUTES = frozenset(
    {"login", "refresh", "logout", "password_request", "password_reset", "sso_callback"}
    | {"ldap_login"}
    | {"tfa_generate", "tfa_enable", "tfa_disable", "saml_acs", "saml_logout"}
)
_EXTRA_ROUTES = _BODY_ROUTES - {"login", "refresh", "logout", "ldap_login"} | {
    "sso_login",
    "saml_login",
    "saml_metadata",
}
# A saml provider's paths under <prefix>/login/<provider>: tail -> route name.
_SAML_TAILS = {"": "saml_login", "metadata": "saml_metadata", "acs": "saml_acs",
               "logout": "saml_logout"}
# Successful /auth replies are never cached (Directus sends the same two headers).
_NO_CACHE = [("cache-control", "no-cache"), ("vary", "Origin, Cache-Control")]


def _compact(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def _timestamp(ms: int) -> str:
    """An ISO 8601 UTC time to the millisecond, as Directus writes its dates."""
    moment = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _session_item(session: SessionInfo, current: str | None) -> dict[str, Any]:
    # The public id, never the family (see tokenguard.stores.base.session_id).
    return {
        "id": session.id,
        "created_on": _timestamp(session.created_at_ms),
        "last_used_on": _timestamp(session.last_used_at_ms),
        "expires": _timestamp(session.expires_at_ms),
        "ip": session.ip,
        "user_agent": session.user_agent,
        "origin": session.origin,
        "current": session.family == current,
    }


class AuthRouter:
    """Dispatches requests under the auth prefix to :class:`AuthService`."""

    def __init__(
        self,
        service: AuthService,
        settings: Settings,
        verifier: TokenVerifier,
        *,
        max_payload_bytes: int = MAX_PAYLOAD_BYTES,
        account: AccountRoutes | None = None,
        sso: SSORoutes | None = None,
        providers: tuple[Provider, ...] = (),
        ldap: dict[str, PasswordProvider] | None = None,
        saml: SAMLRoutes | None = None,
        extractor: Extractor,
    ) -> None:
        self.service = service
        self.settings = settings
        self.verifier = verifier
        self.max_payload_bytes = max_payload_bytes
        self.prefix = settings.auth_prefix
        # path -> route name; every name is an entry of tokenguard.http.openapi.ENDPOINTS,
        # which also says which methods it serves (see _add).
        self._routes: dict[str, str] = {}
        self._methods: dict[str, frozenset[str]] = {}
        #: Path prefixes the shells hand to :meth:`answers` (``str.startswith`` takes a tuple).
        self.path_prefixes: tuple[str, ...] = (self.prefix,)
        self._login_prefix = f"{self.prefix}/login/"
        self._session_prefix = f"{self.prefix}/sessions/"
        self._providers = providers
        self._disable_default = settings.auth_disable_default
        #: The GraphQL endpoints (tokenguard.http.graphql), when enabled: see :meth:`add_graphql`.
        self.graphql: Any = None
        # The order of the steps is the order of the route table (and of the OpenAPI
        # document's paths); a later step may drop or gate what an earlier one added.
        self._add_login_routes()
        self._add_extra_routes(account, sso, ldap, saml)
        if account is not None:
            self._add_account_routes()
        self._drop_routes_if_verify_only()
        self._gate_logins()
        self._jwks_body = self._add_jwks()
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
        # The guard's own: where a request's token came from is decided in one place.
        self._extractor = extractor
        # This API's own OpenAPI document (tokenguard.http.openapi), built on first request
        # so that it includes the GraphQL endpoints added after construction.
        self._openapi_body: bytes | None = None
        self._add_openapi()

    # -- building the route table ------------------------------------------------------------

    def _add_login_routes(self) -> None:
        """The providers list, login, refresh and logout, under the auth prefix."""
        for path, name in (
            (self.prefix, "providers"),
            (f"{self.prefix}/login", "login"),
            (f"{self.prefix}/refresh", "refresh"),
            (f"{self.prefix}/logout", "logout"),
            # A user's own sessions (not Directus's; see tokenguard.http.openapi).
            (f"{self.prefix}/sessions", "sessions"),
            (f"{self.prefix}/sessions/{{id}}", "session"),
        ):
            self._add(path, name)

    def _add_extra_routes(
        self,
        account: AccountRoutes | None,
        sso: SSORoutes | None,
        ldap: dict[str, PasswordProvider] | None,
        saml: SAMLRoutes | None,
    ) -> None:
        """Password reset, two-factor and single sign-on (tokenguard.http.account_routes and
        sso_routes); their per-provider paths are matched by :meth:`route_of`."""
        self.account = account
        self.sso = sso
        if sso is not None:
            # One path per provider (see route_of), documented and gated like the others.
            for name in ("sso_login", "sso_callback"):
                self._methods[name] = ENDPOINTS[name].methods
        #: The ``ldap`` providers' logins (tokenguard.auth.drivers.ldap), served at
        #: ``<prefix>/login/<name>`` whatever AUTH_DISABLE_DEFAULT says, as in Directus.
        self.ldap: dict[str, PasswordProvider] = dict(ldap or {})
        self.saml = saml
        if saml is not None:
            for name in _SAML_TAILS.values():
                self._methods[name] = ENDPOINTS[name].methods

    def _add_account_routes(self) -> None:
        """Password reset under the auth prefix; the TFA paths outside it, where Directus has
        them."""
        tfa = self.settings.tfa_prefix
        self._add(f"{self.prefix}/password/request", "password_request")
        self._add(f"{self.prefix}/password/reset", "password_reset")
        for action in ("generate", "enable", "disable"):
            self._add(f"{tfa}/{action}", f"tfa_{action}")
        self.path_prefixes = (self.prefix, tfa)

    def _drop_routes_if_verify_only(self) -> None:
        """With TOKENGUARD_JWKS_URL and no key of its own, this service can sign nothing: it
        serves no auth route and the app keeps those paths."""
        keys = self.verifier.keys
        verify_only = keys is not None and keys.remote is not None and keys.active is None
        if verify_only and not self.settings.jwt_accept_hmac:
            self._routes.clear()
            self._methods.clear()
            self.sso = None
            self.ldap = {}
            self.saml = None

    def _gate_logins(self) -> None:
        """The LDAP logins, when any; e-mail/password login answers 404 (whatever the method)
        under AUTH_DISABLE_DEFAULT, as in Directus."""
        if self.ldap:
            self._methods["ldap_login"] = ENDPOINTS["ldap_login"].methods
        if self._disable_default and "login" in self._methods:
            self._methods["login"] = frozenset()

    def _add_jwks(self) -> bytes | None:
        """The public keys of TOKENGUARD_JWT_KEYS, for services that verify our tokens without
        the secret (tokenguard.jose.keys); their body, or ``None`` when there are none."""
        keys = self.verifier.keys
        body = keys.jwks_body() if keys is not None and keys.keys else None
        if body is not None:
            jwks_path = self.settings.jwks_path or f"{self.prefix}/jwks.json"
            self._add(jwks_path, "jwks")
            self._extend_prefixes(jwks_path)
        return body

    def _add_openapi(self) -> None:
        """This API's OpenAPI document, when enabled and there is anything to document."""
        settings = self.settings
        if settings.openapi_enabled and self._routes:
            self._add(settings.openapi_path, "openapi")
            self._extend_prefixes(settings.openapi_path)

    def _extend_prefixes(self, path: str) -> None:
        if not path.startswith(self.path_prefixes):
            self.path_prefixes = (*self.path_prefixes, path)

    # -- routing ---------------------------------------------------------------------------

    def _add(self, path: str, name: str) -> None:
        """Serve route ``name`` at ``path``; a name without an entry in ``ENDPOINTS`` (and so
        without documentation) is refused."""
        endpoint = ENDPOINTS.get(name)
        if endpoint is None:
            raise ValueError(f"route {name!r} has no entry in tokenguard.http.openapi")
        existing = self._routes.get(path)
        if existing is not None and existing != name:
            # Two settings naming one path (TOKENGUARD_OPENAPI_PATH=/auth/login…): refuse to
            # start rather than let one route silently shadow the other.
            raise ConfigError(f"{path} would serve both {existing} and {name}; move one")
        self._routes[path] = name
        self._methods[name] = endpoint.methods
        self._openapi_body = None

    def served(self) -> list[ServedRoute]:
        """Every path the router answers, with its route name and methods."""
        table = [
            ServedRoute(path, name, self._methods[name]) for path, name in self._routes.items()
        ]
        for name in self.ldap:
            table.append(
                ServedRoute(f"{self._login_prefix}{name}", "ldap_login",
                            self._methods["ldap_login"], name)
            )
        if self.sso is not None:
            single = self.sso.sso
            methods = (self._methods["sso_login"], self._methods["sso_callback"])
            for provider in single.providers.values():
                if not provider.signs_in:
                    continue
                base = f"{self._login_prefix}{provider.name}"
                cookie = single.cookie_name(provider)
                table.append(ServedRoute(base, "sso_login", methods[0], provider.name, cookie))
                table.append(
                    ServedRoute(f"{base}/callback", "sso_callback", methods[1], provider.name,
                                cookie)
                )
        if self.saml is not None:
            for name in self.saml.login.providers:
                base = f"{self._login_prefix}{name}"
                for tail, route in _SAML_TAILS.items():
                    path = f"{base}/{tail}" if tail else base
                    table.append(ServedRoute(path, route, self._methods[route], name))
        return table

    def openapi_document(self) -> bytes:
        """The OpenAPI document of this router's routes, as JSON (cached)."""
        if self._openapi_body is None:
            self._openapi_body = document_body(self)
        return self._openapi_body

    def route_of(self, path: str) -> str | None:
        """The name of our route at ``path``, or ``None`` if the path is not ours."""
        name = self._routes.get(path)
        if name is None and len(path) > 1 and path.endswith("/"):
            name = self._routes.get(path[:-1])
        # <prefix>/sessions/<id>[/]: one segment, whatever it holds (the handler decides).
        if (
            name is None
            and path.startswith(self._session_prefix)
            and "session" in self._methods
            and self._session_param(path)
        ):
            return "session"
        if name is None and path.startswith(self._login_prefix):
            if self.ldap and self._ldap_provider(path) is not None:
                return "ldap_login"
            if self.sso is not None or self.saml is not None:
                name = self._sso_route(path)[0]
        return name

    def _session_param(self, path: str) -> str | None:
        rest = path[len(self._session_prefix) :]
        if rest.endswith("/"):
            rest = rest[:-1]
        return rest if rest and "/" not in rest else None

    def _ldap_provider(self, path: str) -> PasswordProvider | None:
        # <prefix>/login/<provider>[/]: exactly, as for the other routes.
        rest = path[len(self._login_prefix) :]
        if rest.endswith("/"):
            rest = rest[:-1]
        return self.ldap.get(rest)

    def _sso_route(self, path: str) -> tuple[str | None, str]:
        # <prefix>/login/<provider>[/callback][/]: only providers that sign users in.
        rest = path[len(self._login_prefix) :]
        if rest.endswith("/"):
            rest = rest[:-1]
        provider, _, tail = rest.partition("/")
        if self.saml is not None and self.saml.login.provider(provider) is not None:
            return _SAML_TAILS.get(tail), provider
        if self.sso is None or self.sso.sso.provider(provider) is None:
            return None, provider
        if tail == "":
            return "sso_login", provider
        if tail == "callback":
            return "sso_callback", provider
        return None, provider

    def add_graphql(self, graphql: Any) -> None:
        """Serve ``graphql`` (a :class:`tokenguard.http.graphql.GraphQLRoutes`) at its paths."""
        self.graphql = graphql
        for path, name in graphql.paths:
            self._add(path, name)
            self._extend_prefixes(path)

    def answers(self, method: str, path: str) -> bool:
        """Whether the router answers this request (otherwise the app does)."""
        return method != "OPTIONS" and self.route_of(path) is not None

    def wants_body(self, method: str, path: str) -> bool:
        """Whether the shell should read the request body (only our POST routes need it)."""
        route = self.route_of(path)
        if self.graphql is not None and route in self.graphql.names:
            return method == "POST"
        return method == "POST" and route in _BODY_ROUTES

    def too_large(self) -> ResponseView:
        """The answer to a body above ``MAX_PAYLOAD_SIZE`` (Directus: a 400, not a 413)."""
        return self.error(invalid_payload(TOO_LARGE))

    @staticmethod
    def error(error: AuthError) -> ResponseView:
        """A Directus error body as a response."""
        if error.retry_after is not None:  # a 429, or the 503 of a full hashing pool
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
        if route != "saml_acs":
            # The ACS is the IdP's cross-site form post: the signed assertion, not an ambient
            # cookie, is what it acts on.
            self._check_ambient(request, scheme)
        if route is None or method not in self._methods.get(route, ()):
            # The route table (tokenguard.http.openapi) decides which methods are served.
            return self.error(route_not_found(request.path))
        if route == "openapi":
            return json_response(200, self.openapi_document(), _NO_CACHE)
        if self.graphql is not None and route in self.graphql.names:
            response: ResponseView = yield from self.graphql.handle(route, request, scheme)
            return response
        if route == "providers" and method in ("GET", "HEAD"):
            return json_response(200, self._providers_body(request), _NO_CACHE)
        if route == "jwks" and method in ("GET", "HEAD") and self._jwks_body is not None:
            # Verifiers cache it; a rotation adds the new key well before it signs.
            return json_response(200, self._jwks_body, [("cache-control", "public, max-age=300")])
        if route in _EXTRA_ROUTES:
            return (yield from self._extra(route, request))
        if route in ("sessions", "session"):
            return (yield from self._sessions(route, request))
        if method == "POST":
            if route == "login":
                return (yield from self._login(request, scheme))
            if route == "refresh":
                return (yield from self._refresh(request, scheme))
            if route == "logout":
                return (yield from self._logout(request, scheme))
            if route == "ldap_login":
                return (yield from self._login(request, scheme, self._ldap_provider(request.path)))
        return self.error(route_not_found(request.path))

    # -- helpers ---------------------------------------------------------------------------

    def _client(self, request: RequestView) -> ClientInfo:
        headers = request.headers
        ip = client_address(request.client_ip, headers.get("x-forwarded-for"), self._trust_hops)
        return ClientInfo(ip, headers.get("user-agent"), headers.get("origin"))

    def _check_ambient(self, request: RequestView, scheme: str) -> None:
        """Whatever the route (two-factor changes, logout…), an unsafe request that the
        session cookie authenticated must come from a trusted origin."""
        if request.method in SAFE_METHODS or not request.cookie:
            return
        if request.principal.via == "public":
            return
        found = self._extractor(
            request.headers.get("authorization"), request.query_string, request.cookie
        )
        if getattr(found, "source", None) == "cookie":
            self._check_origin(request, "session", scheme)

    def _check_origin(self, request: RequestView, mode: str, scheme: str) -> None:
        """Cookie and session modes use a credential the browser sends by itself: refuse
        them from an untrusted origin (see :mod:`tokenguard.guard.csrf`)."""
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
        self,
        request: RequestView,
        scheme: str = "http",
        provider: PasswordProvider | None = None,
    ) -> Generator[Any, Any, ResponseView]:
        """``POST <prefix>/login``, or ``<prefix>/login/<provider>`` for an LDAP provider
        (``identifier`` in place of ``email``; the same answers)."""
        started = self.service.monotonic()
        data = parse_json_body(request.body, request.headers.get("content-type"))
        if isinstance(data, AuthError):
            # Express's body parser answers before the route runs: no stall, as in Directus.
            return self.error(data)
        payload = validate_login(data) if provider is None else validate_identifier_login(data)
        if isinstance(payload, AuthError):
            yield from self.service.stall(started)
            return self.error(payload)
        credentials = Credentials(payload.email, payload.password, payload.otp)
        mode: Mode = payload.mode  # type: ignore[assignment]  # validated against MODES
        # Login CSRF: a cookie-mode login from an untrusted origin would plant its session.
        self._check_origin(request, mode, scheme)
        tokens = yield from self.service.login(
            credentials, mode, self._client(request), started, provider=provider
        )
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
        yield from self.service.logout(token, self._client(request))
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

    # -- a user's own sessions ---------------------------------------------------------------

    def _sessions(self, route: str, request: RequestView) -> Generator[Any, Any, ResponseView]:
        """``GET <prefix>/sessions`` (list), ``DELETE <prefix>/sessions`` (all but the
        current one) and ``DELETE <prefix>/sessions/<id>``. The signed-in user is the
        request's, whichever way its token came; an unsafe request authenticated by the
        session cookie has passed the cross-site check already (``_check_ambient``)."""
        principal = request.principal
        user_id = principal.user
        if user_id is None:
            raise invalid_credentials()
        # The current session: the one the access token names (a static token names none).
        current = principal.sid
        if route == "sessions" and request.method in ("GET", "HEAD"):
            listed = yield from self.service.list_sessions(user_id)
            body = {"data": [_session_item(s, current) for s in listed]}
            return json_response(200, _compact(body), list(_NO_CACHE))
        if route == "sessions":
            yield from self.service.end_other_sessions(user_id, current, self._client(request))
            return ResponseView(204, list(_NO_CACHE), b"")
        session = self._session_param(request.path) or ""
        ended = yield from self.service.end_session(user_id, session, self._client(request))
        if not ended:
            # Unknown, ended or another user's: one answer, so ids cannot be probed.
            raise forbidden()
        return ResponseView(204, list(_NO_CACHE), b"")

    # -- password reset, two-factor, single sign-on ----------------------------------------

    def _providers_body(self, request: RequestView) -> bytes:
        # `?sessionOnly` counts when present at all (JavaScript's Boolean of "" is false,
        # but Express gives "" for `?sessionOnly`, and Directus tests `!== undefined`).
        names = {p.partition("=")[0] for p in request.query_string.split("&")}
        session_only = "sessionOnly" in names
        return providers_body(
            self._providers, self._disable_default, session_only=session_only
        )

    def _extra(self, route: str | None, request: RequestView) -> Generator[Any, Any, ResponseView]:
        method = request.method
        account, sso = self.account, self.sso
        if route == "sso_login" and sso is not None and method in ("GET", "HEAD"):
            provider = self._sso_route(request.path)[1]
            return (yield from sso.login(provider, request))
        if route is not None and route.startswith("saml_") and self.saml is not None:
            return (yield from self._saml(route, request))
        if route == "sso_callback" and sso is not None:
            provider = self._sso_route(request.path)[1]
            if method == "POST":
                return sso.form_post(provider, request)
            if method in ("GET", "HEAD"):
                return (yield from sso.callback(provider, request, self._client(request)))
        if method == "POST" and account is not None:
            client = self._client(request)
            if route == "password_request":
                return (yield from account.password_request(request, client))
            if route == "password_reset":
                return (yield from account.password_reset(request, client))
            if route is not None and route.startswith("tfa_"):
                return (yield from account.tfa(route[4:], request, client))
        return self.error(route_not_found(request.path))

    def _saml(self, route: str, request: RequestView) -> Generator[Any, Any, ResponseView]:
        saml = self.saml
        assert saml is not None
        method = request.method
        provider = self._sso_route(request.path)[1]
        if route == "saml_metadata" and method in ("GET", "HEAD"):
            return saml.metadata(provider)
        if route == "saml_login" and method in ("GET", "HEAD"):
            return saml.start(provider, request)
        if route == "saml_acs" and method == "POST":
            return (yield from saml.acs(provider, request, self._client(request)))
        if route == "saml_logout" and method == "POST":
            # As Directus: the session cookie's session ends, and the cookie goes.
            had_session = bool(
                request.cookie and parse_cookie(request.cookie, self._session_cookie.name)
            )
            token = None
            if had_session:
                try:
                    token = self._session_token(request.cookie)
                except AuthError:
                    token = None  # an expired session cookie: nothing left to end
            if token:
                yield from self.service.logout(token, self._client(request))
            return saml.logout_response(provider, request, had_session)
        return self.error(route_not_found(request.path))
