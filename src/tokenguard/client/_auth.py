"""The client's authentication state machine, written once for the sync and async clients.

Every operation — log in, refresh, log out, send a request with the login attached — is a
generator *flow*, in the manner of httpx's ``Auth.auth_flow``. It yields what it needs
done and receives the result:

- an :class:`httpx.Request` — send it (without any ``auth``) and hand back the read
  response;
- :data:`LOAD` / :class:`Save` — read or write the :class:`~._storage.AuthData` in the
  storage (which may be sync or async);
- :class:`Exclusive` — run a sub-flow while holding the client's refresh lock.

The steps, and the stepping both drivers share, are in :mod:`._flow`.
:class:`~._client.Client` drives the flows with blocking calls and a ``threading.Lock``,
:class:`~._client.AsyncClient` with awaits and an ``anyio.Lock``; neither knows anything
about tokens. The refresh rule lives here only:

- before a request, a login within ``margin`` of its expiry is refreshed (the margin is
  ``refresh_margin`` but never more than half the token's lifetime, so that short-lived
  tokens are not refreshed before every request);
- a request answered 401 ``TOKEN_EXPIRED`` is retried once after a refresh;
- refreshes happen under the lock, and a caller that waited for it first re-reads the
  storage: if someone else refreshed meanwhile, it uses that login instead of refreshing
  again, so N concurrent callers at expiry cause exactly one refresh;
- a refresh refused by the server raises :class:`~._errors.RefreshFailed`; callers that
  were waiting on that same refresh get the same failure without asking again.

Mode semantics follow Directus and ``@directus/sdk``: ``json`` keeps both tokens from the
body; ``cookie`` keeps the access token from the body and the refresh token in the
``directus_refresh_token`` cookie; ``session`` keeps only the ``directus_session_token``
cookie, which authenticates requests by itself (no bearer header). Cookies live in the
httpx client's cookie jar and are mirrored into the storage, so that a stored login also
survives a restart in the cookie modes.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
from collections.abc import Callable
from http.cookiejar import Cookie
from typing import Any, Literal
from urllib.parse import quote

import httpx

from ._errors import (
    DirectusError,
    RefreshFailed,
    UnexpectedResponse,
    error_from_response,
)
from ._flow import LOAD, Exclusive, Flow, Save
from ._realtime import realtime_auth_message
from ._storage import AuthData

__all__ = ["AuthFlows", "Mode", "check_mode", "jwt_expiry_ms"]

Mode = Literal["json", "cookie", "session"]
MODES: tuple[str, ...] = ("json", "cookie", "session")


BuildRequest = Callable[..., httpx.Request]


def _now_ms() -> int:
    return int(time.time() * 1000)


def check_mode(mode: str) -> Mode:
    """``mode`` if it is one of Directus's three, else a ``ValueError``."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    return mode  # type: ignore[return-value]


def jwt_expiry_ms(token: str) -> int | None:
    """The ``exp`` of a JWT in milliseconds, read without verifying it; ``None`` otherwise.

    Only used to refresh in time: Directus mints ``exp`` from a whole-second ``iat``, so a
    token can expire up to a second before "now + expires" says.
    """
    parts = token.split(".")
    if len(parts) != 3 or len(parts[1]) > 4096:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, RecursionError):
        return None
    exp = payload.get("exp") if isinstance(payload, dict) else None
    if isinstance(exp, bool) or not isinstance(exp, (int, float)) or not 0 < exp < 1e11:
        return None
    return int(exp * 1000)


def _cookie_domain(host: str) -> str:
    # http.cookiejar stores a dotless host (localhost) as "localhost.local".
    return host if "." in host else f"{host}.local"


class AuthFlows:
    """The flows of one client. Holds configuration and the last refresh failure only;
    the login itself lives in the storage and the cookie jar. The arguments are the
    client's (their defaults are there); ``clock_ms`` ``None`` is the wall clock."""

    def __init__(
        self,
        url: httpx.URL,
        *,
        mode: Mode,
        build_request: BuildRequest,
        cookies: httpx.Cookies,
        auto_refresh: bool,
        refresh_margin: float,
        raise_errors: bool,
        auth_prefix: str,
        refresh_cookie: str,
        session_cookie: str,
        clock_ms: Callable[[], int] | None,
    ) -> None:
        if refresh_margin < 0:
            raise ValueError("refresh_margin cannot be negative")
        self.url = url
        self.mode: Mode = check_mode(mode)
        self._build_request = build_request
        self._cookies = cookies
        self.auto_refresh = auto_refresh
        self.refresh_margin_ms = int(refresh_margin * 1000)
        self.raise_errors = raise_errors
        self.auth_prefix = "/" + auth_prefix.strip("/")
        self.refresh_cookie = refresh_cookie
        self.session_cookie = session_cookie
        self.clock_ms = clock_ms if clock_ms is not None else _now_ms
        # (the login a refresh was refused for, the server's answer): waiters on that same
        # refresh get the answer instead of asking again.
        self._failure: tuple[AuthData, DirectusError] | None = None

    # -- URLs and requests -----------------------------------------------------------------

    def join(self, url: httpx.URL | str) -> httpx.URL:
        """``url`` resolved against the client's URL, with httpx's ``base_url`` rule
        (a relative path is appended to the base path, whatever its leading slash)."""
        target = httpx.URL(url)
        if target.is_absolute_url:
            return target
        base = self.url
        base_path = base.raw_path.split(b"?", 1)[0]
        if not base_path.endswith(b"/"):
            base_path += b"/"
        path, _, query = target.raw_path.partition(b"?")
        raw = base_path + path.lstrip(b"/") + (b"?" + query if query else b"")
        return base.copy_with(raw_path=raw)

    def same_origin(self, url: httpx.URL) -> bool:
        """Whether ``url`` is on the client's origin: the login is only ever sent there."""
        base = self.url
        return (url.scheme, url.host, url.port) == (base.scheme, base.host, base.port)

    def _build(
        self,
        method: str,
        url: httpx.URL | str,
        *,
        headers: httpx.Headers | None = None,
        **kwargs: Any,
    ) -> httpx.Request:
        return self._build_request(method, self.join(url), headers=headers, **kwargs)

    def _auth_post(self, name: str, body: dict[str, Any]) -> httpx.Request:
        # Never a bearer on /auth/*: Directus fails any request carrying a stale token,
        # login included.
        return self._build("POST", f"{self.auth_prefix}/{name}", json=body)

    def checked(self, response: httpx.Response) -> httpx.Response:
        """``response``, or its typed error when ``raise_errors`` is on."""
        if self.raise_errors and response.status_code >= 400:
            raise error_from_response(response)
        return response

    # -- the cookie jar --------------------------------------------------------------------

    def _jar_cookies(self) -> list[Cookie]:
        jar = self._cookies.jar
        # Iterating the jar while another thread's response updates it would fail: take
        # the jar's own lock (CookieJar has always had one) for the snapshot.
        with getattr(jar, "_cookies_lock", contextlib.nullcontext()):
            return list(jar)

    def _jar_value(self, name: str) -> str | None:
        domain = _cookie_domain(self.url.host)
        for cookie in self._jar_cookies():
            if cookie.name == name and cookie.domain.lstrip(".") == domain and cookie.value:
                return cookie.value
        return None

    def _put_cookie(self, name: str, value: str | None) -> None:
        if self._jar_value(name) == value:
            return
        domain = _cookie_domain(self.url.host)
        for cookie in self._jar_cookies():
            if cookie.name == name and cookie.domain.lstrip(".") == domain:
                with contextlib.suppress(KeyError):
                    self._cookies.jar.clear(cookie.domain, cookie.path, cookie.name)
        if value:
            self._cookies.set(name, value, domain=domain, path="/")

    def _sync_jar(self, data: AuthData, mode: Mode) -> None:
        """Make the jar carry the stored login's cookie (a login read from a file)."""
        if mode == "cookie" and data.refresh_token:
            self._put_cookie(self.refresh_cookie, data.refresh_token)
        elif mode == "session" and data.access_token:
            self._put_cookie(self.session_cookie, data.access_token)

    def _forget_cookies(self) -> None:
        self._put_cookie(self.refresh_cookie, None)
        self._put_cookie(self.session_cookie, None)

    # -- reading answers -------------------------------------------------------------------

    def _accept(self, response: httpx.Response, mode: Mode) -> AuthData:
        """The login carried by a successful login/refresh answer."""
        if response.status_code >= 400:
            raise error_from_response(response)
        try:
            payload = response.json()
        except ValueError:
            payload = None
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, dict):
            raise self._no_tokens(response)
        expires = data.get("expires")
        if isinstance(expires, bool) or not isinstance(expires, int):
            expires = None
        expires_at = self.clock_ms() + expires if expires is not None else None
        access = data.get("access_token")
        refresh: Any = None
        if mode == "json":
            refresh = data.get("refresh_token")
        elif mode == "cookie":
            refresh = self._response_cookie(response, self.refresh_cookie)
        else:
            access = self._response_cookie(response, self.session_cookie)
        if not isinstance(access, str) or not access:
            raise self._no_tokens(response)
        if mode != "session" and (not isinstance(refresh, str) or not refresh):
            raise self._no_tokens(response)
        exp = jwt_expiry_ms(access)
        if expires_at is not None and exp is not None:
            expires_at = min(expires_at, exp)
        return AuthData(access, refresh if mode != "session" else None, expires, expires_at)

    def _response_cookie(self, response: httpx.Response, name: str) -> str | None:
        for header in response.headers.get_list("set-cookie"):
            key, _, rest = header.partition("=")
            if key.strip() == name:
                value = rest.split(";", 1)[0].strip()
                if value:
                    return value
        # The jar has it when a redirect or a hook already consumed the header.
        return self._jar_value(name)

    @staticmethod
    def _no_tokens(response: httpx.Response) -> DirectusError:
        return UnexpectedResponse(
            f"HTTP {response.status_code} without the expected tokens",
            code="UNEXPECTED_RESPONSE",
            status=response.status_code,
        )

    @staticmethod
    def _is_token_expired(response: httpx.Response) -> bool:
        if response.status_code != 401:
            return False
        return error_from_response(response).code == "TOKEN_EXPIRED"

    # -- the refresh rule ------------------------------------------------------------------

    def _can_refresh(self, data: AuthData, mode: Mode) -> bool:
        if mode == "json":
            return data.refresh_token is not None
        if mode == "cookie":
            held, cookie = data.refresh_token, self.refresh_cookie
        else:
            held, cookie = data.access_token, self.session_cookie
        return held is not None or self._jar_value(cookie) is not None

    def _due(self, data: AuthData) -> bool:
        """Whether ``data`` should be refreshed before it is used."""
        if not self.auto_refresh or data.expires_at is None:
            return False
        if not self._can_refresh(data, self.mode):
            return False
        margin = self.refresh_margin_ms
        if data.expires:
            margin = min(margin, data.expires // 2)
        return self.clock_ms() >= data.expires_at - margin

    def current(self) -> Flow[AuthData]:
        """The stored login, refreshed first if it is due."""
        data = (yield LOAD) or AuthData()
        self._sync_jar(data, self.mode)
        if self._due(data):
            data = yield Exclusive(self._refresh_if_due(data))
        return data

    def _refresh_if_due(self, seen: AuthData) -> Flow[AuthData]:
        data = (yield LOAD) or AuthData()
        if data != seen and not self._due(data):
            return data  # refreshed by someone else while we waited for the lock
        return (yield from self._refresh(data, self.mode, remember=True))

    def _refresh_after_expiry(self, used: AuthData) -> Flow[AuthData]:
        data = (yield LOAD) or AuthData()
        if data.access_token is not None and data.access_token != used.access_token:
            return data  # refreshed by someone else while we waited for the lock
        return (yield from self._refresh(data, self.mode, remember=True))

    def _refresh(self, data: AuthData, mode: Mode, *, remember: bool) -> Flow[AuthData]:
        """Refresh ``data`` (the caller holds the lock)."""
        if remember and self._failure is not None and self._failure[0] == data:
            raise RefreshFailed.wrap(self._failure[1])
        self._sync_jar(data, mode)
        body: dict[str, Any] = {"mode": mode}
        if mode == "json" and data.refresh_token:
            body["refresh_token"] = data.refresh_token
        response = yield self._auth_post("refresh", body)
        try:
            fresh = self._accept(response, mode)
        except DirectusError as cause:
            self._failure = (data, cause)
            raise RefreshFailed.wrap(cause) from cause
        self._failure = None
        yield Save(fresh)
        return fresh

    # -- public operations -----------------------------------------------------------------

    def login(
        self,
        email: str,
        password: str,
        otp: str | None,
        mode: Mode | None,
        provider: str | None,
    ) -> Flow[AuthData]:
        """``POST /auth/login``; the mode given becomes the client's mode."""
        chosen = check_mode(mode) if mode is not None else self.mode
        body: dict[str, Any] = {"email": email, "password": password, "mode": chosen}
        if otp is not None:
            body["otp"] = otp
        name = "login" if provider is None else f"login/{provider.strip('/')}"
        # A stale session cookie would make the login itself fail (Directus refuses any
        # request carrying a bad credential): a new login replaces the old one anyway.
        self._forget_cookies()
        response = yield self._auth_post(name, body)
        data = self._accept(response, chosen)
        self.mode = chosen
        self._failure = None
        yield Save(data)
        return data

    def refresh(self, mode: Mode | None) -> Flow[AuthData]:
        """``POST /auth/refresh`` now, whatever the expiry (run under the lock)."""
        chosen = check_mode(mode) if mode is not None else self.mode
        data = (yield LOAD) or AuthData()
        return (yield from self._refresh(data, chosen, remember=False))

    def logout(self, mode: Mode | None) -> Flow[None]:
        """``POST /auth/logout``, then forget the login (also when the server refused)."""
        chosen = check_mode(mode) if mode is not None else self.mode
        data = (yield LOAD) or AuthData()
        self._sync_jar(data, chosen)
        if not self._can_refresh(data, chosen):
            yield from self._forget()
            return None
        body: dict[str, Any] = {"mode": chosen}
        if chosen == "json" and data.refresh_token:
            body["refresh_token"] = data.refresh_token
        try:
            response = yield self._auth_post("logout", body)
        except Exception:
            # Forget locally whatever happened: a logout must never leave a login behind.
            yield from self._forget()
            raise
        yield from self._forget()
        if response.status_code >= 400:
            raise error_from_response(response)
        return None

    def _forget(self) -> Flow[None]:
        self._forget_cookies()
        self._failure = None
        yield Save(AuthData())

    def get_token(self) -> Flow[str | None]:
        """The access token (refreshed first if due); the session token in session mode."""
        data = yield from self.current()
        return data.access_token

    def set_token(self, token: str | None) -> Flow[None]:
        """Use ``token`` from now on, with no refresh token and no known expiry."""
        self._forget_cookies()
        self._failure = None
        data = AuthData(access_token=token or None)
        self._sync_jar(data, self.mode)
        yield Save(data)

    def realtime_auth_message(self, uid: str | int | None) -> Flow[str]:
        """The WebSocket ``auth`` message carrying the current (fresh) access token."""
        token = yield from self.get_token()
        if token is None:
            raise RuntimeError("not logged in: there is no token to authenticate the socket")
        return realtime_auth_message(access_token=token, uid=uid)

    def request(
        self,
        method: str,
        url: httpx.URL | str,
        *,
        token: str | None,
        headers: Any,
        kwargs: dict[str, Any],
    ) -> Flow[httpx.Response]:
        """Send a request with the login attached (or ``token``, if given)."""
        target = self.join(url)
        hdrs = httpx.Headers(headers)
        if token is not None or "authorization" in hdrs:
            # The caller's own credential (the SDK's withToken): used once, never refreshed.
            if token is not None:
                hdrs["authorization"] = f"Bearer {token}"
            response = yield self._build(method, target, headers=hdrs, **kwargs)
            return self.checked(response)
        if not self.same_origin(target):
            # The login belongs to one server; another origin gets nothing of it.
            response = yield self._build(method, target, headers=hdrs, **kwargs)
            return self.checked(response)
        data = yield from self.current()
        request = self._build(method, target, headers=self._with_auth(hdrs, data), **kwargs)
        # Only a body held in memory can be sent again (checked now: sending reads a stream
        # into memory, and the caller's iterator is spent by then).
        replayable = isinstance(request.stream, httpx.ByteStream)
        response = yield request
        if (
            replayable
            and self.auto_refresh
            and data.access_token is not None
            and self._can_refresh(data, self.mode)
            and self._is_token_expired(response)
        ):
            data = yield Exclusive(self._refresh_after_expiry(data))
            response = yield self._build(
                method, target, headers=self._with_auth(hdrs, data), **kwargs
            )
        return self.checked(response)

    # -- the user's own sessions (tokenguard's /auth/sessions; Directus has none) -------------

    def _sessions_call(self, method: str, path: str) -> Flow[httpx.Response]:
        response = yield from self.request(
            method, f"{self.auth_prefix}/sessions{path}", token=None, headers=None, kwargs={}
        )
        if response.status_code >= 400:
            raise error_from_response(response)
        return response

    def sessions(self) -> Flow[list[dict[str, Any]]]:
        """``GET /auth/sessions``: the signed-in user's live sessions, as the server lists
        them (``id``, ``created_on``, ``last_used_on``, ``expires``, ``ip``,
        ``user_agent``, ``origin``, ``current``)."""
        response = yield from self._sessions_call("GET", "")
        try:
            items = response.json()["data"]
        except (ValueError, KeyError, TypeError):
            items = None
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise UnexpectedResponse(
                "not a list of sessions", code="UNEXPECTED_RESPONSE", status=response.status_code
            )
        return items

    def revoke_session(self, session_id: str) -> Flow[None]:
        """``DELETE /auth/sessions/<id>``: end one session of the signed-in user."""
        if not isinstance(session_id, str) or not session_id:
            raise ValueError("session_id must be a non-empty string")
        if session_id in (".", ".."):
            # A URL's dot segments are resolved away (".." would DELETE the parent path).
            raise ValueError(f"{session_id!r} cannot be a session id")
        self._ended((yield from self._sessions_call("DELETE", "/" + quote(session_id, safe=""))))

    def revoke_other_sessions(self) -> Flow[None]:
        """``DELETE /auth/sessions``: end every session of the user but this client's."""
        self._ended((yield from self._sessions_call("DELETE", "")))

    @staticmethod
    def _ended(response: httpx.Response) -> None:
        # Only a 204 says a session ended: another success came from something else (an id
        # holding "/" reaches the app behind the guard, not the route), and a caller must
        # not believe a session gone that is not.
        if response.status_code != 204:
            raise UnexpectedResponse(
                f"HTTP {response.status_code} where a session's end answers 204",
                code="UNEXPECTED_RESPONSE",
                status=response.status_code,
            )

    def _with_auth(self, headers: httpx.Headers, data: AuthData) -> httpx.Headers:
        if self.mode != "session" and data.access_token:
            headers = headers.copy()
            headers["authorization"] = f"Bearer {data.access_token}"
        return headers
