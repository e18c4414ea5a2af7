"""Django Channels: WebSocket consumers authenticated by tokenguard.

::

    # asgi.py
    from channels.routing import ProtocolTypeRouter, URLRouter
    from tokenguard.integrations.channels import TokenGuardChannelsMiddleware

    application = ProtocolTypeRouter({
        "http": get_asgi_application(),          # with TokenGuardMiddleware in MIDDLEWARE
        "websocket": TokenGuardChannelsMiddleware(URLRouter(websocket_urlpatterns)),
    })

    # consumers.py
    class Chat(JsonWebsocketConsumer):
        def connect(self):
            if not self.scope["user"].is_authenticated:
                self.close()                            # or accept the public caller
            ...

The token comes from where tokenguard takes it at an upgrade: the ``access_token`` query
parameter (browsers cannot set headers on a WebSocket), the session cookie, or
``Authorization: Bearer``. A consumer finds ``scope["user"]``, a
:class:`~tokenguard.integrations.django.TokenGuardUser` (the public caller when there is no
token), and ``scope["principal"]``, the :class:`~tokenguard.principal.Principal`; the query
token is taken out of ``scope["query_string"]``. A bad token, or an upgrade authenticated by
the session cookie from an untrusted ``Origin`` (cross-site WebSocket hijacking; the CSRF
policy of :mod:`tokenguard.guard.csrf`), is refused before the consumer runs: the socket is
closed before it is accepted, which the server answers with 403.

The guard is the Django integration's (:func:`~tokenguard.integrations.django.get_guard`): the
principal is checked at the upgrade, as for a plain ASGI WebSocket; a token that expires
later does not close the socket, but one that is revoked does (a logout, a change of role or
access, a suspension: :mod:`tokenguard.guard.revocation`): the socket is closed with code
4403 (reason ``Token revoked.``) as soon as this process learns of it, or at the next frame
at the latest, and the consumer gets ``websocket.disconnect``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import GeneratorType
from typing import Any, cast

from .. import types
from ..errors import AuthError
from ..flow import run_async
from ..guard.decide import Refusal
from ..guard.extract import Extracted
from ..logs.redact import remove_query_params
from ..principal import Principal
from ..shells.asgi_ws import guarded_socket
from .django.conf import get_guard
from .django.user import TokenGuardUser

__all__ = ["TokenGuardChannelsMiddleware"]

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]


def _headers(scope: Scope) -> tuple[str | None, int, str | None, dict[str, str]]:
    """The first ``Authorization``, how many there were, the cookies, Origin and Host."""
    authorization: str | None = None
    count = 0
    cookies: list[str] = []
    other: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        if name == "authorization":
            count += 1
            if count == 1:
                authorization = value
        elif name == "cookie":
            cookies.append(value)
        elif name in ("origin", "host"):
            other.setdefault(name, value)
    return authorization, count, "; ".join(cookies) if cookies else None, other


class TokenGuardChannelsMiddleware:
    """Channels middleware for ``websocket`` scopes; other scopes pass through untouched."""

    #: What ``scope["user"]`` is made of; a subclass may change it.
    user_class: type[TokenGuardUser] = TokenGuardUser

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope.get("type") != "websocket":
            await self.inner(scope, receive, send)
            return
        outcome = await self.authenticate(scope)
        if isinstance(outcome, AuthError):
            # Closing before the accept: the server answers the upgrade with 403.
            await send({"type": "websocket.close", "code": 1008})
            return
        scope = dict(scope)
        core = get_guard()
        query = _text(scope.get("query_string", b""))
        if query and core.settings.strip_query_token:
            stripped = remove_query_params(query, frozenset(core.settings.query_params))
            scope["query_string"] = stripped.encode("latin-1")
        scope["principal"] = outcome
        scope["user"] = self.user_class(outcome)
        # The inner app takes the scope as the dict Channels gives (the shell's type is wider).
        inner = cast(types.ASGIApp, self.inner)
        await guarded_socket(inner, scope, receive, send, outcome, core.guard.revocations)

    async def authenticate(self, scope: Scope) -> Principal | AuthError:
        """The principal of an upgrade, or why it is refused."""
        core = get_guard()
        authorization, count, cookie, headers = _headers(scope)
        query = _text(scope.get("query_string", b""))
        outcome: Any = core.guard.authenticate(
            authorization, query, cookie, authorization_count=count
        )
        if type(outcome) is GeneratorType:
            outcome = await run_async(outcome)
        if isinstance(outcome, Refusal):
            return outcome.error
        assert isinstance(outcome, Principal)
        if outcome.is_authenticated and cookie:
            found = core.guard.extractor(authorization, query, cookie, authorization_count=count)
            if isinstance(found, Extracted) and found.source == "cookie":
                scheme = "https" if scope.get("scheme") in ("wss", "https") else "http"
                error = core.router.csrf.check(
                    "WEBSOCKET", headers.get("origin"), None, headers.get("host"), scheme
                )
                if error is not None:
                    return error
        return outcome


def _text(value: bytes | str) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value
