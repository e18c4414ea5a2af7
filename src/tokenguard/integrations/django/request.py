"""A Django request as the request pipeline reads it: ``request.META`` (environ-shaped under
both of Django's handlers), with Django's own idea of the scheme (``SECURE_PROXY_SSL_HEADER``).
Shared by the middleware and the DRF authentication class."""

from __future__ import annotations

from typing import Any

from ...shells.environ import EnvironRequest

__all__ = ["DjangoRequest"]


class DjangoRequest(EnvironRequest):
    """A :class:`~tokenguard.guard.pipeline.RequestHead` over a Django ``HttpRequest``."""

    __slots__ = ("_request",)

    def __init__(self, request: Any, method: str, path: str) -> None:
        super().__init__(request.META, method, path)
        self._request = request

    @property
    def scheme(self) -> str:
        scheme: str = self._request.scheme
        return scheme
