"""Many refreshes of one token at the same moment: threads (every backend) and processes (SQLite)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from tokenguard.stores.base import RotateOutcome, SessionRecord
from tokenguard.stores.sqlite import SQLiteSessionStore

from .conftest import new_token, record

HOUR = 3_600_000
THREADS = 16


def rotate_at_once(store: Any, calls: list[tuple[str, SessionRecord, int, int]]) -> list[Any]:
    barrier = threading.Barrier(len(calls))

    def one(call: tuple[str, SessionRecord, int, int]) -> RotateOutcome:
        old, new, now, grace = call
        barrier.wait()
        return store.rotate(old, new, now_ms=now, grace_ms=grace)

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(one, calls))


def test_without_grace_one_refresh_wins_and_the_race_revokes_the_family(
    sessions: Any, now: int
) -> None:
    for _round in range(3):
        old = record(new_token(), expires_at_ms=now + HOUR)
        sessions.create(old)
        # every racing client would mint its own successor
        successors = [
            record(new_token(old.family), expires_at_ms=now + HOUR) for _ in range(THREADS)
        ]
        outcomes = rotate_at_once(sessions, [(old.token_hash, s, now, 0) for s in successors])
        statuses = Counter(o.status for o in outcomes)
        # the first wins, the second presents a rotated-away token (reuse: the family goes),
        # everyone after that finds nothing
        assert statuses == {"rotated": 1, "reused": 1, "missing": THREADS - 2}
        winner = next(o.record for o in outcomes if o.status == "rotated")
        assert sessions.get(winner.token_hash, now) is None
        assert sessions.get(old.token_hash, now) is None


def test_with_grace_every_refresh_converges_on_one_token(sessions: Any, now: int) -> None:
    for _round in range(3):
        old = record(new_token(), expires_at_ms=now + HOUR)
        sessions.create(old)
        nxt = record(new_token(old.family), expires_at_ms=now + HOUR)
        outcomes = rotate_at_once(sessions, [(old.token_hash, nxt, now, 10_000)] * THREADS)
        statuses = Counter(o.status for o in outcomes)
        assert statuses == {"rotated": 1, "grace": THREADS - 1}
        assert {o.record for o in outcomes} == {replace(nxt, family=old.family)}
        assert sessions.get(nxt.token_hash, now) == replace(nxt, family=old.family)


def test_parallel_logins_and_refreshes_of_different_families(sessions: Any, now: int) -> None:
    olds = [record(new_token(), user_id="u", expires_at_ms=now + HOUR) for _ in range(THREADS)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(sessions.create, olds))
    nexts = [record(new_token(o.family), user_id="u", expires_at_ms=now + HOUR) for o in olds]
    outcomes = rotate_at_once(sessions, [(o.token_hash, n, now, 0) for o, n in zip(olds, nexts)])
    assert [o.status for o in outcomes] == ["rotated"] * THREADS
    assert sessions.revoke_user("u") == THREADS


_WORKER = """
import json, sys, time
from pathlib import Path
from tokenguard.stores.base import SessionRecord
from tokenguard.stores.sqlite import SQLiteSessionStore

db, start_file, old, new_hash, now, grace = sys.argv[1:7]
store = SQLiteSessionStore(db)
store.get(old, int(now))  # open the connection before the start signal
new = SessionRecord(new_hash, "x", "user-1", int(now) + 3_600_000)
deadline = time.monotonic() + 20
while not Path(start_file).exists() and time.monotonic() < deadline:
    time.sleep(0.001)
outcome = store.rotate(old, new, now_ms=int(now), grace_ms=int(grace))
print(json.dumps(outcome.status))
"""


def rotate_in_processes(
    db: Path, tmp: Path, old: str, new_hashes: list[str], now: int, grace: int
) -> Counter[str]:
    start = tmp / f"start-{old[:8]}-{grace}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(db), str(start), old, h, str(now), str(grace)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for h in new_hashes
    ]
    time.sleep(0.5)  # let them all reach the start line (correctness does not depend on it)
    start.touch()
    statuses: Counter[str] = Counter()
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        statuses[json.loads(out)] += 1
    return statuses


def test_sqlite_rotation_is_atomic_across_processes(tmp_path: Path, now: int) -> None:
    db = tmp_path / "shared.db"
    store = SQLiteSessionStore(db)
    processes = 4

    old = record(new_token(), expires_at_ms=now + HOUR)
    store.create(old)
    successors = [record(new_token(old.family), expires_at_ms=now + HOUR) for _ in range(processes)]
    statuses = rotate_in_processes(
        db, tmp_path, old.token_hash, [s.token_hash for s in successors], now, 0
    )
    assert statuses == {"rotated": 1, "reused": 1, "missing": processes - 2}
    assert all(store.get(s.token_hash, now) is None for s in successors)

    old = record(new_token(), expires_at_ms=now + HOUR)
    store.create(old)
    nxt = record(new_token(old.family), expires_at_ms=now + HOUR)
    statuses = rotate_in_processes(
        db, tmp_path, old.token_hash, [nxt.token_hash] * processes, now, 10_000
    )
    assert statuses == {"rotated": 1, "grace": processes - 1}
    assert store.get(nxt.token_hash, now) is not None
    store.close()
