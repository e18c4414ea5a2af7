"""Refresh sessions in Redis, with a sync (redis-py) and an async (``redis.asyncio``) client.

Key layout (``prefix`` defaults to ``"tokenguard:"``):

- ``<prefix>s:{<family>}`` — a HASH per session family: field = token hash
  (:func:`~tokenguard.stores.base.refresh_token_key`), value = the record as compact JSON.
  Its expiry (``PEXPIREAT``) is the latest expiry of its records, so Redis forgets dead
  families by itself. The braces make the family a hash tag: everything a rotation touches
  lives in one key, hence one Cluster slot.
- ``<prefix>u:<user_id>`` — a SET of the user's families, for :meth:`revoke_user`. It may
  hold families that are already gone; deleting a missing key is harmless.
- ``<prefix>inv`` — a pub/sub channel, not a key: every revocation (logout, reuse, a user's
  sessions revoked) publishes the families it removed, in the same script or round trip, so
  that processes caching session checks (:mod:`tokenguard.guard.invalidation`) drop them at once.
  Revoked users (``!``-prefixed JSON, :mod:`tokenguard.guard.revocation`) are announced there too.
- ``<prefix>rv`` and ``<prefix>rvs`` — SORTED SETs, the current window of revocations (score =
  when, in ms): ``rv`` the users (member ``u:<user id>``), kept for
  :attr:`~_RedisSessions.revocation_window_ms` (the longest token lifetime: about a day), and
  ``rvs`` the sessions (member ``s:<family>``), kept for
  :attr:`~_RedisSessions.session_revocation_window_ms` only (an access token's lifetime: about
  15 minutes; sessions are most of the revocations, so this is most of the memory). A process
  whose subscription was down catches up from both before it trusts its own list again, and
  asks both per request meanwhile. Written before the announcement, pruned to its window.
  Versions before ``rvs`` kept sessions in ``rv`` too: such members are still read, and
  pruned with the users' window.

Beyond one server: ``redis+sentinel://host:26379[,host2:26379]/<service>[/<db>]`` asks the
Sentinels for the current master (``rediss+sentinel://`` for TLS), and
``redis+cluster://host:port[,host2:port]`` (``rediss+cluster://``) talks to a Redis Cluster.
On a Cluster every Lua script touches one hash slot: a family's HASH is one key, and
:meth:`create` becomes two single-slot scripts (the user's index first, then the family, so
that :meth:`revoke_user` can never miss a family that exists).

Every operation is written once, in :class:`_RedisSessions`, as a generator that yields the
Redis work it needs (a Lua script or a batch of commands, one round trip each) and parses
the replies. That work becomes calls of the client, a flow (:mod:`tokenguard.flow`) that
the same two drivers run as everywhere else: the public classes only say which client,
and which driver.

Fail closed: every Redis error (refused, timed out, loading, read-only, script error…)
becomes :class:`~tokenguard.stores.base.StoreUnavailable` ``("redis", …)``, which the core
answers with 503 — a token that could not be checked is never accepted. Connections are
re-established by the pool on the next call, and scripts are reloaded on ``NOSCRIPT``, so the
store works again as soon as Redis does. Needs Redis 7.0 or newer (``PEXPIRETIME``).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Generic, TypeVar

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.retry
import redis.asyncio.sentinel
import redis.cluster
import redis.retry
import redis.sentinel
from redis.backoff import NoBackoff

from ..flow import Call, Flow, run_async, run_sync
from .base import (
    DEFAULT_REVOCATION_WINDOW_MS,
    DEFAULT_SESSION_REVOCATION_WINDOW_MS,
    RotateOutcome,
    SessionInfo,
    SessionRecord,
    StoreUnavailable,
    family_of,
    summarize_sessions,
)

__all__ = [
    "DEFAULT_PREFIX",
    "AsyncRedisSessionStore",
    "RedisSessionStore",
    "RedisTarget",
    "async_client",
    "client_options",
    "invalidation_channel",
    "aclose_client",
    "close_client",
    "master_check",
    "parse_redis_url",
    "sync_client",
    "sync_twin",
]

T = TypeVar("T")
C = TypeVar("C")
S = TypeVar("S", bound="_RedisStore[Any]")

_log = logging.getLogger("tokenguard.stores.redis")

DEFAULT_PREFIX = "tokenguard:"

#: Timestamps must stay below 10**14 ms (year 5138): Lua's cjson writes numbers with 14
#: significant digits, and we never want it to round one.
_MAX_MS = 10**14
# Families come from client-supplied tokens; only the refresh-token alphabet may reach a
# key name (no braces to break the hash tag, no separators).
_FAMILY = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")

# The rule of tokenguard.stores.rotation.plan_rotation, in Lua; the shared test-suite holds
# both to the same results. Records: {u=user_id, e=expires_at_ms, c=created_at_ms, ip=, ua=,
# o=origin, n=next_hash, l=live_until_ms}; absent keys are None.
_LUA_PRELUDE = """
local function extend(key, at)
  -- only ever push the key's expiry later: it is the max over the family's records
  if redis.call('PEXPIRETIME', key) < at then redis.call('PEXPIREAT', key, at) end
end
local function record_revoked(window, member, now, ms)
  -- Into the window of revoked sessions first (a refused write fails the whole script before
  -- anything is deleted); only where the window shares the slot (not on a Cluster).
  if window == nil then return end
  redis.call('ZADD', window, 'GT', now, member)
  redis.call('ZREMRANGEBYSCORE', window, '-inf', '(' .. (now - ms))
  redis.call('PEXPIRE', window, ms)
end
local function is_live(r, now)
  if r.e < now then return false end
  return r.n == nil or (r.l ~= nil and now < r.l)
end
"""

_SCRIPTS = {
    # KEYS: family, user set. ARGV: token hash, record JSON, expires_at_ms, family.
    # The only script with two keys (two slots on a Cluster, where it would need splitting
    # into the family write and a separate SADD; the rotation path is already Cluster-safe).
    "create": _LUA_PRELUDE
    + """
local at = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
extend(KEYS[1], at)
redis.call('SADD', KEYS[2], ARGV[4])
extend(KEYS[2], at)
return 1
""",
    # Cluster: create's two halves, one slot each. KEYS: user set. ARGV: family, expires_at_ms.
    "index": _LUA_PRELUDE
    + """
redis.call('SADD', KEYS[1], ARGV[1])
extend(KEYS[1], tonumber(ARGV[2]))
return 1
""",
    # KEYS: family. ARGV: token hash, record JSON, expires_at_ms.
    "create_family": _LUA_PRELUDE
    + """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
extend(KEYS[1], tonumber(ARGV[3]))
return 1
""",
    # KEYS: family [, window of revoked sessions]. ARGV: old hash, new hash, new record JSON,
    # new expires, now, grace, invalidation channel, family, session window ms.
    # Returns {"missing"} | {"reused"} | {"rotated"} | {"grace", record JSON}.
    "rotate": _LUA_PRELUDE
    + """
local key = KEYS[1]
local now = tonumber(ARGV[5])
local raw = redis.call('HGET', key, ARGV[1])
if not raw then return {'missing'} end
local old = cjson.decode(raw)
if old.e < now then return {'missing'} end
if old.n ~= nil then
  if old.l ~= nil and now < old.l and old.n == ARGV[2] then
    local cur_raw = redis.call('HGET', key, old.n)
    if not cur_raw then return {'missing'} end
    local cur = cjson.decode(cur_raw)
    if not is_live(cur, now) or cur.n ~= nil then return {'missing'} end
    cur.e = tonumber(ARGV[4])
    local encoded = cjson.encode(cur)
    redis.call('HSET', key, old.n, encoded)
    extend(key, cur.e)
    return {'grace', encoded}
  end
  record_revoked(KEYS[2], 's:' .. ARGV[8], now, tonumber(ARGV[9]))
  redis.call('DEL', key)
  redis.call('PUBLISH', ARGV[7], ARGV[8])
  return {'reused'}
end
old.n = ARGV[2]
old.l = now + tonumber(ARGV[6])
redis.call('HSET', key, ARGV[1], cjson.encode(old), ARGV[2], ARGV[3])
extend(key, math.max(old.e, tonumber(ARGV[4])))
return {'rotated'}
""",
    # KEYS: family [, window of revoked sessions]. ARGV: token hash, invalidation channel,
    # family, now, session window ms. Returns the record JSON (or nil) and drops the family.
    "revoke": _LUA_PRELUDE
    + """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if raw then
  record_revoked(KEYS[2], 's:' .. ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]))
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], ARGV[3])
end
return raw
""",
}


@dataclass(frozen=True, slots=True)
class _Script:
    """Run one of ``_SCRIPTS``: one round trip, atomic."""

    name: str
    keys: tuple[str, ...]
    args: tuple[str | int | bytes, ...]


@dataclass(frozen=True, slots=True)
class _Commands:
    """Send these commands in one round trip (a non-transactional pipeline); replies as a list."""

    commands: tuple[tuple[str | int | bytes, ...], ...]


_Step = _Script | _Commands
_Op = Generator[_Step, Any, T]


def _unavailable(exc: BaseException) -> StoreUnavailable:
    # Anything raised while talking to Redis means the question went unanswered: not only
    # RedisError (refused, timeout, LOADING, READONLY, NOSCRIPT after a retry…) but also what
    # redis-py itself trips over on a broken or impostor server. Cancellation is a
    # BaseException and passes through. The class name only: redis messages may carry host
    # names or command arguments.
    return StoreUnavailable("redis", f"Redis failed: {type(exc).__name__}")


def _resume(op: _Op[Any], reply: Any) -> _Step:
    """Hand ``reply`` to ``op``; a reply it cannot make sense of is the server's fault."""
    try:
        return op.send(reply)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        # Not the shape our commands answer with (a proxy, a wrong server…): fail closed.
        raise StoreUnavailable("redis", "unexpected reply") from exc


def _check_ms(*values: int) -> None:
    for value in values:
        if not isinstance(value, int) or not 0 <= value < _MAX_MS:
            raise ValueError(f"timestamp out of range for the Redis store: {value!r}")


def _encode(record: SessionRecord) -> bytes:
    _check_ms(record.expires_at_ms, record.created_at_ms)
    if record.live_until_ms is not None:
        _check_ms(record.live_until_ms)
    data: dict[str, Any] = {"u": record.user_id, "e": record.expires_at_ms}
    if record.created_at_ms:
        data["c"] = record.created_at_ms
    for name, value in (
        ("ip", record.ip),
        ("ua", record.user_agent),
        ("o", record.origin),
        ("n", record.next_hash),
        ("l", record.live_until_ms),
    ):
        if value is not None:
            data[name] = value
    # Raw UTF-8 (not \\u escapes) because Lua's cjson rejects escaped lone surrogates; a
    # string that is not valid Unicode fails here, as a ValueError, before reaching Redis.
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _int(value: Any) -> int:
    # Lua's cjson writes numbers back as it read them (integral, < 10**14); anything else
    # means the record was not written by us, and we refuse to interpret it.
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise TypeError(f"not an integer: {value!r}")
    return int(value)


def _decode(raw: bytes | str, token_hash: str) -> SessionRecord:
    try:
        data = json.loads(raw)
        live_until = data.get("l")
        return SessionRecord(
            token_hash=token_hash,
            family=family_of(token_hash),
            user_id=str(data["u"]),
            expires_at_ms=_int(data["e"]),
            created_at_ms=_int(data.get("c", 0)),
            ip=data.get("ip"),
            user_agent=data.get("ua"),
            origin=data.get("o"),
            next_hash=data.get("n"),
            live_until_ms=None if live_until is None else _int(live_until),
        )
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        # A record we cannot read is a record we cannot check: fail closed.
        raise StoreUnavailable("redis", "unreadable session record") from exc


def _family(token_hash: str) -> str | None:
    """The family of a well-formed key (``<family>.<digest>``), else ``None`` (no such token)."""
    family, dot, _ = token_hash.partition(".")
    return family if dot and _FAMILY.match(family) else None


class _RedisSessions:
    """Key layout, scripts and reply parsing, shared by both drivers (no I/O here)."""

    io_bound = False

    def __init__(self, *, prefix: str = DEFAULT_PREFIX, cluster: bool = False) -> None:
        self.prefix = prefix
        #: A Redis Cluster: every script must keep to one hash slot.
        self.cluster = cluster
        #: The pub/sub channel on which revocations are announced (families, comma-separated).
        self.channel = invalidation_channel(prefix)
        #: Called in-process with the families this store revoked (the local session cache
        #: must not wait for its own announcement to come back).
        self.listeners: list[Callable[[list[str]], None]] = []
        #: How long a user's revocation is kept in ``<prefix>rv``: the longest token
        #: lifetime plus leeway (the app sets its own, see
        #: :func:`~tokenguard.stores.select.set_revocation_windows`; this default covers
        #: Directus's with the largest leeway allowed).
        self.revocation_window_ms = DEFAULT_REVOCATION_WINDOW_MS
        #: How long a session's revocation is kept in ``<prefix>rvs``: the access-token
        #: lifetime plus leeway (a session-mode token's session is checked on every request).
        self.session_revocation_window_ms = DEFAULT_SESSION_REVOCATION_WINDOW_MS

    @property
    def revocations_key(self) -> str:
        """The sorted set holding the current window of revoked users (and, written by
        earlier versions, sessions)."""
        return f"{self.prefix}rv"

    @property
    def session_revocations_key(self) -> str:
        """The sorted set holding the current window of revoked sessions."""
        return f"{self.prefix}rvs"

    def _window_commands(
        self, members: list[tuple[str, int]]
    ) -> tuple[tuple[str | int | bytes, ...], ...]:
        # Recorded in the window (then announced by the caller): a process that subscribes
        # after an announcement it missed finds the entry when it catches up. Sessions and
        # users each in their own set, pruned to their own window.
        newest = max(at for _, at in members)
        commands: list[tuple[str | int | bytes, ...]] = []
        for key, window, kind in (
            (self.session_revocations_key, self.session_revocation_window_ms, True),
            (self.revocations_key, self.revocation_window_ms, False),
        ):
            pairs: list[str | int] = []
            for member, at in members:
                if member.startswith("s:") is kind:
                    pairs += [at, member]
            if pairs:
                commands += [
                    ("ZADD", key, "GT", *pairs),
                    ("ZREMRANGEBYSCORE", key, "-inf", f"({newest - window}"),
                    ("PEXPIRE", key, window),
                ]
        return tuple(commands)

    def _with_window(self, key: str) -> tuple[str, ...]:
        # The window of revoked sessions joins a script's keys unless it lives in another
        # slot (a Cluster: then _record_families writes it after the script).
        return (key,) if self.cluster else (key, self.session_revocations_key)

    def _record_families(self, families: list[str]) -> _Op[None]:
        # On a Cluster, after the script that revoked them (which announced them already):
        # into the window, then announced again, so that no process catching up between the
        # two can miss them (an announcement twice over revokes nothing more).
        now_ms = int(time.time() * 1000)
        yield _Commands(
            (
                *self._window_commands([(f"s:{f}", now_ms) for f in families]),
                ("PUBLISH", self.channel, ",".join(families)),
            )
        )

    def _record_revocations(self, members: list[tuple[str, int]], message: str) -> _Op[None]:
        yield _Commands((*self._window_commands(members), ("PUBLISH", self.channel, message)))

    def _revocation_scores(
        self, sid: str | None, user: str | None
    ) -> _Op[tuple[int | None, int | None]]:
        session = f"s:{sid or ''}"
        # Both sets in one round trip; ``rv`` is asked for the session too, for the members
        # written there before ``rvs`` existed (still within their window after an upgrade).
        new, old = yield _Commands(
            (
                ("ZSCORE", self.session_revocations_key, session),
                ("ZMSCORE", self.revocations_key, session, f"u:{user or ''}"),
            )
        )
        found = [int(float(v)) for v in (new, old[0]) if v is not None]
        user_ms = None if old[1] is None else int(float(old[1]))
        return (max(found) if found else None), user_ms

    def _announce(self, families: list[str]) -> None:
        for listener in self.listeners:
            try:
                listener(families)
            except Exception as exc:  # a listener's fault is not the store's
                _log.error("revocation listener failed: %s", type(exc).__name__)

    def family_key(self, family: str) -> str:
        """The HASH holding one family's records."""
        return f"{self.prefix}s:{{{family}}}"

    def user_key(self, user_id: str) -> str:
        """The SET of one user's families."""
        return f"{self.prefix}u:{user_id}"

    def _create(self, record: SessionRecord) -> _Op[None]:
        family = _family(record.token_hash)
        if family is None or family != record.family:
            raise ValueError("record.family must be the family part of record.token_hash")
        encoded = _encode(record)
        if self.cluster:
            yield _Script("index", (self.user_key(record.user_id),), (family, record.expires_at_ms))
            yield _Script(
                "create_family",
                (self.family_key(family),),
                (record.token_hash, encoded, record.expires_at_ms),
            )
            return
        yield _Script(
            "create",
            (self.family_key(family), self.user_key(record.user_id)),
            (record.token_hash, encoded, record.expires_at_ms, family),
        )

    def _get(self, token_hash: str, now_ms: int) -> _Op[SessionRecord | None]:
        family = _family(token_hash)
        if family is None:
            return None
        (raw,) = yield _Commands((("HGET", self.family_key(family), token_hash),))
        if raw is None:
            return None
        record = _decode(raw, token_hash)
        return record if record.is_live(now_ms) else None

    def _rotate(
        self, token_hash: str, new: SessionRecord, now_ms: int, grace_ms: int
    ) -> _Op[RotateOutcome]:
        family = _family(token_hash)
        if family is None:
            return RotateOutcome("missing")
        if family_of(new.token_hash) != family:
            raise ValueError("a rotated token must keep its family prefix")
        _check_ms(now_ms, now_ms + grace_ms)
        reply = yield _Script(
            "rotate",
            self._with_window(self.family_key(family)),
            (
                token_hash,
                new.token_hash,
                _encode(new),
                new.expires_at_ms,
                now_ms,
                grace_ms,
                self.channel,
                family,
                self.session_revocation_window_ms,
            ),
        )
        status = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
        if status == "rotated":
            return RotateOutcome("rotated", replace(new, family=family))
        if status == "grace":
            return RotateOutcome("grace", _decode(reply[1], new.token_hash))
        if status == "reused":
            self._announce([family])
            if self.cluster:
                yield from self._record_families([family])
        if status in ("reused", "missing"):
            return RotateOutcome(status)  # type: ignore[arg-type]
        raise StoreUnavailable("redis", "unexpected rotation reply")

    def _revoke(self, token_hash: str) -> _Op[SessionRecord | None]:
        family = _family(token_hash)
        if family is None:
            return None
        raw = yield _Script(
            "revoke",
            self._with_window(self.family_key(family)),
            (
                token_hash,
                self.channel,
                family,
                int(time.time() * 1000),
                self.session_revocation_window_ms,
            ),
        )
        if raw is None:
            return None
        self._announce([family])
        if self.cluster:
            yield from self._record_families([family])
        return _decode(raw, token_hash)

    def _revoke_user(self, user_id: str, except_family: str | None) -> _Op[int]:
        user_key = self.user_key(user_id)
        (members,) = yield _Commands((("SMEMBERS", user_key),))
        names = {m.decode() if isinstance(m, bytes) else str(m) for m in members}
        # Only names we could have written may become key names (see _FAMILY).
        families = sorted(f for f in names - {except_family} if _FAMILY.match(f))
        if not families:
            return 0
        return (yield from self._drop_families(user_key, families))

    def _drop_families(self, user_key: str, families: list[str]) -> _Op[int]:
        """Delete these families of one user, record and announce their revocation; how
        many existed."""
        # Family keys may sit in other Cluster slots than the user's set: one DEL each.
        now_ms = int(time.time() * 1000)
        window = self._window_commands([(f"s:{f}", now_ms) for f in families])
        replies = yield _Commands(
            (
                *(("DEL", self.family_key(f)) for f in families),
                ("SREM", user_key, *families),
                *window,
                ("PUBLISH", self.channel, ",".join(families)),
            )
        )
        self._announce(families)
        return sum(int(r) for r in replies[: len(families)])

    def _sessions(self, user_id: str, now_ms: int) -> _Op[list[SessionInfo]]:
        (members,) = yield _Commands((("SMEMBERS", self.user_key(user_id)),))
        names = {m.decode() if isinstance(m, bytes) else str(m) for m in members}
        families = sorted(f for f in names if _FAMILY.match(f))
        if not families:
            return []
        # The user's set keeps a family until revoke_user: some may be gone (logged out,
        # expired); an empty HGETALL says so.
        replies = yield _Commands(tuple(("HGETALL", self.family_key(f)) for f in families))
        records: list[SessionRecord] = []
        for family, fields in zip(families, replies, strict=True):
            for raw_hash, raw in fields.items():
                token_hash = raw_hash.decode() if isinstance(raw_hash, bytes) else str(raw_hash)
                if _family(token_hash) == family:
                    records.append(_decode(raw, token_hash))
        return summarize_sessions(records, user_id, now_ms)

    def _revoke_session(self, user_id: str, family: str) -> _Op[bool]:
        if not _FAMILY.match(family):
            return False
        user_key = self.user_key(user_id)
        # The user's set names only families that user created: membership is ownership.
        (member,) = yield _Commands((("SISMEMBER", user_key, family),))
        if not int(member):
            return False
        return bool((yield from self._drop_families(user_key, [family])))


def invalidation_channel(prefix: str = DEFAULT_PREFIX) -> str:
    """The pub/sub channel on which the store announces revoked families."""
    return f"{prefix}inv"


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """Where a ``REDIS`` URL points: one server, a Sentinel-watched master, or a Cluster."""

    kind: str  # "single" | "sentinel" | "cluster"
    url: str
    nodes: tuple[tuple[str, int], ...] = ()
    service: str | None = None
    db: int = 0
    tls: bool = False
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None

    def __repr__(self) -> str:  # never the password
        return f"RedisTarget(kind={self.kind!r}, nodes={self.nodes!r}, service={self.service!r})"


_MULTI_SCHEMES = {
    "redis+sentinel": ("sentinel", False),
    "rediss+sentinel": ("sentinel", True),
    "redis+cluster": ("cluster", False),
    "rediss+cluster": ("cluster", True),
}


def parse_redis_url(url: str) -> RedisTarget:
    """Read ``redis://``, ``rediss://``, ``unix://`` (one server), ``redis+sentinel://``
    and ``redis+cluster://`` (several hosts, comma-separated) URLs."""
    from urllib.parse import parse_qs, unquote

    scheme, sep, rest = url.partition("://")
    kind_tls = _MULTI_SCHEMES.get(scheme.lower()) if sep else None
    if kind_tls is None:
        return RedisTarget("single", url)
    kind, tls = kind_tls
    rest, _, query_text = rest.partition("?")
    netloc, _, path_text = rest.partition("/")
    userinfo, _, hosts = netloc.rpartition("@")
    username = password = None
    if userinfo:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    nodes: list[tuple[str, int]] = []
    for host in hosts.split(","):
        name, colon, port = host.rpartition(":")
        if not colon:
            name, port = host, "26379" if kind == "sentinel" else "6379"
        try:
            nodes.append((name.strip("[]"), int(port)))
        except ValueError:
            raise ValueError(f"bad host in the Redis URL: {host!r}") from None
    if not nodes or not all(name for name, _ in nodes):
        raise ValueError("the Redis URL names no host")
    path = [p for p in path_text.split("/") if p]
    service: str | None = None
    db = 0
    if kind == "sentinel":
        if not path:
            raise ValueError("a redis+sentinel:// URL needs the service name: /<service>[/<db>]")
        service = unquote(path[0])
        db = int(path[1]) if len(path) > 1 else 0
    query = parse_qs(query_text)
    sentinel_password = query.get("sentinel_password", [None])[0]
    return RedisTarget(
        kind, url, tuple(nodes), service, db, tls, username, password, sentinel_password
    )


def _auth(target: RedisTarget) -> dict[str, Any]:
    auth: dict[str, Any] = {}
    if target.username:
        auth["username"] = target.username
    if target.password is not None:
        auth["password"] = target.password
    if target.tls:
        auth["ssl"] = True
    return auth


@dataclass(frozen=True, slots=True)
class _Flavour:
    """redis-py's classes for one flavour of client, sync or async: what differs between
    the two, so that making a client and a store is written once (``Any``: parts of
    redis-py are untyped)."""

    redis: Any
    cluster: Any
    cluster_node: Any
    sentinel: Any
    retry: Any


_SYNC = _Flavour(
    redis=redis.Redis,
    cluster=redis.cluster.RedisCluster,
    cluster_node=redis.cluster.ClusterNode,
    sentinel=redis.sentinel.Sentinel,
    retry=redis.retry.Retry,
)
_ASYNC = _Flavour(
    redis=redis.asyncio.Redis,
    cluster=redis.asyncio.cluster.RedisCluster,
    cluster_node=redis.asyncio.cluster.ClusterNode,
    sentinel=redis.asyncio.sentinel.Sentinel,
    retry=redis.asyncio.retry.Retry,
)


def _client(flavour: _Flavour, url: str, opts: dict[str, Any]) -> tuple[Any, bool]:
    target = parse_redis_url(url)
    if target.kind == "single":
        return flavour.redis.from_url(url, **opts), False
    if target.kind == "cluster":
        nodes = [flavour.cluster_node(host, port) for host, port in target.nodes]
        return flavour.cluster(startup_nodes=nodes, **opts, **_auth(target)), True
    sentinel = flavour.sentinel(
        list(target.nodes), sentinel_kwargs=_sentinel_kwargs(target, opts), **_auth(target)
    )
    return sentinel.master_for(target.service, db=target.db, **opts), False


def sync_client(url: str, **opts: Any) -> tuple[Any, bool]:
    """A synchronous client for ``url`` and whether it is a Cluster client."""
    return _client(_SYNC, url, opts)


#: What a synchronous twin copies of an asyncio client's connection settings: the address,
#: the database, the credentials and TLS (never its timeouts or retries: the subscriber has
#: its own).
_TWIN_KEYS = (
    "host", "port", "path", "db", "username", "password", "client_name",
    "ssl_keyfile", "ssl_certfile", "ssl_cert_reqs", "ssl_ca_certs", "ssl_check_hostname",
)  # fmt: skip
_TWIN_OPTIONS: dict[str, Any] = {"socket_connect_timeout": 1.0, "socket_timeout": 5.0}


def _twin_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: kwargs[k] for k in _TWIN_KEYS if k in kwargs}


def sync_twin(client: Any) -> tuple[Any, Callable[[str, int], bool] | None] | None:
    """A synchronous client reaching the same server as the ``redis.asyncio`` ``client``
    (plain, Sentinel or Cluster), for a thread that cannot share an event loop's client;
    with, behind Sentinel, a master check (see :func:`master_check`). ``None`` for a client
    it cannot read."""
    if isinstance(client, redis.asyncio.cluster.RedisCluster):
        nodes = [_SYNC.cluster_node(n.host, n.port) for n in client.get_nodes()]
        creds = _twin_kwargs(dict(getattr(client, "connection_kwargs", {})))
        creds.pop("host", None), creds.pop("port", None)
        return _SYNC.cluster(startup_nodes=nodes, **creds, **_TWIN_OPTIONS), None
    if not isinstance(client, redis.asyncio.Redis):
        return None
    pool = client.connection_pool
    if isinstance(pool, redis.asyncio.sentinel.SentinelConnectionPool):
        sentinels = pool.sentinel_manager.sentinels
        where = [s.connection_pool.connection_kwargs for s in sentinels]
        addresses = [(kw["host"], kw["port"]) for kw in where]
        first = _twin_kwargs(sentinels[0].connection_pool.connection_kwargs) if sentinels else {}
        sentinel_kwargs = {k: v for k, v in first.items() if k not in ("host", "port", "db")}
        sentinel_kwargs.update(_TWIN_OPTIONS)
        sentinel = _SYNC.sentinel(addresses, sentinel_kwargs=sentinel_kwargs)
        master = sentinel.master_for(
            pool.service_name, **_twin_kwargs(pool.connection_kwargs), **_TWIN_OPTIONS
        )
        checker = _SYNC.sentinel(addresses, sentinel_kwargs=sentinel_kwargs)
        return master, _MasterCheck(checker, pool.service_name)
    classes = {
        redis.asyncio.SSLConnection: redis.SSLConnection,
        redis.asyncio.UnixDomainSocketConnection: redis.UnixDomainSocketConnection,
        redis.asyncio.Connection: redis.Connection,
    }
    connection_class = classes.get(pool.connection_class)
    if connection_class is None:
        return None
    sync_pool = redis.ConnectionPool(
        connection_class=connection_class,
        **_twin_kwargs(pool.connection_kwargs),
        **_TWIN_OPTIONS,
        health_check_interval=2,
    )
    return redis.Redis(connection_pool=sync_pool), None


def close_client(client: Any) -> None:
    """Close a client made by :func:`sync_client`: its pool and, behind Sentinel, the
    connections to the Sentinels too (idempotent)."""
    client.close()
    manager = getattr(getattr(client, "connection_pool", None), "sentinel_manager", None)
    for sentinel in getattr(manager, "sentinels", ()):
        sentinel.close()


async def aclose_client(client: Any) -> None:
    """Close a client made by :func:`async_client` (see :func:`close_client`)."""
    await client.aclose()
    manager = getattr(getattr(client, "connection_pool", None), "sentinel_manager", None)
    for sentinel in getattr(manager, "sentinels", ()):
        await sentinel.aclose()


def master_check(url: str, **opts: Any) -> Callable[[str, int], bool] | None:
    """For a Sentinel URL, a check that ``(host, port)`` is the master the Sentinels name
    now (a connection made during a failover may sit on the demoted master, which keeps
    answering); ``None`` for other URLs, where there is nothing to check."""
    target = parse_redis_url(url)
    if target.kind != "sentinel":
        return None
    sentinel = _SYNC.sentinel(list(target.nodes), sentinel_kwargs=_sentinel_kwargs(target, opts))
    return _MasterCheck(sentinel, target.service)


class _MasterCheck:
    """``(host, port) -> bool``: whether the Sentinels name that server the master now;
    :meth:`close` releases the connections to the Sentinels."""

    def __init__(self, sentinel: Any, service: str | None) -> None:
        self.sentinel = sentinel
        self.service = service

    def __call__(self, host: str, port: int) -> bool:
        master_host, master_port = self.sentinel.discover_master(self.service)
        return bool(master_port == port and master_host == host)

    def close(self) -> None:
        for client in self.sentinel.sentinels:
            client.close()


def async_client(url: str, **opts: Any) -> tuple[Any, bool]:
    """A ``redis.asyncio`` client for ``url`` and whether it is a Cluster client."""
    return _client(_ASYNC, url, opts)


def _sentinel_kwargs(target: RedisTarget, opts: dict[str, Any]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        name: opts[name] for name in ("socket_connect_timeout", "socket_timeout") if name in opts
    }
    if target.sentinel_password is not None:
        kwargs["password"] = target.sentinel_password
    if target.tls:
        kwargs["ssl"] = True
    return kwargs


def client_options(
    connect_timeout: float, timeout: float, options: dict[str, Any], retry_cls: type[Any]
) -> dict[str, Any]:
    """Client keyword arguments with these timeouts and no retries (``retry_cls`` is the
    flavour's ``Retry``), ``options`` on top; shared by every store made from a URL."""
    # No automatic retries: a rotation retried after a lost reply would look like token
    # reuse and revoke the family. Stale pooled connections are replaced before use anyway.
    return {
        "socket_connect_timeout": connect_timeout,
        "socket_timeout": timeout,
        "retry": retry_cls(NoBackoff(), 0),
        **options,
    }


class _RedisStore(_RedisSessions, Generic[C]):
    """A store over one client: its scripts loaded, and each operation's Redis work turned
    into calls of that client, a flow (:mod:`tokenguard.flow`) that the sync class drives
    with :func:`~tokenguard.flow.run_sync` and the async one with
    :func:`~tokenguard.flow.run_async`."""

    _flavour: ClassVar[_Flavour]

    def __init__(
        self, client: C, *, prefix: str = DEFAULT_PREFIX, cluster: bool | None = None
    ) -> None:
        if cluster is None:
            cluster = isinstance(client, self._flavour.cluster)
        super().__init__(prefix=prefix, cluster=cluster)
        self.client = client
        either: Any = client  # both flavours have these methods; C names neither
        self._scripts = {name: either.register_script(src) for name, src in _SCRIPTS.items()}
        self._execute: Callable[..., Any] = either.execute_command

    @classmethod
    def from_url(
        cls: type[S],
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        connect_timeout: float = 0.5,
        timeout: float = 1.0,
        **options: Any,
    ) -> S:
        """A store on ``url`` (``redis://``, ``rediss://``, ``unix://``,
        ``redis+sentinel://``, ``redis+cluster://``) with short timeouts."""
        opts = client_options(connect_timeout, timeout, options, cls._flavour.retry)
        client, cluster = _client(cls._flavour, url, opts)
        return cls(client, prefix=prefix, cluster=cluster)

    def _flow(self, op: _Op[T]) -> Flow[T]:
        """``op``'s Redis work as calls of the client; a failed call is the store's
        failure (:func:`_unavailable`), a reply ``op`` cannot read too (:func:`_resume`)."""
        try:
            step = op.send(None)  # argument errors (ValueError) surface here, before any I/O
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        while True:
            try:
                if isinstance(step, _Script):
                    script = self._scripts[step.name]
                    reply = yield Call(script, kwargs={"keys": step.keys, "args": step.args})
                elif len(step.commands) == 1:
                    reply = [(yield Call(self._execute, step.commands[0]))]
                else:
                    reply = yield Call(self._pipeline, (step.commands,))
            except Exception as exc:  # see _unavailable
                raise _unavailable(exc) from exc
            try:
                step = _resume(op, reply)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]

    def _pipeline(self, commands: tuple[tuple[str | int | bytes, ...], ...]) -> Any:
        """Send ``commands`` in one round trip: their replies (async: an awaitable of them)."""
        either: Any = self.client
        pipe = either.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        return pipe.execute()


class RedisSessionStore(_RedisStore[redis.Redis]):
    """:class:`~tokenguard.stores.base.SessionStore` over a synchronous redis-py client."""

    #: It blocks on the network: under ASGI the core runs it in a worker thread.
    io_bound = True
    _flavour = _SYNC

    def _run(self, op: _Op[T]) -> T:
        return run_sync(self._flow(op))

    def create(self, record: SessionRecord) -> None:
        return self._run(self._create(record))

    def get(self, token_hash: str, now_ms: int) -> SessionRecord | None:
        return self._run(self._get(token_hash, now_ms))

    def rotate(
        self, token_hash: str, new: SessionRecord, *, now_ms: int, grace_ms: int
    ) -> RotateOutcome:
        return self._run(self._rotate(token_hash, new, now_ms, grace_ms))

    def revoke(self, token_hash: str) -> SessionRecord | None:
        return self._run(self._revoke(token_hash))

    def revoke_user(self, user_id: str, *, except_family: str | None = None) -> int:
        return self._run(self._revoke_user(user_id, except_family))

    def sessions(self, user_id: str, now_ms: int) -> list[SessionInfo]:
        return self._run(self._sessions(user_id, now_ms))

    def revoke_session(self, user_id: str, family: str) -> bool:
        return self._run(self._revoke_session(user_id, family))

    def record_revocations(self, members: list[tuple[str, int]], message: str) -> None:
        """Put ``members`` (name, ms) in the window of revocations, then publish ``message``
        (made by :func:`tokenguard.guard.revocation.encode_entries`) on the channel."""
        if members:
            self._run(self._record_revocations(members, message))

    def revocation_scores(self, sid: str | None, user: str | None) -> tuple[int | None, int | None]:
        """When session ``sid`` was revoked and ``user``'s not-before time, in ms (``None``
        for either when the window holds none)."""
        return self._run(self._revocation_scores(sid, user))

    def close(self) -> None:
        """Close the client's connections (idempotent; a later call reconnects)."""
        close_client(self.client)


class AsyncRedisSessionStore(_RedisStore[redis.asyncio.Redis]):
    """:class:`~tokenguard.stores.base.AsyncSessionStore` over ``redis.asyncio``."""

    _flavour = _ASYNC

    async def _run(self, op: _Op[T]) -> T:
        return await run_async(self._flow(op))

    async def create(self, record: SessionRecord) -> None:
        return await self._run(self._create(record))

    async def get(self, token_hash: str, now_ms: int) -> SessionRecord | None:
        return await self._run(self._get(token_hash, now_ms))

    async def rotate(
        self, token_hash: str, new: SessionRecord, *, now_ms: int, grace_ms: int
    ) -> RotateOutcome:
        return await self._run(self._rotate(token_hash, new, now_ms, grace_ms))

    async def revoke(self, token_hash: str) -> SessionRecord | None:
        return await self._run(self._revoke(token_hash))

    async def revoke_user(self, user_id: str, *, except_family: str | None = None) -> int:
        return await self._run(self._revoke_user(user_id, except_family))

    async def sessions(self, user_id: str, now_ms: int) -> list[SessionInfo]:
        return await self._run(self._sessions(user_id, now_ms))

    async def revoke_session(self, user_id: str, family: str) -> bool:
        return await self._run(self._revoke_session(user_id, family))

    async def record_revocations(self, members: list[tuple[str, int]], message: str) -> None:
        """See :meth:`RedisSessionStore.record_revocations`."""
        if members:
            await self._run(self._record_revocations(members, message))

    async def revocation_scores(
        self, sid: str | None, user: str | None
    ) -> tuple[int | None, int | None]:
        """See :meth:`RedisSessionStore.revocation_scores`."""
        return await self._run(self._revocation_scores(sid, user))

    async def aclose(self) -> None:
        """Close the client's connections (idempotent; a later call reconnects)."""
        await aclose_client(self.client)
