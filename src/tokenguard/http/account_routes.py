"""Handlers for password reset (``<auth>/password/request|reset``) and two-factor enrolment
(``<tfa prefix>/generate|enable|disable``, default ``/users/me/tfa``).

Dispatched by :class:`~tokenguard.http.routes.AuthRouter`; each handler is a flow from a
:class:`~tokenguard.http.views.RequestView` to a :class:`~tokenguard.http.views.ResponseView`
and raises :class:`~tokenguard.errors.AuthError` for Directus's error bodies.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator
from typing import Any

from ..auth.reset import PasswordReset, validate_reset, validate_reset_request
from ..auth.service import ClientInfo
from ..auth.totp import TwoFactor
from ..errors import AuthError, invalid_credentials, invalid_payload
from .body import parse_json_body
from .views import RequestView, ResponseView, json_response

__all__ = ["AccountRoutes"]

_NO_CACHE = [("cache-control", "no-cache"), ("vary", "Origin, Cache-Control")]


def _body(request: RequestView) -> Any:
    data = parse_json_body(request.body, request.headers.get("content-type"))
    if isinstance(data, AuthError):
        raise data
    return data


def _string(data: Any, key: str) -> str:
    # Joi's `string().required()` for the TFA bodies, with its messages.
    if not isinstance(data, dict) or key not in data:
        raise invalid_payload(f'"{key}" is required')
    value = data[key]
    if not isinstance(value, str):
        raise invalid_payload(f'"{key}" must be a string')
    if value == "":
        raise invalid_payload(f'"{key}" is not allowed to be empty')
    return value


class AccountRoutes:
    """Password reset and TOTP enrolment over HTTP."""

    def __init__(
        self,
        reset: PasswordReset,
        two_factor: TwoFactor,
        monotonic: Callable[[], float],
    ) -> None:
        self.reset = reset
        self.two_factor = two_factor
        self.monotonic = monotonic

    def password_request(
        self, request: RequestView, client: ClientInfo | None = None
    ) -> Generator[Any, Any, ResponseView]:
        started = self.monotonic()
        payload = validate_reset_request(_body(request))
        if isinstance(payload, AuthError):
            raise payload
        yield from self.reset.request(payload, started, client)
        return ResponseView(204, list(_NO_CACHE), b"")

    def password_reset(
        self, request: RequestView, client: ClientInfo | None = None
    ) -> Generator[Any, Any, ResponseView]:
        payload = validate_reset(_body(request))
        if isinstance(payload, AuthError):
            raise payload
        yield from self.reset.reset(payload, client)
        return ResponseView(204, list(_NO_CACHE), b"")

    def tfa(
        self, action: str, request: RequestView, client: ClientInfo | None = None
    ) -> Generator[Any, Any, ResponseView]:
        user_id = request.principal.user
        if user_id is None:
            raise invalid_credentials()
        data = _body(request)
        if action == "generate":
            started = self.monotonic()
            password = _string(data, "password")
            try:
                result = yield from self.two_factor.generate(user_id, password)
            except AuthError as error:
                if error.code == "INVALID_CREDENTIALS":
                    # A password guess through this door costs what a login guess costs.
                    yield from self.reset.service.stall(started)
                raise
            body = json.dumps({"data": result}, separators=(",", ":")).encode()
            return json_response(200, body, list(_NO_CACHE))
        if action == "enable":
            secret = _string(data, "secret")
            otp = _string(data, "otp")
            yield from self.two_factor.enable(user_id, secret, otp, client)
        else:
            otp = _string(data, "otp")
            yield from self.two_factor.disable(user_id, otp, client)
        return ResponseView(204, list(_NO_CACHE), b"")
