"""tokenguard's answers (``/auth`` routes, refusals, Directus errors) as Django responses."""

from __future__ import annotations

from http.cookies import Morsel
from typing import Any
from urllib.parse import unquote

from django.http import HttpResponse

from ...errors import AuthError
from ...http.views import ResponseView, json_response

__all__ = ["error_response", "http_response"]


class ExactCookie(Morsel[str]):
    """A cookie whose ``Set-Cookie`` value tokenguard already made, in Directus's exact form
    (:mod:`tokenguard.http.cookies`: attribute order, ``Expires`` format, deletion).

    Django writes ``response.cookies`` itself, through each morsel's output; this one outputs
    the value as it is. Its ``key`` and ``coded_value`` are those of the cookie, so Django's
    test client keeps and sends it back like any other.
    """

    def __init__(self, header: str) -> None:
        super().__init__()
        name, _, rest = header.partition("=")
        coded = rest.partition(";")[0]
        self.set(name.strip(), unquote(coded), coded)
        self._header = header

    def OutputString(self, attrs: Any = None) -> str:
        return self._header

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled with the response (Django's cache middleware): keep the exact header.
        return (type(self), (self._header,))


def http_response(view: ResponseView, method: str = "GET") -> HttpResponse:
    """A Django response with ``view``'s status, headers, cookies and body (none for
    ``HEAD``, with the ``Content-Length`` of the body it would have had, as the shells)."""
    response = HttpResponse(b"" if method == "HEAD" else view.body, status=view.status)
    del response["Content-Type"]  # Django's default (text/html) unless the view names one
    for name, value in view.headers:
        if name.lower() == "set-cookie":
            morsel = ExactCookie(value)
            response.cookies[morsel.key] = morsel
        elif name in response:
            response[name] = f"{response[name]}, {value}"
        else:
            response[name] = value
    if view.status != 204:
        response["Content-Length"] = str(len(view.body))
    return response


def error_response(error: AuthError, method: str = "GET") -> HttpResponse:
    """Directus's JSON error body with its status."""
    return http_response(json_response(error.status, error.body), method)
