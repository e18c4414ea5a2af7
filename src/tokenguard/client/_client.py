"""The sync :class:`Client` and the async :class:`AsyncClient`: two drivers of one logic.

Everything about tokens is in the flows of :mod:`._auth`, and the stepping of a flow in
:mod:`._flow`. What the two clients share — their arguments, their state, their
properties — is :class:`_BaseClient`, written once. Each client only says how it does a
step (send a request, read or write the storage, take the refresh lock: blocking, or
awaited) and exposes the flows as methods, plain or coroutines.
"""

from __future__ import annotations

import inspect
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from types import TracebackType
from typing import Any, Generic, TypeVar

import anyio
import httpx

from ._auth import AuthFlows, Mode, check_mode
from ._flow import Exclusive, Flow, Load, Save, Step, Stepper
from ._storage import AsyncTokenStorage, AuthData, MemoryStorage, TokenStorage

__all__ = ["AsyncClient", "Client"]

T = TypeVar("T")
_C = TypeVar("_C", bound="Client")
_A = TypeVar("_A", bound="AsyncClient")
_H = TypeVar("_H", bound="httpx.Client | httpx.AsyncClient")
_S = TypeVar("_S", bound="TokenStorage | AsyncTokenStorage")


def _initial_storage(storage: Any, static_token: str | None, mode: Mode) -> Any:
    if static_token is None:
        return storage if storage is not None else MemoryStorage()
    if mode == "session":
        raise ValueError("a static token is sent as a bearer token; use mode 'json'")
    if storage is not None:
        raise ValueError("give either static_token or storage, not both")
    return MemoryStorage(AuthData(access_token=static_token))


class _BaseClient(ABC, Generic[_H, _S]):
    """The arguments, state and properties of both clients (``_H`` is the httpx client,
    ``_S`` the storage it accepts); see :class:`Client` for the arguments."""

    def __init__(
        self,
        url: str | httpx.URL,
        *,
        mode: Mode = "json",
        storage: _S | None = None,
        static_token: str | None = None,
        auto_refresh: bool = True,
        refresh_margin: float = 30.0,
        raise_errors: bool = True,
        auth_prefix: str = "/auth",
        refresh_cookie: str = "directus_refresh_token",
        session_cookie: str = "directus_session_token",
        http: _H | None = None,
        clock_ms: Callable[[], int] | None = None,
        **httpx_options: Any,
    ) -> None:
        if http is not None and httpx_options:
            raise TypeError("give either http or httpx options, not both")
        self._owns_http = http is None
        self.http: _H = http if http is not None else self._new_http(**httpx_options)
        self.storage: _S = _initial_storage(storage, static_token, mode)
        base = httpx.URL(url)
        if not base.is_absolute_url:
            raise ValueError("url must be absolute, e.g. 'https://api.example.com'")
        self._flows = AuthFlows(
            base,
            mode=check_mode(mode),
            build_request=self.http.build_request,
            cookies=self.http.cookies,
            auto_refresh=auto_refresh and static_token is None,
            refresh_margin=refresh_margin,
            raise_errors=raise_errors,
            auth_prefix=auth_prefix,
            refresh_cookie=refresh_cookie,
            session_cookie=session_cookie,
            clock_ms=clock_ms,
        )
        self._start_driver()

    @abstractmethod
    def _new_http(self, **options: Any) -> _H:
        """The httpx client made when none is given."""

    @abstractmethod
    def _start_driver(self) -> None:
        """Set up the driver's own state (its refresh lock)."""

    @property
    def mode(self) -> Mode:
        """How the login is kept; :meth:`login` with another ``mode`` changes it."""
        return self._flows.mode

    @property
    def url(self) -> httpx.URL:
        """The API's base URL."""
        return self._flows.url

    def _storage_call(self, step: Step) -> Any:
        """Start a storage step: what the storage returns, awaitable or not."""
        if isinstance(step, Load):
            return self.storage.get()
        if isinstance(step, Save):
            return self.storage.set(step.data)
        raise TypeError(f"unknown step {step!r}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.url)!r}, mode={self.mode!r})"


class Client(_BaseClient[httpx.Client, TokenStorage]):
    """A blocking Directus-compatible API client that logs in and stays logged in.

    ``url`` is the API's base URL. ``mode`` is how the login is kept (``"json"``: both
    tokens in the storage, the default for a service; ``"cookie"``: the refresh token in the
    ``directus_refresh_token`` cookie; ``"session"``: the ``directus_session_token`` cookie
    only). ``storage`` keeps the login (default: memory; see :class:`FileStorage`).
    ``static_token`` makes a client that always sends that token and never refreshes.

    The access token is refreshed before a request when it is within ``refresh_margin``
    seconds of its expiry (at most half its lifetime), and once when a request is answered
    401 ``TOKEN_EXPIRED``; concurrent callers share one refresh. ``raise_errors`` turns
    error answers into typed :class:`DirectusError` exceptions. Any other keyword argument
    goes to :class:`httpx.Client`; ``http`` gives a ready-made one instead (not closed by
    :meth:`close`).
    """

    # -- the driver ------------------------------------------------------------------------

    def _new_http(self, **options: Any) -> httpx.Client:
        return httpx.Client(**options)

    def _start_driver(self) -> None:
        self._lock = threading.Lock()

    def _run(self, flow: Flow[T]) -> T:
        with Stepper(flow) as run:
            for step in run:
                try:
                    run.send(self._do(step))
                except Exception as exc:  # handed to the flow, which may handle it
                    run.throw(exc)
        return run.result

    def _do(self, step: Step) -> Any:
        if isinstance(step, httpx.Request):
            return self.http.send(step)
        if isinstance(step, Exclusive):
            return self._exclusive(step.flow)
        result = self._storage_call(step)
        if inspect.isawaitable(result):
            close = getattr(result, "close", None)
            if close is not None:
                close()
            raise TypeError("Client needs a synchronous storage; use AsyncClient for this one")
        return result

    def _exclusive(self, flow: Flow[T]) -> T:
        with self._lock:
            return self._run(flow)

    # -- authentication --------------------------------------------------------------------

    def login(
        self,
        email: str,
        password: str,
        otp: str | None = None,
        *,
        mode: Mode | None = None,
        provider: str | None = None,
    ) -> AuthData:
        """Log in (``POST /auth/login``) and keep the tokens.

        ``otp`` is the one-time password for accounts with two-factor authentication;
        ``mode`` overrides (and from now on replaces) the client's mode. Raises
        :class:`InvalidCredentials`, :class:`InvalidOtp`, :class:`InvalidPayload`…
        """
        return self._exclusive(self._flows.login(email, password, otp, mode, provider))

    def refresh(self, *, mode: Mode | None = None) -> AuthData:
        """Refresh the login now. Raises :class:`RefreshFailed` if the server refuses."""
        return self._exclusive(self._flows.refresh(mode))

    def logout(self, *, mode: Mode | None = None) -> None:
        """Log out (``POST /auth/logout``) and forget the login, even if the server fails."""
        self._exclusive(self._flows.logout(mode))

    def get_token(self) -> str | None:
        """The current access token, refreshed first if it is about to expire.

        In session mode this is the session cookie's value (a JWT that also works as a
        bearer token). ``None`` when logged out.
        """
        return self._run(self._flows.get_token())

    def set_token(self, token: str | None) -> None:
        """Use ``token`` from now on (no refresh token, no known expiry); ``None`` forgets."""
        self._exclusive(self._flows.set_token(token))

    def realtime_auth_message(self, *, uid: str | int | None = None) -> str:
        """The WebSocket ``auth`` message carrying the current (fresh) access token."""
        return self._run(self._flows.realtime_auth_message(uid))

    # -- the user's own sessions -------------------------------------------------------------

    def sessions(self) -> list[dict[str, Any]]:
        """The signed-in user's live sessions (tokenguard's ``GET /auth/sessions``), most
        recently used first; the one this client uses has ``"current": True``. Raises the
        server's error (:class:`InvalidCredentials` when logged out…)."""
        return self._run(self._flows.sessions())

    def revoke_session(self, session_id: str) -> None:
        """End one session of the signed-in user by its ``id`` (from :meth:`sessions`): its
        tokens are refused at once. Raises :class:`Forbidden` for an id that is not one of
        the user's live sessions."""
        self._run(self._flows.revoke_session(session_id))

    def revoke_other_sessions(self) -> None:
        """End every session of the signed-in user except the one this client uses."""
        self._run(self._flows.revoke_other_sessions())

    # -- requests --------------------------------------------------------------------------

    def request(
        self,
        method: str,
        url: httpx.URL | str,
        *,
        token: str | None = None,
        headers: Any = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send a request with the login attached; ``url`` is relative to the base URL.

        ``token`` sends that token instead of the login, for this request only (the SDK's
        ``withToken``). The login is only ever sent to the client's own origin. Other
        keyword arguments are :meth:`httpx.Client.build_request`'s (``params``, ``json``,
        ``content``, ``data``, ``files``, ``cookies``, ``timeout``, ``extensions``).
        """
        return self._run(
            self._flows.request(method, url, token=token, headers=headers, kwargs=kwargs)
        )

    def get(self, url: httpx.URL | str, **kwargs: Any) -> httpx.Response:
        """``GET``; see :meth:`request`."""
        return self.request("GET", url, **kwargs)

    def post(self, url: httpx.URL | str, **kwargs: Any) -> httpx.Response:
        """``POST``; see :meth:`request`."""
        return self.request("POST", url, **kwargs)

    def put(self, url: httpx.URL | str, **kwargs: Any) -> httpx.Response:
        """``PUT``; see :meth:`request`."""
        return self.request("PUT", url, **kwargs)

    def patch(self, url: httpx.URL | str, **kwargs: Any) -> httpx.Response:
        """``PATCH``; see :meth:`request`."""
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: httpx.URL | str, **kwargs: Any) -> httpx.Response:
        """``DELETE``; see :meth:`request`."""
        return self.request("DELETE", url, **kwargs)

    # -- lifetime --------------------------------------------------------------------------

    def close(self) -> None:
        """Close the underlying httpx client (if this client created it)."""
        if self._owns_http:
            self.http.close()

    def __enter__(self: _C) -> _C:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncClient(_BaseClient[httpx.AsyncClient, TokenStorage | AsyncTokenStorage]):
    """The :class:`Client` for ``async`` code, on :class:`httpx.AsyncClient`.

    Same arguments and methods, as coroutines. ``storage`` may be a :class:`TokenStorage`
    or an :class:`AsyncTokenStorage`. A refresh in progress is shielded from cancellation,
    so that a cancelled caller cannot lose a token the server has already rotated.
    """

    # -- the driver ------------------------------------------------------------------------

    def _new_http(self, **options: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(**options)

    def _start_driver(self) -> None:
        # Created on first use, inside the event loop that will use it.
        self._lock: anyio.Lock | None = None

    def _get_lock(self) -> anyio.Lock:
        if self._lock is None:
            self._lock = anyio.Lock()
        return self._lock

    async def _run(self, flow: Flow[T]) -> T:
        with Stepper(flow) as run:
            for step in run:
                try:
                    run.send(await self._do(step))
                except Exception as exc:  # handed to the flow, which may handle it
                    run.throw(exc)
        return run.result

    async def _do(self, step: Step) -> Any:
        if isinstance(step, httpx.Request):
            return await self.http.send(step)
        if isinstance(step, Exclusive):
            return await self._exclusive(step.flow)
        result = self._storage_call(step)
        return await result if inspect.isawaitable(result) else result

    async def _exclusive(self, flow: Flow[T]) -> T:
        async with self._get_lock():
            with anyio.CancelScope(shield=True):
                result = await self._run(flow)
        return result

    # -- authentication --------------------------------------------------------------------

    async def login(
        self,
        email: str,
        password: str,
        otp: str | None = None,
        *,
        mode: Mode | None = None,
        provider: str | None = None,
    ) -> AuthData:
        """Log in (``POST /auth/login``) and keep the tokens; see :meth:`Client.login`."""
        return await self._exclusive(self._flows.login(email, password, otp, mode, provider))

    async def refresh(self, *, mode: Mode | None = None) -> AuthData:
        """Refresh the login now. Raises :class:`RefreshFailed` if the server refuses."""
        return await self._exclusive(self._flows.refresh(mode))

    async def logout(self, *, mode: Mode | None = None) -> None:
        """Log out (``POST /auth/logout``) and forget the login, even if the server fails."""
        await self._exclusive(self._flows.logout(mode))

    async def get_token(self) -> str | None:
        """The current access token, refreshed first if it is about to expire."""
        return await self._run(self._flows.get_token())

    async def set_token(self, token: str | None) -> None:
        """Use ``token`` from now on (no refresh token, no known expiry); ``None`` forgets."""
        await self._exclusive(self._flows.set_token(token))

    async def realtime_auth_message(self, *, uid: str | int | None = None) -> str:
        """The WebSocket ``auth`` message carrying the current (fresh) access token."""
        return await self._run(self._flows.realtime_auth_message(uid))

    # -- the user's own sessions -------------------------------------------------------------

    async def sessions(self) -> list[dict[str, Any]]:
        """:meth:`Client.sessions`, awaited."""
        return await self._run(self._flows.sessions())

    async def revoke_session(self, session_id: str) -> None:
        """:meth:`Client.revoke_session`, awaited."""
        await self._run(self._flows.revoke_session(session_id))

    async def revoke_other_sessions(self) -> None:
        """:meth:`Client.revoke_other_sessions`, awaited."""
        await self._run(self._flows.revoke_other_sessions())

    # -- requests --------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        url: httpx.URL | str,
        *,
        token: str | None = None,
        headers: Any = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send a request with the login attached; see :meth:`Client.request`."""
        return await self._run(
            self._flows.request(method, url, token=token, headers=headers, kwargs=kwargs)
        )

    async def get(self, url: httpx.URL | str, **kwargs: Any) -> httpx.Response:
        """``GET``; see :meth:`request`."""
        return await self.request("GET", url, **kwargs)

    async def post(self, url: httpx.URL | str, **kwargs: Any) -> httpx.Response:
        """``POST``; see :meth:`request`."""
        return await self.request("POST", url, **kwargs)

    async def put(self, url: httpx.URL | str, **kwargs: Any) -> httpx.Response:
        """``PUT``; see :meth:`request`."""
        return await self.request("PUT", url, **kwargs)

    async def patch(self, url: httpx.URL | str, **kwargs: Any) -> httpx.Response:
        """``PATCH``; see :meth:`request`."""
        return await self.request("PATCH", url, **kwargs)

    async def delete(self, url: httpx.URL | str, **kwargs: Any) -> httpx.Response:
        """``DELETE``; see :meth:`request`."""
        return await self.request("DELETE", url, **kwargs)

    # -- lifetime --------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the underlying httpx client (if this client created it)."""
        if self._owns_http:
            await self.http.aclose()

    async def __aenter__(self: _A) -> _A:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
