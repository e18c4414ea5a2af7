"""100 concurrent refreshes of one token from several processes (each with its own
connection pool; two on the sync driver with threads, two on the async one with coroutines)
on a real PostgreSQL server: exactly one wins."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tokenguard.stores.postgres import PgSessionStore

from .conftest import new_token, real_now_ms, record

pytestmark = pytest.mark.pg

HOUR = 3_600_000
PROCESSES = 4
THREADS = 25  # refreshes per process: 100 in all

_WORKER = """
import asyncio, json, sys, threading, time
from pathlib import Path
from tokenguard.stores.base import SessionRecord
from tokenguard.stores.postgres import (
    AsyncPgDatabase, AsyncPgSessionStore, PgDatabase, PgSessionStore,
)

flavour, conninfo, start_file, old, now, grace = sys.argv[1:7]
new_hashes = sys.argv[7:]
now, grace = int(now), int(grace)


def wait_for_start():
    deadline = time.monotonic() + 30
    while not Path(start_file).exists() and time.monotonic() < deadline:
        time.sleep(0.001)


def successor(new_hash):
    return SessionRecord(new_hash, "x", "user-1", now + 3_600_000)


def threads():
    store = PgSessionStore(PgDatabase(conninfo, max_size=len(new_hashes), timeout=30))
    store.get(old, now)  # open the pool and check the schema before the start signal
    barrier = threading.Barrier(len(new_hashes))
    statuses = []

    def one(new_hash):
        barrier.wait()
        statuses.append(store.rotate(old, successor(new_hash), now_ms=now, grace_ms=grace).status)

    workers = [threading.Thread(target=one, args=(h,)) for h in new_hashes]
    wait_for_start()
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    store.close()
    return statuses


async def coroutines():
    store = AsyncPgSessionStore(AsyncPgDatabase(conninfo, max_size=len(new_hashes), timeout=30))
    await store.get(old, now)
    wait_for_start()
    outcomes = await asyncio.gather(
        *(store.rotate(old, successor(h), now_ms=now, grace_ms=grace) for h in new_hashes)
    )
    await store.aclose()
    return [o.status for o in outcomes]


print(json.dumps(threads() if flavour == "sync" else asyncio.run(coroutines())))
"""


def rotate_everywhere(
    conninfo: str, tmp: Path, old: str, new_hashes: list[str], now: int, grace: int
) -> Counter[str]:
    start = tmp / f"start-{old[:8]}-{grace}"
    chunks = [new_hashes[i::PROCESSES] for i in range(PROCESSES)]
    # half the processes run the sync driver (threads), half the async one (coroutines)
    procs = [
        subprocess.Popen(
            [
                sys.executable, "-c", _WORKER, "sync" if i % 2 else "async",
                conninfo, str(start), old, str(now), str(grace), *chunk,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i, chunk in enumerate(chunks)
    ]
    time.sleep(1.0)  # let them reach the start line (correctness does not depend on it)
    start.touch()
    statuses: Counter[str] = Counter()
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        statuses.update(json.loads(out))
    return statuses


def test_one_winner_among_100_refreshes_in_4_processes(pg_conninfo: str, tmp_path: Path) -> None:
    store = PgSessionStore(pg_conninfo)
    now = real_now_ms()
    total = PROCESSES * THREADS

    # json/cookie mode (no grace): one rotation, one reuse that revokes the family, and
    # every later refresh finds nothing
    old = record(new_token(), expires_at_ms=now + HOUR)
    store.create(old)
    successors = [record(new_token(old.family), expires_at_ms=now + HOUR) for _ in range(total)]
    statuses = rotate_everywhere(
        pg_conninfo, tmp_path, old.token_hash, [s.token_hash for s in successors], now, 0
    )
    assert statuses == {"rotated": 1, "reused": 1, "missing": total - 2}
    assert all(store.get(s.token_hash, now) is None for s in successors)
    assert store.get(old.token_hash, now) is None

    # session mode (grace): one rotation, and every other refresh converges on its token
    old = record(new_token(), expires_at_ms=now + HOUR)
    store.create(old)
    nxt = record(new_token(old.family), expires_at_ms=now + HOUR)
    statuses = rotate_everywhere(
        pg_conninfo, tmp_path, old.token_hash, [nxt.token_hash] * total, now, 10_000
    )
    assert statuses == {"rotated": 1, "grace": total - 1}
    assert store.get(nxt.token_hash, now) is not None
    store.close()
