"""What revocations cost: memory per process, memory in Redis, bytes on the wire.

Measured, not computed:

- **per process** (``tracemalloc``): a :class:`~tokenguard.guard.revocation.Revocations`
  registry filled with ``--entries`` revoked sessions (22-character sids), revoked users
  (UUIDs, each once) and one user revoked ``--entries`` times (the dictionary keeps one entry,
  the expiry heap one item per revocation until its window passes); each key a string of its
  own, as the subscriber decodes it. Also the time one entry takes to apply, and a request's
  check (:meth:`~tokenguard.guard.revocation.Revocations.refuses`) with the registry empty and
  full.
- **Redis** (a private ``redis-server``): ``used_memory`` growth of the window of revoked
  sessions (``<prefix>rvs``; users' ``<prefix>rv`` is the same structure) per member; bytes in and out per revocation (``INFO stats``
  ``total_net_input_bytes``/``total_net_output_bytes``) for the three ways a revocation reaches
  the store (a logout's script; ``revoke_session``/``revoke_user``'s record-and-publish), with
  no subscriber and with ``--subscribers`` of them (the difference is what each process
  receives); and a process's catch-up (one ``ZRANGEBYSCORE`` over the window, then applied):
  bytes and time per member.
- **the channel message** itself (``encode_entries``), which PostgreSQL's ``NOTIFY`` would
  carry too.

Then it sizes one million revocations an hour with the default TTLs.

    python -m benchmarks.revocation_memory                 # 1,000,000 entries
    python -m benchmarks.revocation_memory --entries 20000 --json mem.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import secrets
import sys
import threading
import time
import timeit
import tracemalloc
import uuid
from collections.abc import Callable
from typing import Any

from .redis_memory import USER_AGENT, private_redis
from .run import machine

_BATCH = 1000


def _sid() -> str:
    # A session family: the first 22 characters of a refresh token (token_urlsafe).
    return secrets.token_urlsafe(16)[:22]


def _uuid() -> str:
    return str(uuid.uuid4())


def registry_bytes(entries: int, kind: str, key: Callable[[int], str]) -> dict[str, Any]:
    """tracemalloc growth of a registry holding ``entries`` revocations of ``kind``."""
    from tokenguard.guard.revocation import Entry, Revocations

    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    now_ms = int(time.time() * 1000)
    rv = Revocations(86_405.0, session_window_s=905.0)
    for start in range(0, entries, _BATCH):
        # Strictly increasing times: a repeated key is a later revocation (a new heap item,
        # until outdated items outnumber the entries and the heap is rebuilt).
        batch = [
            Entry(kind, key(i), now_ms + i) for i in range(start, min(entries, start + _BATCH))
        ]  # type: ignore[arg-type]
        rv.apply(batch)
        del batch
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    table = rv.sessions if kind == "s" else rv.users
    result = {
        "entries_applied": entries,
        "keys_held": len(table),
        "heap_items": len(rv._expiry),
        "bytes": grown,
        "bytes_per_revocation": round(grown / entries, 1),
    }
    del rv
    gc.collect()
    return result


def registry_speed(entries: int) -> dict[str, Any]:
    """Applying entries, and a request's check with the registry empty and full (ns)."""
    from tokenguard.guard.revocation import Entry, Revocations

    now_ms = int(time.time() * 1000)
    rv = Revocations(86_405.0, session_window_s=905.0)
    keys = [_sid() for _ in range(entries)]
    miss_sid, user, issued = _sid(), _uuid(), time.time()
    empty_ns = (
        min(timeit.repeat(lambda: rv.refuses(miss_sid, user, issued), number=100_000, repeat=5))
        * 1e4
    )
    started = time.perf_counter()
    for start in range(0, entries, _BATCH):
        rv.apply(Entry("s", k, now_ms) for k in keys[start : start + _BATCH])
    apply_us = (time.perf_counter() - started) / entries * 1e6
    rv.apply([Entry("u", _uuid(), now_ms) for _ in range(_BATCH)])
    full_ns = (
        min(timeit.repeat(lambda: rv.refuses(miss_sid, user, issued), number=100_000, repeat=5))
        * 1e4
    )
    hit = keys[entries // 2]
    hit_ns = (
        min(timeit.repeat(lambda: rv.refuses(hit, user, issued), number=100_000, repeat=5)) * 1e4
    )
    return {
        "entries": entries,
        "apply_us_per_entry": round(apply_us, 2),
        "refuses_ns_empty": round(empty_ns, 1),
        "refuses_ns_full_not_revoked": round(full_ns, 1),
        "refuses_ns_full_revoked": round(hit_ns, 1),
    }


# -- Redis --------------------------------------------------------------------------------------


def _net(client: Any) -> tuple[int, int]:
    stats = client.info("stats")
    return int(stats["total_net_input_bytes"]), int(stats["total_net_output_bytes"])


class _Subscribers:
    """``count`` subscriber connections draining the channel in threads (as each process's
    subscriber does); :meth:`wait` until each has received ``n`` messages."""

    def __init__(self, url: str, channel: str, count: int) -> None:
        import redis

        self.clients = [redis.Redis.from_url(url) for _ in range(count)]
        self.pubsubs = [c.pubsub(ignore_subscribe_messages=True) for c in self.clients]
        self.received = [0] * count
        self._stop = threading.Event()
        self.threads = []
        for index, pubsub in enumerate(self.pubsubs):
            pubsub.subscribe(channel)
            thread = threading.Thread(target=self._drain, args=(index, pubsub), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _drain(self, index: int, pubsub: Any) -> None:
        while not self._stop.is_set():
            if pubsub.get_message(timeout=0.2) is not None:
                self.received[index] += 1

    def wait(self, n: int, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while min(self.received, default=n) < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"subscribers received {self.received} of {n}")
            time.sleep(0.05)

    def close(self) -> None:
        self._stop.set()
        for thread in self.threads:
            thread.join(5)
        for pubsub, client in zip(self.pubsubs, self.clients, strict=True):
            pubsub.close()
            client.close()


def redis_traffic(url: str, subscribers: int, n: int = 2000) -> dict[str, Any]:
    """Bytes in and out of Redis per revocation, each way, with 0 and ``subscribers``."""
    import redis

    from tokenguard.auth.refresh_tokens import RefreshTokens
    from tokenguard.auth.service import AuthService, ClientInfo
    from tokenguard.guard.revocation import Entry, encode_entries
    from tokenguard.stores.base import refresh_token_key
    from tokenguard.stores.redis import RedisSessionStore

    stats = redis.Redis.from_url(url)
    tokens = RefreshTokens(b"bench-only-key-for-refresh-tokens-0123456789")
    client_info = ClientInfo("203.0.113.7", USER_AGENT, "https://app.example.com")
    out: dict[str, Any] = {}
    for listening in (0, subscribers):
        store = RedisSessionStore(redis.Redis.from_url(url), prefix=f"traffic{listening}:")
        subs = _Subscribers(url, store.channel, listening) if listening else None
        now_ms = int(time.time() * 1000)
        made = []
        for _ in range(n):
            token = tokens.new()
            record = AuthService._record(token, _uuid(), now_ms + 86_400_000, now_ms, client_info)
            store.create(record)
            made.append(refresh_token_key(token))
        sent = 0
        for name in ("logout (the store's script)", "revoke_session", "revoke_user"):
            if subs is not None:
                subs.wait(sent)
            before = _net(stats)
            for i in range(n):
                if name.startswith("logout"):
                    store.revoke(made[i])
                else:
                    entry = Entry("s", _sid(), now_ms + i)
                    if name == "revoke_user":
                        entry = Entry("u", _uuid(), now_ms + i)
                    store.record_revocations([(entry.member, entry.at_ms)], encode_entries([entry]))
            sent += n
            if subs is not None:
                subs.wait(sent)
            after = _net(stats)
            out.setdefault(name, {})[listening] = {
                "in_per_revocation": round((after[0] - before[0]) / n, 1),
                "out_per_revocation": round((after[1] - before[1]) / n, 1),
            }
        if subs is not None:
            subs.close()
        store.close()
    stats.close()
    # INFO stats itself is answered between the two readings: a few hundred bytes over n.
    table = {}
    for name, by in out.items():
        quiet, loud = by[0], by[subscribers]
        table[name] = {
            "bytes_in_per_revocation": quiet["in_per_revocation"],
            "bytes_out_no_subscriber": quiet["out_per_revocation"],
            "bytes_out_per_subscriber": round(
                (loud["out_per_revocation"] - quiet["out_per_revocation"]) / subscribers, 1
            ),
        }
    return {"revocations_each": n, "subscribers": subscribers, "ways": table}


def redis_window(url: str, members: int) -> dict[str, Any]:
    """The window's memory per member, and a process's catch-up over it."""
    import redis

    from tokenguard.guard.revocation import Revocations, entry_from_member
    from tokenguard.stores.redis import RedisSessionStore

    client = redis.Redis.from_url(url)
    store = RedisSessionStore(client, prefix="window:")
    key = store.session_revocations_key  # where sessions go; every member made at once
    client.delete(key)
    before = int(client.info("memory")["used_memory"])
    now_ms = int(time.time() * 1000)
    for start in range(0, members, _BATCH):
        batch = [(f"s:{_sid()}", now_ms) for _ in range(start, min(members, start + _BATCH))]
        # The window's own commands (ZADD GT, prune, PEXPIRE) without a message per batch.
        store._run(store._record_revocations(batch, "!"))
    after = int(client.info("memory")["used_memory"])
    held = int(client.zcard(key))
    usage = int(client.memory_usage(key, samples=0) or 0)
    # Catch-up, as the subscriber does it (tokenguard.guard.invalidation._catch_up).
    rv = Revocations(86_405.0, session_window_s=905.0)
    net_before = _net(client)
    started = time.perf_counter()
    rows = client.zrangebyscore(key, now_ms - 86_405_000, "+inf", withscores=True)
    fetched = time.perf_counter()
    found = []
    for member, score in rows:
        entry = entry_from_member(member.decode("utf-8", "replace"), score)
        if entry is not None:
            found.append(entry)
    rv.apply(found)
    applied = time.perf_counter()
    net_after = _net(client)
    assert len(rv.sessions) == held
    del rows, found, rv
    client.delete(key)
    client.close()
    return {
        "members": held,
        "used_memory_bytes_per_member": round((after - before) / held, 1),
        "memory_usage_bytes_per_member": round(usage / held, 1),
        "catch_up_bytes_per_member": round((net_after[1] - net_before[1]) / held, 1),
        "catch_up_fetch_s": round(fetched - started, 2),
        "catch_up_apply_s": round(applied - fetched, 2),
    }


def postgres_window(members: int) -> dict[str, Any]:
    """PostgreSQL's window of revocations (a table, a row per revocation, with its indexes):
    bytes per row, and the ``NOTIFY`` payload of one revocation of each kind. Needs the
    PostgreSQL feed (``tokenguard.stores.postgres.revocation_payload``)."""
    try:
        from tokenguard.stores.postgres import revocation_payload  # type: ignore[attr-defined]
    except ImportError:
        return {"skipped": "pending: this build has no PostgreSQL revocation feed"}
    import psycopg

    from tokenguard.config import Settings
    from tokenguard.stores.postgres import pg_stores

    from .revocation import private_postgres

    now_ms = int(time.time() * 1000)
    with private_postgres() as conninfo:
        settings = Settings(
            secret=secrets.token_urlsafe(48), db_client="pg", db_connection_string=conninfo
        )
        users, sessions = pg_stores(settings, "sync")
        size_sql = "SELECT pg_total_relation_size('tokenguard_revocations')"
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute("VACUUM tokenguard_revocations")
            before = int(conn.execute(size_sql).fetchone()[0])  # type: ignore[index]
            for start in range(0, members, _BATCH):
                count = min(members, start + _BATCH) - start
                sessions.record_revocations([(f"s:{_sid()}", now_ms) for _ in range(count)])
            conn.execute("VACUUM tokenguard_revocations")
            after = int(conn.execute(size_sql).fetchone()[0])  # type: ignore[index]
            rows = int(conn.execute("SELECT count(*) FROM tokenguard_revocations").fetchone()[0])  # type: ignore[index]
        for store in (sessions, users):
            close = getattr(store, "close", None)
            if callable(close):
                close()
    return {
        "rows": rows,
        "table_and_index_bytes_per_row": round((after - before) / rows, 1),
        "notify_payload_bytes": {
            "a session": len(revocation_payload([(f"s:{_sid()}", now_ms)]).encode()),
            "a user": len(revocation_payload([(f"u:{_uuid()}", now_ms)]).encode()),
        },
    }


def messages() -> dict[str, int]:
    """Bytes of the channel messages (UTF-8), one revocation each."""
    from tokenguard.guard.revocation import Entry, encode_entries

    now_ms = int(time.time() * 1000)
    return {
        "logout (the family, as the store's script publishes it)": len(_sid()),
        "revoke_session": len(encode_entries([Entry("s", _sid(), now_ms)]).encode()),
        "revoke_user": len(encode_entries([Entry("u", _uuid(), now_ms)]).encode()),
    }


def sizing(report: dict[str, Any], per_hour: int = 1_000_000, processes: int = 8) -> dict[str, Any]:
    """One million revocations an hour, default TTLs."""
    from tokenguard.config import Settings

    s = Settings(secret=secrets.token_urlsafe(48))
    session_window_s = (s.access_token_ttl_ms + s.leeway_ms) / 1000
    user_window_s = (max(s.access_token_ttl_ms, s.session_cookie_ttl_ms) + s.leeway_ms) / 1000
    rate = per_hour / 3600
    reg = report["registry"]
    sessions_held = rate * session_window_s
    users_held = rate * user_window_s
    out: dict[str, Any] = {
        "per_hour": per_hour,
        "processes": processes,
        "session_window_s": session_window_s,
        "user_window_s": user_window_s,
        "per_second": round(rate, 1),
        "sessions_held_per_process": round(sessions_held),
        "session_mib_per_process": round(
            sessions_held * reg["sessions"]["bytes_per_revocation"] / 2**20, 1
        ),
        "users_held_per_process_if_all_distinct": round(users_held),
        "user_mib_per_process_if_all_distinct": round(
            users_held * reg["users"]["bytes_per_revocation"] / 2**20, 1
        ),
        "user_repeat_mib_per_process": round(
            users_held * reg["one user, revoked again and again"]["bytes_per_revocation"] / 2**20, 1
        ),
    }
    redis = report.get("redis")
    if redis and "window" in redis:
        per_member = redis["window"]["used_memory_bytes_per_member"]
        # Sessions (<prefix>rvs) are kept for the session window only.
        out["redis_members_held"] = round(sessions_held)
        out["redis_window_mib"] = round(sessions_held * per_member / 2**20, 1)
        out["catch_up_mib"] = round(
            sessions_held * redis["window"]["catch_up_bytes_per_member"] / 2**20, 1
        )
        session = redis["traffic"]["ways"]["revoke_session"]
        out["channel_kib_per_s_per_process"] = round(
            rate * session["bytes_out_per_subscriber"] / 1024, 1
        )
        out["redis_out_kib_per_s"] = round(
            rate * session["bytes_out_per_subscriber"] * processes / 1024, 1
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--entries", type=int, default=1_000_000, help="registry entries and Redis members"
    )
    parser.add_argument("--subscribers", type=int, default=4, help="processes listening")
    parser.add_argument("--no-redis", action="store_true", help="only the per-process figures")
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="also PostgreSQL's window (a private cluster; at most 200,000 rows)",
    )
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args(argv)
    repeated_user = _uuid()
    if args.entries < _BATCH:
        parser.error(f"--entries must be at least {_BATCH}")
    started = time.monotonic()
    report: dict[str, Any] = {
        "meta": {
            "command": " ".join(
                [
                    "python -m benchmarks.revocation_memory",
                    *(argv if argv is not None else sys.argv[1:]),
                ]
            ),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": machine(),
            "python": sys.version.split()[0],
            "load_before": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
        },
        "registry": {
            "sessions": registry_bytes(args.entries, "s", lambda i: _sid()),
            "users": registry_bytes(args.entries, "u", lambda i: _uuid()),
            "one user, revoked again and again": registry_bytes(
                args.entries, "u", lambda i: repeated_user
            ),
        },
        "speed": registry_speed(min(args.entries, 200_000)),
        "messages_bytes": messages(),
    }
    if not args.no_redis:
        try:
            with private_redis() as url:
                report["redis"] = {
                    "traffic": redis_traffic(url, args.subscribers),
                    "window": redis_window(url, args.entries),
                }
        except RuntimeError as exc:
            report["redis"] = {"skipped": str(exc)}
    if args.postgres:
        try:
            report["postgres"] = postgres_window(min(args.entries, 200_000))
        except (RuntimeError, OSError, ImportError) as exc:
            report["postgres"] = {"skipped": str(exc)}
    report["sizing"] = sizing(report)
    report["meta"]["load_after"] = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    report["meta"]["seconds"] = round(time.monotonic() - started, 1)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as out:
            out.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
