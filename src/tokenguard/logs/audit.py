"""An audit trail of authentication events: one structured record per login, refresh,
logout, session ended by its user, password reset, two-factor change, lockout, throttle and
change to a user that voids its tokens (by the system, an administrator or the command line).

Every event goes to the standard :mod:`logging` module, logger ``tokenguard.audit``: the
message is one JSON line, and the record carries the same fields as attributes (``extra``),
for handlers that write structured logs. An :class:`AuditStore` can keep them too
(``TOKENGUARD_AUDIT_STORE``: memory, SQLite or Redis; see :mod:`tokenguard.stores.audit`),
as Directus keeps its ``activity`` rows, for ``tokenguard audit list``.

What a record holds is fixed by :class:`AuditEvent`: the event, its outcome, the user's id
(when one is known), the client's address, user agent and origin, the time, the provider and
the Directus error code of a refusal. It never holds a token, a password, a one-time code or
an e-mail address (a password typed into the e-mail field is a classic leak); the user agent
and origin, which the client chooses, are redacted and cut to a bounded length.

The core emits events through :class:`Audit`, a sink injected into
:class:`~tokenguard.auth.service.AuthService`: its store call is a flow step like any other,
so sync and async stores both work. An audit store that fails does not fail the request (the
event is still logged, and the failure reported): authentication decisions never depend on it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal, Protocol

from ..flow import Call, Flow
from .redact import Redactor, default_redactor

__all__ = [
    "EVENTS",
    "Audit",
    "AuditEvent",
    "AuditStore",
    "AsyncAuditStore",
    "ClientLike",
    "Outcome",
]

log = logging.getLogger("tokenguard.audit")

#: Every event name, with what it records.
EVENTS: dict[str, str] = {
    "login": "a login attempt (password or single sign-on)",
    "refresh": "a refresh-token rotation",
    "refresh_reuse": "a rotated-away refresh token used again: its session family revoked",
    "logout": "a logout",
    "session_end": "one of a user's sessions ended by that user (or refused: none of theirs)",
    "session_end_others": "every other session of a user ended by that user",
    "password_reset_request": "a password reset link requested",
    "password_reset": "a password reset completed (or refused)",
    "tfa_enable": "two-factor authentication enabled (or refused)",
    "tfa_disable": "two-factor authentication disabled (or refused)",
    "lockout": "a user suspended after too many failed logins",
    "throttle": "a request refused by a rate limit (429)",
    "user_change": (
        "a change to a user that voids its tokens, whatever made it (the reason names the "
        "field, or deleted; from the command line also token_hash, sessions or session)"
    ),
}

#: success: it happened; failure: it was refused; blocked: an attack was stopped.
Outcome = Literal["success", "failure", "blocked"]

#: Longest user agent and origin kept (Directus truncates the user agent to 1024 too).
FIELD_LIMIT = 1024


class ClientLike(Protocol):
    """Where a request came from (:class:`~tokenguard.auth.service.ClientInfo`)."""

    @property
    def ip(self) -> str | None: ...
    @property
    def user_agent(self) -> str | None: ...
    @property
    def origin(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One authentication event. ``timestamp`` is ISO 8601 in UTC, to the millisecond."""

    event: str
    outcome: str
    timestamp: str
    user_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    origin: str | None = None
    provider: str | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        """The fields as a plain dict (the ``extra`` of the log record, a stored row)."""
        # Not dataclasses.asdict: it deep-copies every field, and a flood of throttled logins
        # emits one event per request (the fields are strings or None: nothing to copy).
        return {name: getattr(self, name) for name in _FIELDS}

    def to_json(self) -> str:
        """One line of JSON (ASCII only, so no newline or control character of a client's
        can break the line)."""
        return _line(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditEvent:
        """Read back a stored row; unknown keys are ignored, missing ones are ``None``."""
        names = cls.__dataclass_fields__
        values = {k: (None if v is None else str(v)) for k, v in data.items() if k in names}
        values.setdefault("event", "")
        values.setdefault("outcome", "")
        values.setdefault("timestamp", "")
        return cls(**values)  # type: ignore[arg-type]


#: The event's fields, in order (the keys of :meth:`AuditEvent.to_dict`).
_FIELDS = tuple(AuditEvent.__dataclass_fields__)


def _line(fields: dict[str, str | None]) -> str:
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=True)


class AuditStore(Protocol):
    """Keeps the newest events (a bounded number) and lists them, newest first."""

    def append(self, event: AuditEvent) -> None: ...

    def recent(
        self, limit: int = 50, *, user_id: str | None = None, event: str | None = None
    ) -> list[AuditEvent]: ...


class AsyncAuditStore(Protocol):
    """:class:`AuditStore` with coroutines (for ASGI apps over ``redis.asyncio``)."""

    async def append(self, event: AuditEvent) -> None: ...

    async def recent(
        self, limit: int = 50, *, user_id: str | None = None, event: str | None = None
    ) -> list[AuditEvent]: ...


def timestamp_of(now: float) -> str:
    """``now`` (seconds since the epoch) as ``2026-01-31T12:34:56.789Z``."""
    moment = datetime.fromtimestamp(now, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _bounded(value: str | None, redactor: Redactor) -> str | None:
    if value is None:
        return None
    return redactor.text(value[:FIELD_LIMIT])[:FIELD_LIMIT]


_LEVELS = {"success": logging.INFO, "failure": logging.WARNING, "blocked": logging.WARNING}


class Audit:
    """The sink the core emits events through: logs each one, then hands it to ``store``."""

    def __init__(
        self,
        store: AuditStore | AsyncAuditStore | None = None,
        *,
        clock: Callable[[], float] = time.time,
        redactor: Redactor | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.redactor = redactor if redactor is not None else default_redactor()

    def make(
        self,
        event: str,
        outcome: Outcome,
        client: ClientLike | None = None,
        *,
        user_id: str | None = None,
        provider: str | None = "default",
        reason: str | None = None,
    ) -> AuditEvent:
        """The record of an event (no I/O)."""
        return AuditEvent(
            event=event,
            outcome=outcome,
            timestamp=timestamp_of(self.clock()),
            user_id=user_id,
            ip=_bounded(client.ip, self.redactor) if client is not None else None,
            user_agent=_bounded(client.user_agent, self.redactor) if client is not None else None,
            origin=_bounded(client.origin, self.redactor) if client is not None else None,
            provider=provider,
            reason=reason,
        )

    def emit(
        self,
        event: str,
        outcome: Outcome,
        client: ClientLike | None = None,
        *,
        user_id: str | None = None,
        provider: str | None = "default",
        reason: str | None = None,
    ) -> Flow[None]:
        """Record one event (a flow: the store call, if any, is a step)."""
        record = self.make(
            event, outcome, client, user_id=user_id, provider=provider, reason=reason
        )
        fields = record.to_dict()
        log.log(_LEVELS.get(outcome, logging.INFO), "%s", _line(fields), extra=fields)
        if self.store is None:
            return
        try:
            yield Call(self.store.append, (record,))
        except Exception as exc:  # the trail is not worth a failed login; say it is incomplete
            log.error("audit store failed (%s): event %s not stored", type(exc).__name__, event)
