"""Single sign-on with OpenID Connect and OAuth 2 providers (authorization code + PKCE).

Built on Authlib's OAuth 2 building blocks (grant URI, token request, PKCE) and joserfc
(ID-token signature and claims); HTTP to the provider goes through httpx in a worker thread
(a blocking :class:`~tokenguard.flow.Call`), so WSGI and ASGI share this code.

The flow (spec §10.2):

1. ``GET /auth/login/<provider>?redirect=…`` checks ``redirect`` (relative path, or an
   absolute URL in ``AUTH_<P>_REDIRECT_ALLOW_LIST`` or on ``PUBLIC_URL``'s origin), then
   redirects to the provider with a random ``state``, ``nonce`` and PKCE challenge. These,
   the verifier and the redirect ride in a short-lived signed cookie ``<driver>.<provider>``
   (:mod:`tokenguard.auth.signed`, purpose ``tokenguard/sso-state/v1``; refused after
   ``AUTH_<P>_LOGIN_TIMEOUT``, 5 min).
2. The callback checks the cookie, compares ``state`` in constant time, exchanges the code
   (with the PKCE verifier), and for OpenID verifies the ID token: signature against the
   provider's JWKS, ``iss``, ``aud``/``azp``, ``exp`` and the ``nonce``.
3. The user is found by their external identifier, the ``AUTH_<P>_IDENTIFIER_KEY`` claim
   (openid: ``sub``; falling back to the e-mail), with the account rules of
   :mod:`tokenguard.auth.drivers.external` (registration, default role, role mapping, user-info
   sync). A provider's ``email_verified: false`` never registers or links anyone.
4. Tokens are issued as for a password login, in ``AUTH_<P>_MODE`` (default ``session``).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import quote, urlsplit

from ...errors import AuthError, invalid_credentials, invalid_payload, service_unavailable
from ...flow import Call, Flow
from ...stores.base import User
from ..providers import Provider
from ..reset import is_url_allowed
from ..service import AuthService, ClientInfo, Mode, Tokens
from ..signed import BadData, SignedValues
from .external import ExternalIdentity, check_user_store, mapped_role, user_for_identity

__all__ = ["SSOFailure", "SingleSignOn", "is_login_redirect_allowed"]

log = logging.getLogger("tokenguard.auth")

#: The signing purpose (salt) of the state cookie.
STATE_PURPOSE = "tokenguard/sso-state/v1"
_ID_TOKEN_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"]
_CACHE_SECONDS = 3600
_MAX_STATE_COOKIE = 4096


class SSOFailure(Exception):
    """A failed callback: the Directus error, and where to send the browser (if anywhere)."""

    def __init__(self, error: AuthError, redirect: str | None) -> None:
        super().__init__(error.code)
        self.error = error
        self.redirect = redirect


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _origin(url: str) -> tuple[str, str, int | None] | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def is_login_redirect_allowed(
    redirect: Any, allow_list: tuple[str, ...], public_url: str | None
) -> bool:
    """Where a browser may be sent after login (Directus's ``isLoginRedirectAllowed``, made
    stricter): empty is allowed; a path must start with one ``/`` (``//host`` and ``/\\host``,
    which browsers read as another host, are refused, as is any control character); an
    absolute ``http(s)`` URL must be on the allow list or on ``PUBLIC_URL``'s scheme, host and
    port. Anything else is refused."""
    if redirect is None or redirect == "":
        return True
    if not isinstance(redirect, str) or any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in redirect):
        return False
    if redirect.startswith("/"):
        return not redirect.startswith(("//", "/\\"))
    target = _origin(redirect)
    if target is None:
        return False
    if is_url_allowed(redirect, allow_list):
        return True
    return public_url is not None and _origin(public_url) == target


@dataclass(slots=True)
class _Metadata:
    issuer: str | None
    authorization_endpoint: str
    token_endpoint: str
    userinfo_endpoint: str | None
    jwks_uri: str | None
    fetched: float


class SingleSignOn:
    """Both halves of the redirect flow for the configured openid/oauth2 providers."""

    def __init__(
        self,
        service: AuthService,
        providers: tuple[Provider, ...],
        *,
        http: Any = None,
        clock: Callable[[], float] | None = None,
        signing: SignedValues | None = None,
    ) -> None:
        settings = service.settings
        self.service = service
        self.providers = {p.name: p for p in providers if p.signs_in}
        if self.providers:
            check_user_store(service.users)
        self.public_url = (settings.public_url or "").rstrip("/")
        self.auth_prefix = settings.auth_prefix
        self.secure_cookie = self.public_url.startswith("https://")
        self.clock = clock if clock is not None else service.clock
        if signing is None:
            signing = SignedValues(settings.secret_bytes, clock=self.clock)
        self._state = signing.serializer(STATE_PURPOSE)
        self._http = http
        #: Whether client() made the HTTP client (then close() closes it; a given one is the
        #: caller's).
        self._owns_http = False
        self._lock = threading.Lock()
        self._metadata: dict[str, _Metadata] = {}
        self._jwks: dict[str, tuple[float, Any]] = {}

    # -- small parts ------------------------------------------------------------------------

    def provider(self, name: str) -> Provider | None:
        return self.providers.get(name)

    def callback_url(self, provider: Provider) -> str:
        return f"{self.public_url}{self.auth_prefix}/login/{quote(provider.name)}/callback"

    @staticmethod
    def cookie_name(provider: Provider) -> str:
        """The state cookie's name, Directus's ``openid.<name>`` / ``oauth2.<name>``."""
        return f"{provider.driver}.{provider.name}"

    def client(self) -> Any:
        if self._http is None:
            import httpx

            with self._lock:
                if self._http is None:
                    self._http = httpx.Client(timeout=10.0, follow_redirects=False)
                    self._owns_http = True
        return self._http

    def close(self) -> None:
        """Close the HTTP client this object made, if any (idempotent; a later provider
        call makes a new one)."""
        with self._lock:
            http, owned = self._http, self._owns_http
            if owned:
                self._http, self._owns_http = None, False
        if owned and http is not None:
            http.close()

    def _check_endpoint(self, provider: Provider, url: Any) -> str:
        # The provider's endpoints must be HTTPS (loopback excepted, for development): the
        # code, the client secret and the tokens travel there.
        if not isinstance(url, str):
            raise service_unavailable(provider.driver, "Provider metadata is incomplete")
        parts = urlsplit(url)
        if parts.scheme != "https" and not (
            parts.scheme == "http" and _is_loopback(parts.hostname)
        ):
            raise service_unavailable(provider.driver, "Provider endpoints must use HTTPS")
        return url

    def _get_json(self, provider: Provider, url: str, headers: dict[str, str] | None = None) -> Any:
        try:
            response = self.client().get(
                url, headers={"accept": "application/json", **(headers or {})}
            )
        except Exception as exc:
            log.warning("provider %s unreachable: %s", provider.name, type(exc).__name__)
            raise service_unavailable(provider.driver, "Service is unreachable") from None
        if response.status_code != 200:
            log.warning("provider %s answered %s", provider.name, response.status_code)
            raise service_unavailable(provider.driver, "Service returned unexpected response")
        try:
            return response.json()
        except ValueError:
            raise service_unavailable(
                provider.driver, "Service returned unexpected response"
            ) from None

    def metadata(self, provider: Provider) -> _Metadata:
        """The provider's endpoints (OpenID discovery, cached for an hour). Blocking."""
        now = time.monotonic()
        cached = self._metadata.get(provider.name)
        if cached is not None and now - cached.fetched < _CACHE_SECONDS:
            return cached
        if provider.driver == "oauth2":
            meta = _Metadata(
                None,
                self._check_endpoint(provider, provider.authorize_url),
                self._check_endpoint(provider, provider.access_url),
                self._check_endpoint(provider, provider.profile_url),
                None,
                now,
            )
        else:
            url = self._check_endpoint(provider, provider.issuer_url)
            if "/.well-known/" not in url:
                url = url.rstrip("/") + "/.well-known/openid-configuration"
            doc = self._get_json(provider, url)
            if not isinstance(doc, dict) or not isinstance(doc.get("issuer"), str):
                raise service_unavailable(provider.driver, "Provider metadata is incomplete")
            userinfo = doc.get("userinfo_endpoint")
            meta = _Metadata(
                doc["issuer"],
                self._check_endpoint(provider, doc.get("authorization_endpoint")),
                self._check_endpoint(provider, doc.get("token_endpoint")),
                self._check_endpoint(provider, userinfo) if userinfo else None,
                self._check_endpoint(provider, doc.get("jwks_uri")),
                now,
            )
        self._metadata[provider.name] = meta
        return meta

    # -- step 1: to the provider ------------------------------------------------------------

    def start(
        self, provider: Provider, redirect: str | None, prompt: bool
    ) -> Flow[tuple[str, str]]:
        """The provider's authorization URL and the state cookie's value."""
        if not is_login_redirect_allowed(
            redirect, provider.redirect_allow_list, self.public_url or None
        ):
            raise invalid_payload(f'URL "{redirect}" can\'t be used to redirect after login')
        meta: _Metadata = yield Call(self.metadata, (provider,), blocking=True)
        from authlib.common.security import generate_token  # type: ignore[import-untyped]
        from authlib.oauth2.rfc6749.parameters import (  # type: ignore[import-untyped]
            prepare_grant_uri,
        )
        from authlib.oauth2.rfc7636 import (  # type: ignore[import-untyped]
            create_s256_code_challenge,
        )

        verifier = generate_token(64)
        state = secrets.token_urlsafe(32)
        nonce = secrets.token_urlsafe(32)
        extra: dict[str, str] = {
            "code_challenge": create_s256_code_challenge(verifier),
            "code_challenge_method": "S256",
        }
        if provider.driver == "openid":
            extra["nonce"] = nonce
        if prompt:
            extra["prompt"] = "consent"
        url = prepare_grant_uri(
            meta.authorization_endpoint,
            provider.client_id,
            "code",
            redirect_uri=self.callback_url(provider),
            scope=provider.scope,
            state=state,
            **extra,
        )
        cookie = self._state.dumps(
            {"p": provider.name, "v": verifier, "s": state, "n": nonce, "r": redirect or None}
        )
        return str(url), cookie

    # -- step 2: back from the provider -----------------------------------------------------

    def read_state(self, provider: Provider, value: str | None) -> dict[str, Any]:
        """The state cookie's claims; 401 ``INVALID_CREDENTIALS`` if missing, forged, expired
        or made for another provider."""
        if not value or len(value) > _MAX_STATE_COOKIE:
            raise invalid_credentials()
        try:
            # Whole seconds: a signature age (an int) exceeds t exactly when it exceeds floor(t).
            claims: Any = self._state.loads(value, max_age=provider.login_timeout_ms // 1000)
        except BadData:
            raise invalid_credentials() from None
        if (
            not isinstance(claims, dict)
            or claims.get("p") != provider.name
            or not all(isinstance(claims.get(k), str) for k in ("v", "s", "n"))
        ):
            raise invalid_credentials()
        return claims

    def finish(
        self,
        provider: Provider,
        query: dict[str, str],
        state_cookie: str | None,
        client: ClientInfo,
    ) -> Flow[tuple[Tokens, str | None]]:
        """Tokens for the user the provider vouches for, and where to send the browser.
        Raises :class:`SSOFailure`."""
        try:
            state = self.read_state(provider, state_cookie)
        except AuthError as error:
            yield from self.service.audit.emit(
                "login", "failure", client, provider=provider.name, reason=error.code
            )
            raise SSOFailure(error, None) from None
        redirect: str | None = state.get("r") if isinstance(state.get("r"), str) else None
        try:
            if not hmac.compare_digest(query.get("state", "").encode(), state["s"].encode()):
                log.warning("SSO callback for %s with a state that is not ours", provider.name)
                raise invalid_credentials()
            code = query.get("code")
            if query.get("error") or not code:
                raise invalid_credentials()
            profile: dict[str, Any] = yield Call(
                self._exchange, (provider, code, state), blocking=True
            )
            user = yield from self._user_for(provider, profile)
            mode = cast(Mode, provider.mode)  # one of MODES, checked by load_providers
            tokens = yield from self.service.start_session(user, mode, client)
        except AuthError as error:
            log.info("SSO login through %s refused: %s", provider.name, error.code)
            yield from self.service.audit.emit(
                "login", "failure", client, provider=provider.name, reason=error.code
            )
            raise SSOFailure(error, redirect) from None
        log.info("SSO login through %s: user %s", provider.name, user.id)
        return tokens, redirect

    def _exchange(self, provider: Provider, code: str, state: dict[str, Any]) -> dict[str, Any]:
        """Code → tokens → the user's claims (blocking)."""
        from authlib.oauth2.rfc6749.parameters import prepare_token_request

        meta = self.metadata(provider)
        body = prepare_token_request(
            "authorization_code",
            code=code,
            redirect_uri=self.callback_url(provider),
            code_verifier=state["v"],
            client_id=provider.client_id if not provider.client_secret else None,
        )
        headers = {
            "content-type": "application/x-www-form-urlencoded",
            "accept": "application/json",
        }
        auth = None
        if provider.client_secret:
            # client_secret_basic: RFC 6749 §2.3.1 form-encodes both parts first.
            auth = (
                quote(provider.client_id or "", safe=""),
                quote(provider.client_secret, safe=""),
            )
        try:
            response = self.client().post(
                meta.token_endpoint, content=body, headers=headers, auth=auth
            )
        except Exception as exc:
            log.warning("provider %s unreachable: %s", provider.name, type(exc).__name__)
            raise service_unavailable(provider.driver, "Service is unreachable") from None
        if response.status_code in (400, 401):
            raise invalid_credentials()  # invalid_grant: a used, wrong or expired code
        if response.status_code != 200:
            raise service_unavailable(provider.driver, "Service returned unexpected response")
        try:
            token = response.json()
        except ValueError:
            token = None
        if not isinstance(token, dict) or not isinstance(token.get("access_token"), str):
            raise service_unavailable(provider.driver, "Service returned unexpected response")
        bearer = {"authorization": f"Bearer {token['access_token']}"}
        if provider.driver == "oauth2":
            assert meta.userinfo_endpoint is not None
            profile = self._get_json(provider, meta.userinfo_endpoint, headers=bearer)
            if not isinstance(profile, dict):
                raise invalid_credentials()
            return profile
        claims = self._id_token_claims(provider, meta, token.get("id_token"), state["n"])
        if meta.userinfo_endpoint:
            info = self._get_json(provider, meta.userinfo_endpoint, headers=bearer)
            # OpenID Connect Core §5.3.2: userinfo about someone else is ignored.
            if isinstance(info, dict) and info.get("sub") == claims.get("sub"):
                return {**info, **claims}
        return claims

    def _keys(self, provider: Provider, meta: _Metadata, refresh: bool) -> Any:
        from joserfc.jwk import KeySet

        now = time.monotonic()
        cached = self._jwks.get(provider.name)
        if cached is not None and not refresh and now - cached[0] < _CACHE_SECONDS:
            return cached[1]
        if cached is not None and refresh and now - cached[0] < 30:
            return cached[1]  # a key rotation is not refetched more than twice a minute
        assert meta.jwks_uri is not None
        doc = self._get_json(provider, meta.jwks_uri)
        try:
            keys = KeySet.import_key_set(doc)
        except Exception:
            raise service_unavailable(provider.driver, "Provider keys are unreadable") from None
        self._jwks[provider.name] = (now, keys)
        return keys

    def _id_token_claims(
        self, provider: Provider, meta: _Metadata, id_token: Any, nonce: str
    ) -> dict[str, Any]:
        from joserfc import jwt as jose_jwt
        from joserfc.errors import JoseError

        if not isinstance(id_token, str) or len(id_token) > 16_384:
            raise invalid_credentials()
        token = None
        for refresh in (False, True):
            try:
                token = jose_jwt.decode(
                    id_token, self._keys(provider, meta, refresh), algorithms=_ID_TOKEN_ALGORITHMS
                )
                break
            except JoseError as exc:
                if refresh:
                    log.warning("ID token from %s refused: %s", provider.name, type(exc).__name__)
                    raise invalid_credentials() from None
            except ValueError:
                raise invalid_credentials() from None
        assert token is not None
        registry = jose_jwt.JWTClaimsRegistry(
            now=int(self.clock()),
            leeway=60,
            iss={"essential": True, "value": meta.issuer or ""},
            aud={"essential": True, "value": provider.client_id or ""},
            sub={"essential": True},
            exp={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        try:
            registry.validate(token.claims)
        except JoseError as exc:
            log.warning("ID token from %s refused: %s", provider.name, type(exc).__name__)
            raise invalid_credentials() from None
        claims: dict[str, Any] = dict(token.claims)
        aud = claims.get("aud")
        if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != provider.client_id:
            raise invalid_credentials()
        return claims

    # -- step 3: who is it ------------------------------------------------------------------

    def _user_for(self, provider: Provider, profile: dict[str, Any]) -> Flow[User]:
        identity = identity_from_profile(provider, profile)
        if identity is None:
            log.warning("provider %s sent no usable identifier or e-mail", provider.name)
            raise invalid_credentials()
        return (
            yield from user_for_identity(
                self.service.users,
                identity,
                provider.registration,
                changed=self.service.user_changed,
            )
        )


def _claim(profile: dict[str, Any], key: str | None) -> Any:
    """``profile[key]``, where a dotted key also reaches into nested objects (Directus
    flattens the profile so that ``AUTH_<P>_IDENTIFIER_KEY=account.id`` works)."""
    if not key:
        return None
    if key in profile:
        return profile[key]
    value: Any = profile
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _text(value: Any) -> str | None:
    # Numbers are identifiers too (GitHub's numeric ids); Directus stringifies them.
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (str, int)):
        return str(value) or None
    return None


def identity_from_profile(provider: Provider, profile: dict[str, Any]) -> ExternalIdentity | None:
    """The identity in an OpenID/OAuth 2 profile: the identifier claim, falling back to the
    e-mail as Directus does; ``None`` when there is neither."""
    email = _text(_claim(profile, provider.email_key))
    identifier = _text(_claim(profile, provider.identifier_key)) or email
    if identifier is None:
        return None
    verified: bool | None = None
    if "email_verified" in profile:
        verified = profile["email_verified"] in (True, "true")
    groups = _claim(profile, provider.group_claim_name)
    if isinstance(groups, str):
        groups = [groups]
    names = [g for g in groups if isinstance(g, str)] if isinstance(groups, list) else []
    return ExternalIdentity(
        provider=provider.name,
        identifier=identifier,
        email=email,
        email_verified=verified,
        first_name=_text(_claim(profile, provider.first_name_key)),
        last_name=_text(_claim(profile, provider.last_name_key)),
        role=mapped_role(names, dict(provider.role_mapping)) if provider.role_mapping else None,
    )
