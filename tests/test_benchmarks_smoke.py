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
