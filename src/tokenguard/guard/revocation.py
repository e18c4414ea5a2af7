"""Revoked access tokens, per process, in memory: a dictionary lookup or two per request.

Every access token names its session (the ``sid`` claim: the session family, which is not a
secret) and when it was issued (``iat``, and ``iat_ms`` to the millisecond). A token is void
when its session was revoked, or when its user was revoked after it was issued (a password
change, a suspension, a change of role: the user's tokens issued before that moment are
refused, and the client refreshes into what the user now is).

Memory is bounded by one window of revocations: an entry made at ``T`` can only refuse
tokens issued before ``T``, which all expire by ``T + window`` (the longest token lifetime
plus the leeway); at that moment the entry goes. A session's window is ``ACCESS_TOKEN_TTL``
plus leeway (a session-mode token's session is checked against the store anyway); a user's
spans session-mode tokens too (``SESSION_COOKIE_TTL``). Pruning runs on every insert, so the
registry never holds more than the revocations of the last window (plus the one added).

Trust: a registry fed from other processes (Redis pub/sub, :mod:`tokenguard.guard.invalidation`)
is ``trusted`` only while its feed is subscribed and has caught up with the store's window
of revocations. While it is not, the guard asks the store on each request (a ``check``
callable, see :class:`RevocationCheck`) and answers 503 when the store cannot say — a token
is never accepted blind.
"""

from __future__ import annotations

import heapq
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from ..flow import Call, Flow
from ..principal import Principal
from ..stores.base import User

__all__ = [
    "PRIVILEGE_FIELDS",
    "Entry",
    "RevocationCheck",
    "RevocationPublisher",
    "Revocations",
    "decode_entries",
    "encode_entries",
    "entry_from_member",
    "issued_at",
    "revoking_change",
]

log = logging.getLogger("tokenguard.guard")

Kind = Literal["s", "u"]

#: Announcements of revocations on the invalidation channel start with this character;
#: the other messages are comma-separated session families (which never start with it).
MESSAGE_MARK = "!"


@dataclass(frozen=True, slots=True)
class Entry:
    """One revocation: a session (``kind="s"``, ``key`` = its sid) or a user (``"u"``, the
    user id), made at ``at_ms`` (Unix milliseconds; for a user, the not-before time)."""

    kind: Kind
    key: str
    at_ms: int

    @property
    def member(self) -> str:
        """The entry's name in a store's window of revocations (a Redis sorted set)."""
        return f"{self.kind}:{self.key}"


def encode_entries(entries: Iterable[Entry]) -> str:
    """The channel message announcing ``entries``."""
    return MESSAGE_MARK + json.dumps(
        [[e.kind, e.key, e.at_ms] for e in entries], separators=(",", ":")
    )


def decode_entries(message: str) -> list[Entry]:
    """The entries of a message made by :func:`encode_entries`; malformed items are skipped
    (a message we cannot read is a sender's fault, and revokes nothing)."""
    try:
        items = json.loads(message[len(MESSAGE_MARK) :])
    except ValueError:
        return []
    found: list[Entry] = []
    if not isinstance(items, list):
        return found
    for item in items:
        if (
            isinstance(item, list)
            and len(item) == 3
            and item[0] in ("s", "u")
            and isinstance(item[1], str)
            and type(item[2]) is int
        ):
            found.append(Entry(item[0], item[1], item[2]))
    return found


def entry_from_member(member: str, score: float) -> Entry | None:
    """The entry a store's window holds as ``member`` with ``score`` (its ``at_ms``)."""
    kind, sep, key = member.partition(":")
    if not sep or kind not in ("s", "u") or not key:
        return None
    return Entry(kind, key, int(score))  # type: ignore[arg-type]


def issued_at(claims: dict[str, Any]) -> float | None:
    """When a token was issued (Unix seconds): ``iat_ms`` when present, else ``iat``;
    ``None`` for a token without either (refused by any revocation of its user)."""
    iat_ms = claims.get("iat_ms")
    if type(iat_ms) is int:
        return iat_ms / 1000
    iat = claims.get("iat")
    if type(iat) is int or type(iat) is float:
        return float(iat)
    return None


#: The fields of a user whose change voids the user's access tokens: what a token claims
#: (``role``, ``admin_access``, ``app_access``), whether the user may act at all
#: (``status``), and the credentials it was obtained with (``password_hash``; and
#: ``tfa_secret`` when two-factor is turned off, see :func:`revoking_change`).
PRIVILEGE_FIELDS = ("role", "admin_access", "app_access", "status", "password_hash")


def revoking_change(before: User, after: User | None) -> str | None:
    """Why the change of a user from ``before`` to ``after`` (``None``: the user is gone)
    must void its access tokens issued until now, or ``None`` when it need not.

    The one decision every path that updates a user shares (the login drivers' role sync,
    the lockout, a reset, two-factor, the command line): a token must not keep privileges
    its user lost, so it is refused and its client refreshes into what the user now is.
    A password re-hashed to a newer algorithm is the same password: callers that only
    upgrade a hash do not ask.
    """
    if after is None:
        return "deleted"
    for name in PRIVILEGE_FIELDS:
        if getattr(before, name) != getattr(after, name):
            return name
    if before.tfa_secret and not after.tfa_secret:
        return "tfa_secret"
    return None


class RevocationCheck(Protocol):
    """Asks the store whether a token is revoked, when the registry cannot vouch for it:
    returns ``(session revoked at ms or None, user not-before ms or None)`` (a coroutine for
    an async store: it is a flow's :class:`~tokenguard.flow.Call`); raises
    :class:`~tokenguard.stores.base.StoreUnavailable` when the store cannot answer."""

    def __call__(self, sid: str | None, user: str | None) -> Any: ...


class RevocationPublisher(Protocol):
    """Records entries in the store's window of revocations (``members``: name and ms), then
    publishes ``message`` (:func:`encode_entries`) to every process; a flow's call."""

    def __call__(self, members: list[tuple[str, int]], message: str) -> Any: ...


#: Outdated heap items tolerated beyond the live entries before the heap is rebuilt.
_HEAP_SLACK = 1024


class Revocations:
    """The revoked sessions and users' not-before times of this process.

    Reads (:meth:`refuses`) take no lock: two dictionary lookups, safe under the GIL while a
    writer holds the lock. Writes come from the request path (a logout), the public API and
    the subscriber thread.
    """

    def __init__(
        self,
        window_s: float,
        *,
        session_window_s: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        #: Longest token lifetime plus leeway: how long a user's entry can refuse anything.
        self.window_s = window_s
        #: The same for a session's entry; shorter when only JWTs without a ``session`` claim
        #: need it (a session-mode token's session is checked against the store anyway).
        self.session_window_s = window_s if session_window_s is None else session_window_s
        self.clock = clock
        #: sid -> revoked at (Unix seconds).
        self.sessions: dict[str, float] = {}
        #: user id -> not before (Unix seconds).
        self.users: dict[str, float] = {}
        #: False while revocations made elsewhere may be missing (a feed not subscribed, or
        #: not caught up yet): then :attr:`check` is asked on each request.
        self.trusted = True
        #: The store's answer for a token while not trusted (None: nothing to ask).
        self.check: RevocationCheck | None = None
        #: Tells the other processes of each local revocation (set by the assembly when a
        #: feed exists; a store method, called from a flow).
        self.publish: RevocationPublisher | None = None
        #: Called before each store check (starts the subscriber that will make it trusted).
        self.on_check: Callable[[], object] | None = None
        #: Counts the writes that recorded something (a cheap "anything new?" for pollers).
        self.version = 0
        #: Called, from whichever thread wrote, after each write that recorded something:
        #: open WebSockets re-check their principal (tokenguard.shells.asgi_ws). A listener
        #: must be quick and must not raise (one that does is logged and skipped).
        self.listeners: list[Callable[[], object]] = []
        self._expiry: list[tuple[float, Kind, str]] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.sessions) + len(self.users)

    # -- reads -------------------------------------------------------------------------------

    def refuses(self, sid: str | None, user: str | None, issued: float | None) -> bool:
        """Whether a token of session ``sid`` and ``user``, issued at ``issued``, is void."""
        if sid is not None and sid in self.sessions:
            return True
        if user is not None:
            not_before = self.users.get(user)
            if not_before is not None and (issued is None or issued < not_before):
                return True
        return False

    def refuses_stored(
        self,
        answer: tuple[int | None, int | None],
        issued: float | None,
    ) -> bool:
        """:meth:`refuses` for the store's answer (see :class:`RevocationCheck`)."""
        session_ms, user_ms = answer
        if session_ms is not None:
            return True
        return user_ms is not None and (issued is None or issued < user_ms / 1000)

    def refuses_principal(self, principal: Principal, since: float) -> bool:
        """Whether an open connection's ``principal``, authenticated at ``since`` (Unix
        seconds), is void now: :meth:`refuses` with the token's issue time, or ``since`` for
        a credential without one (a static token: the user revoked after the connection
        authenticated). The public caller is never refused; a token without a user but with
        a revoked session is, as on the request path (:meth:`refuses`)."""
        if not (self.sessions or self.users):
            return False
        issued = principal.issued_at if principal.issued_at is not None else since
        return self.refuses(principal.sid, principal.user, issued)

    # -- writes ------------------------------------------------------------------------------

    def revoke_session(self, sid: str, at: float | None = None) -> Entry:
        """Void every token of session ``sid`` (here; see :attr:`publish` for elsewhere)."""
        at = self.clock() if at is None else at
        entry = Entry("s", sid, int(at * 1000))
        self.apply((entry,))
        return entry

    def revoke_user(self, user_id: str, at: float | None = None) -> Entry:
        """Void every token of ``user_id`` issued before ``at`` (default: now)."""
        at = self.clock() if at is None else at
        # Rounded up to the millisecond: a token issued in the same millisecond, before or
        # after, is refused (its client refreshes), never one issued earlier let through.
        entry = Entry("u", user_id, -int(-at * 1000 // 1))
        self.apply((entry,))
        return entry

    def announce(self, entries: list[Entry]) -> Flow[None]:
        """Tell the other processes (a flow: the publish is blocking I/O, run in a worker
        thread under ASGI); nothing to do without a feed."""
        if self.publish is not None and entries:
            members = [(e.member, e.at_ms) for e in entries]
            yield Call(self.publish, (members, encode_entries(entries)))

    def apply(self, entries: Iterable[Entry]) -> None:
        """Record entries (made here, announced by another process, or caught up from the
        store); an entry older than the window is ignored, a user's later time wins."""
        now = self.clock()
        recorded = False
        with self._lock:
            self._prune(now)
            for entry in entries:
                at = entry.at_ms / 1000
                until = at + (self.session_window_s if entry.kind == "s" else self.window_s)
                if until <= now:
                    continue
                # The latest time wins (and lives its own window): a session revoked again
                # later, or a user whose not-before moved on.
                table = self.sessions if entry.kind == "s" else self.users
                current = table.get(entry.key)
                if current is not None and current >= at:
                    continue
                table[entry.key] = at
                heapq.heappush(self._expiry, (until, entry.kind, entry.key))
                recorded = True
            if recorded:
                self.version += 1
                if len(self._expiry) > 2 * len(self) + _HEAP_SLACK:
                    self._compact()
        if recorded:
            for listener in tuple(self.listeners):
                try:
                    listener()
                except Exception as exc:  # a listener's bug must not undo a revocation
                    log.error("revocation listener failed: %s", type(exc).__name__)

    def prune(self, now: float | None = None) -> None:
        """Drop the entries whose window has passed (also done by every write)."""
        with self._lock:
            self._prune(self.clock() if now is None else now)

    def _prune(self, now: float) -> None:
        # Holding the lock. A heap item may be outdated (a later time replaced its entry):
        # the entry goes only once its current time is a window old.
        expiry = self._expiry
        while expiry and expiry[0][0] <= now:
            _, kind, key = heapq.heappop(expiry)
            if kind == "s":
                table, window = self.sessions, self.session_window_s
            else:
                table, window = self.users, self.window_s
            at = table.get(key)
            if at is not None and at + window <= now:
                del table[key]

    def _compact(self) -> None:
        # Holding the lock. A user revoked again leaves its earlier heap item behind (it is
        # skipped when it comes up): rebuilt from the tables once outdated items outnumber
        # the live ones, the heap stays within twice the entries held, whatever the number
        # of revocations, at an amortised constant cost per write.
        self._expiry = [(at + self.session_window_s, "s", key) for key, at in self.sessions.items()]
        self._expiry += [(at + self.window_s, "u", key) for key, at in self.users.items()]
        heapq.heapify(self._expiry)

    def clear(self) -> None:
        """Forget everything (tests; a fresh process)."""
        with self._lock:
            self.sessions.clear()
            self.users.clear()
            self._expiry.clear()
