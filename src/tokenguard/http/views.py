"""Framework-neutral request and response values passed between the shells and the routes."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..principal import Principal

__all__ = ["RequestView", "ResponseView", "json_response"]


@dataclass(slots=True)
class RequestView:
    """What a route handler may know about a request. Header names are lower-case; repeated
    headers are joined with ``, `` (``Cookie`` with ``; ``)."""

    method: str
    path: str
    query_string: str
    headers: dict[str, str]
    body: bytes
    principal: Principal
    client_ip: str | None = None

    @property
    def cookie(self) -> str | None:
        return self.headers.get("cookie")


@dataclass(slots=True)
class ResponseView:
    """A complete response: status, headers (``Set-Cookie`` may repeat) and body."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


JSON_TYPE = "application/json; charset=utf-8"


def json_response(
    status: int, body: bytes, extra: list[tuple[str, str]] | None = None
) -> ResponseView:
    headers = [("content-type", JSON_TYPE)]
    if extra:
        headers.extend(extra)
    return ResponseView(status, headers, body)
