"""Where a request carries its token, read exactly as Directus reads it.

Order: the query parameter (``access_token``, or the configured names), then an
``Authorization: Bearer`` header, then the session cookie. A query token together with a
Bearer header is a 400 (RFC 6750 §2 allows one method); a cookie alongside either is
ignored, so that a static token can be used from a page that also holds a session.

Stricter than Directus, on purpose: a repeated token parameter (or two Bearer headers) is a
400 instead of passing an array on, and bracketed names (``access_token[]=``) are too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, unquote_plus

from ..errors import AuthError, invalid_payload

__all__ = ["Extracted", "Extractor", "parse_cookie"]

Source = Literal["query", "header", "cookie"]

_TWO_METHODS = "The request uses more than one method for including an access token"
_TWO_TOKENS = "The request includes more than one access token"


@dataclass(frozen=True, slots=True)
class Extracted:
    """A token and where it came from (``name`` is the parameter or cookie name)."""

    token: str
    source: Source
    name: str

    def __repr__(self) -> str:  # never show the token
        size = len(self.token)
        return f"Extracted(source={self.source!r}, name={self.name!r}, token=<{size} chars>)"


def parse_cookie(header: str, name: str) -> str | None:
    """The value of cookie ``name`` in a ``Cookie`` header, as Express's cookie-parser reads it.

    The first occurrence wins, surrounding quotes are removed and a percent-encoded value is
    decoded (left as is when it does not decode). Returns ``None`` when absent.
    """
    if name not in header:
        return None
    for part in header.split(";"):
        key, sep, value = part.partition("=")
        if not sep or key.strip() != name:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
            value = value[1:-1]
        if "%" in value:
            try:
                value = unquote(value, errors="strict")
            except UnicodeDecodeError:
                pass
        return value
    return None


class Extractor:
    """Finds the token of a request from its raw parts; built once from the settings."""

    __slots__ = ("query_params", "cookie_name", "_names")

    def __init__(self, query_params: tuple[str, ...], cookie_name: str) -> None:
        self.query_params = tuple(query_params)
        self.cookie_name = cookie_name
        self._names = frozenset(self.query_params)

    def query_tokens(self, query_string: str) -> list[tuple[str, str]] | AuthError:
        """Every ``(name, value)`` pair of a token parameter, decoded as ``qs`` decodes."""
        found: list[tuple[str, str]] = []
        if not query_string:
            return found
        # Fast path: nothing that could spell a token name, not even percent-encoded.
        if "%" not in query_string and not any(n in query_string for n in self.query_params):
            return found
        for part in query_string.split("&"):
            key, _, value = part.partition("=")
            if "%" in key or "+" in key:
                key = unquote_plus(key, errors="replace")
            if key in self._names:
                found.append((key, unquote_plus(value, errors="replace")))
            elif "[" in key and key.split("[", 1)[0] in self._names:
                return invalid_payload(_TWO_TOKENS)
        return found

    def bearer_only(
        self, authorization: str | None, query_string: str, authorization_count: int = 1
    ) -> str | None:
        """The Bearer token when it is certainly what :meth:`__call__` would extract, else
        ``None`` (then call :meth:`__call__`).

        The common request — one ``Authorization: Bearer`` header, no token in the query —
        answered without building an :class:`Extracted`; any doubt falls back.
        """
        if authorization is None or authorization_count != 1:
            return None
        if query_string and (
            "%" in query_string or any(n in query_string for n in self.query_params)
        ):
            return None
        scheme, sep, token = authorization.partition(" ")
        # Exactly one space, as __call__'s split(" ") into two parts requires.
        if not sep or " " in token or scheme.lower() != "bearer":
            return None
        return token

    def __call__(
        self,
        authorization: str | None,
        query_string: str,
        cookie: str | None,
        *,
        authorization_count: int = 1,
    ) -> Extracted | AuthError | None:
        """The request's token, a 400 error, or ``None`` (no token: public).

        ``authorization_count`` is how many ``Authorization`` headers the request had.
        """
        query = self.query_tokens(query_string)
        if isinstance(query, AuthError):
            return query
        if len(query) > 1:
            return invalid_payload(_TWO_TOKENS)
        token: Extracted | None = None
        if query:
            token = Extracted(query[0][1], "query", query[0][0])
        if authorization is not None:
            parts = authorization.split(" ")
            if len(parts) == 2 and parts[0].lower() == "bearer":
                if authorization_count > 1:
                    return invalid_payload(_TWO_TOKENS)
                if token is not None:
                    return invalid_payload(_TWO_METHODS)
                token = Extracted(parts[1], "header", "Authorization")
        if token is None and cookie:
            value = parse_cookie(cookie, self.cookie_name)
            if value:
                token = Extracted(value, "cookie", self.cookie_name)
        return token
