"""The benchmark command still runs end to end (its ``--quick`` mode); no time is asserted."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytest.importorskip("flask_jwt_extended")


def _run(tmp_path: Path, sections: str, *extra: str) -> dict[str, Any]:
    out = tmp_path / "bench.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--sections", sections,
         "--json", str(out), "--seed", "7", *extra],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| variant |" in proc.stdout or "### Memory" in proc.stdout
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_quick_inprocess_floor_memory_auth(tmp_path: Path) -> None:
    report = _run(tmp_path, "floor,inprocess,memory,auth")
    command = report["meta"]["command"]
    assert command.startswith("python -m benchmarks.run --quick --sections floor,inprocess")
    assert all(_positive(v) for v in report["floor"].values())
    rows = {row["variant"]: row for row in report["inprocess"]["rows"]}
    assert len(rows) == 12
    for row in rows.values():
        assert _positive(row["us_per_request"])
        assert len(row["rounds_us"]) == report["meta"]["rounds"]
    for values in report["inprocess"]["ratios"].values():
        assert len(values) == report["meta"]["rounds"]
        assert all(isinstance(v, float) and math.isfinite(v) for v in values)
    cache = report["memory"]["cache"]
    assert _positive(cache["bytes_per_entry_including_token"])
    redis_mem = report["memory"]["redis"]
    if "skipped" not in redis_mem:
        assert _positive(redis_mem["bytes_per_session"])
    auth = report["auth"]
    if "skipped" not in auth:
        ops = {(row["operation"], row["store"]) for row in auth["rows"]}
        assert {op for op, _ in ops} == {"refresh", "logout"}
        assert len(ops) == 6
        assert all(_positive(row["us"]) for row in auth["rows"])


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_quick_servers(tmp_path: Path) -> None:
    pytest.importorskip("uvicorn")
    pytest.importorskip("gunicorn")
    # Two set-ups of four keep it short; every set-up runs the same code.
    servers = _run(tmp_path, "servers", "--frames", "raw,flask")["servers"]
    rows = {row["variant"]: row for row in servers["rows"]}
    assert len(rows) == 7
    for row in rows.values():
        assert _positive(row["rps"]) and row["requests"] > 0
        assert len(row["rps_vs_bare"]) == 1
    assert set(servers["ratios"]) == {
        f"{frame}_{which}_{unit}"
        for frame, which in (("raw", "repeated"), ("raw", "new_token"), ("raw", "static"),
                             ("flask", "repeated"))
        for unit in ("rps", "cpu")
    }  # fmt: skip


def test_the_floor_middlewares_answer_like_the_bare_app() -> None:
    # benchmarks.server_instructions compares tokenguard with these two: they must do what
    # they claim (pass the request through; attach what they find), or the floor is wrong.
    import asyncio

    sys.path.insert(0, str(ROOT))
    from benchmarks import apps

    async def call(app: Any) -> tuple[list[Any], dict[str, Any]]:
        sent: list[Any] = []
        scope: dict[str, Any] = {"type": "http", "method": "GET", "path": "/", "query_string": b"",
                                 "headers": [(b"authorization", b"Bearer x")]}  # fmt: skip

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        async def send(message: Any) -> None:
            sent.append(message)

        await app(scope, receive, send)
        return sent, scope

    bare, _ = asyncio.run(call(apps.make_asgi_bare()))
    passed, _ = asyncio.run(call(apps.make_asgi_passthrough()))
    attach = apps.make_asgi_header_attach()
    attach.known[b"Bearer x"] = "user-x"
    attached, scope = asyncio.run(call(attach))
    assert bare == passed == attached
    assert bare[1]["body"] == b"ok"
    assert (scope["user"], scope["auth"], scope["state"]) == ("user-x", "user-x", {"user": "user-x"})


def test_targets_are_judged_in_the_right_direction() -> None:
    # Added-cost ratios are met below their target, throughput ratios above it.
    sys.path.insert(0, str(ROOT))
    from benchmarks.run import TARGETS, verdict

    assert verdict("flask_repeated_vs_fjwt", [0.02]) == "met (≤ 0.1)"
    assert verdict("flask_repeated_vs_fjwt", [0.2]) == "**missed** (≤ 0.1)"
    assert verdict("flask_repeated", [0.98]) == "met (≥ 0.97)"
    assert verdict("server_repeated", [0.9]) == "**missed** (≥ 0.95)"
    assert verdict("asgi_first_seen_vs_starlette", [0.25]) == "met (≤ 0.3)"
    assert set(TARGETS) >= {"server_static", "server_new_token"}


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_quick_login_flood(tmp_path: Path) -> None:
    # Real servers (uvicorn and gunicorn, 2 workers each) under a 2 s flood: the report is
    # well formed; whether a target is met depends on the machine, and is not asserted.
    for module in ("uvicorn", "gunicorn", "argon2", "starlette", "flask"):
        pytest.importorskip(module)
    out = tmp_path / "flood.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.flood", "--quick", "--json", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| target | peak RSS per worker | poller | logins/s |" in proc.stdout
    report = json.loads(out.read_text())
    meta = report["meta"]
    assert (meta["clients"], meta["seconds"]) == (20, 2.0)
    assert _positive(meta["argon2_verify"]["ms"]) and _positive(meta["logins_target_per_s"])
    assert set(report["targets"]) == {"starlette", "flask"}
    for target in report["targets"].values():
        assert "skipped" not in target, target
        assert len(target["workers"]) >= 2
        for worker in target["workers"]:
            assert _positive(worker["peak_bytes"]) and isinstance(worker["met"], bool)
        poller = target["poller"]
        assert sum(poller["statuses"].values()) == poller["polls"]
        assert poller["p99_ms"] is None or _positive(poller["p99_ms"])
        logins = target["logins"]
        assert sum(logins["by_status"].values()) == logins["answered"]
        assert all(isinstance(target[k], bool) for k in ("memory_met", "logins_met"))
        assert isinstance(poller["met"], bool)


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_quick_revocation_propagation(tmp_path: Path) -> None:
    # Two real uvicorn processes sharing a private Redis, a dozen revocations: every one is
    # refused by both processes, each way of revoking is measured; no time is asserted.
    for module in ("uvicorn", "argon2", "redis"):
        pytest.importorskip(module)
    out = tmp_path / "revocation.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.revocation", "--quick", "--json", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| **every process** (the latest of the N) | 12 |" in proc.stdout
    report = json.loads(out.read_text())
    assert report["meta"]["processes"] == 2
    result = report["stores"]["redis"]
    summary = result["summary"]
    assert (summary["revocations"], summary["complete"], summary["missed"]) == (12, 12, 0)
    assert summary["errors"] == []
    # The logout answers 204 (Directus's), the public API's routes 200.
    assert summary["revoke_statuses"] == {"204": 4, "200": 8}
    assert [row["kind"] for row in result["rows"][:3]] == ["logout", "session", "user"]
    assert [row["issuer"] for row in result["rows"][:3]] == [0, 1, 0]
    for row in result["rows"]:
        assert len(row["refused_ms"]) == 2 and all(_positive(ms) for ms in row["refused_ms"])
        assert all(polls >= 1 for polls in row["polls"])
    every = summary["every_process"]
    assert every["n"] == 12 and every["p50_ms"] <= every["p99_ms"] <= every["max_ms"]
    assert {kind: d["n"] for kind, d in summary["by_kind"].items()} == {
        "logout": 4,
        "session": 4,
        "user": 4,
    }
    assert isinstance(summary["target_met"], bool)


def test_revocation_memory_small(tmp_path: Path) -> None:
    # The memory and traffic figures of docs/scaling.md, at a size that runs in seconds.
    pytest.importorskip("redis")
    out = tmp_path / "memory.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}
    args = ["--entries", "2000", "--json", str(out)]
    if shutil.which("redis-server") is None:
        args.append("--no-redis")
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.revocation_memory", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    registry = report["registry"]
    for name in ("sessions", "users"):
        assert registry[name]["keys_held"] == registry[name]["heap_items"] == 2000
        assert _positive(registry[name]["bytes_per_revocation"])
    repeated = registry["one user, revoked again and again"]
    # Each revocation of the same user leaves an outdated heap item; the heap is rebuilt once
    # they outnumber the entries (plus 1,024), so one user holds a bounded heap.
    assert repeated["keys_held"] == 1 and 1 <= repeated["heap_items"] <= 2 * 1 + 1024
    # The messages: a logout publishes the bare family (22 characters).
    assert report["messages_bytes"]["logout (the family, as the store's script publishes it)"] == 22
    sizing = report["sizing"]
    assert (sizing["session_window_s"], sizing["user_window_s"]) == (905.0, 86405.0)
    if "redis" in report:
        assert "skipped" not in report["redis"], report["redis"]
        ways = report["redis"]["traffic"]["ways"]
        assert set(ways) == {"logout (the store's script)", "revoke_session", "revoke_user"}
        for way in ways.values():
            assert _positive(way["bytes_in_per_revocation"])
            assert _positive(way["bytes_out_per_subscriber"])
        window = report["redis"]["window"]
        assert window["members"] == 2000 and _positive(window["used_memory_bytes_per_member"])


def test_the_revocations_held_variant_checks_and_passes() -> None:
    # benchmarks.server_instructions' "revocations held" variants: the list is full of other
    # sessions and users, a token naming its session passes, one whose session is listed not.
    import asyncio

    sys.path.insert(0, str(ROOT))
    from benchmarks import apps

    app = apps.make_asgi_tokenguard_revocations()
    revocations = app.core.guard.revocations
    assert (len(revocations.sessions), len(revocations.users)) == (10_000, 1_000)

    async def status(token: str) -> int:
        sent: list[Any] = []
        scope: dict[str, Any] = {"type": "http", "method": "GET", "path": "/", "query_string": b"",
                                 "headers": [(b"authorization", f"Bearer {token}".encode())]}  # fmt: skip

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        async def send(message: Any) -> None:
            sent.append(message)

        await app(scope, receive, send)
        return int(sent[0]["status"])

    listed = next(iter(revocations.sessions))
    assert asyncio.run(status(apps.directus_token(sid="a" * 22))) == 200
    assert asyncio.run(status(apps.directus_token(sid=listed))) == 401


def test_quick_revocation_on_postgres(tmp_path: Path) -> None:
    # The PostgreSQL path: a private cluster, migrated, sessions in it, two processes. Where
    # the build carries revocations over LISTEN/NOTIFY every one is refused everywhere; where
    # it does not, the first revocation reaches only its own process and the run says so.
    for module in ("uvicorn", "argon2", "psycopg"):
        pytest.importorskip(module)
    out = tmp_path / "revocation.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.revocation", "--store", "postgres", "--processes",
         "2", "--revocations", "3", "--deadline", "2", "--json", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())["stores"]["postgres"]
    first = result["rows"][0]
    assert first["kind"] == "logout" and first["status"] == 204
    assert _positive(first["refused_ms"][0])  # the process that revoked refuses at once
    if "skipped" in result:
        assert "does not carry revocations across processes" in result["skipped"]
        assert first["refused_ms"][1] is None
    else:
        summary = result["summary"]
        assert (summary["revocations"], summary["complete"], summary["missed"]) == (3, 3, 0)
