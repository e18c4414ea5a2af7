"""Where a live server's CPU goes: py-spy samples uvicorn while wrk drives it.

    pip install py-spy
    python -m benchmarks.profile                       # raw ASGI app, new JWT every request
    python -m benchmarks.profile --mode fixed          # the same token every request
    python -m benchmarks.profile --mode static

The server is the benchmarks' ``raw`` set-up (uvicorn, httptools + uvloop, one worker). The
summary groups samples by the innermost frame of ours, or of the server when none of ours
is on the stack, so that "tokenguard: 18 %" reads as the share of the server's CPU our code
(and what it calls) costs per request.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from . import apps
from .run import _WRK_LUA, Server, run_wrk


def _group(frame: str) -> str:
    # py-spy's collapsed frames look like "verify (tokenguard/tokens.py:159)".
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path = where.rsplit(":", 1)[0]
    if "/tokenguard/" in path or path.startswith("tokenguard/"):
        return f"tokenguard {path.split('tokenguard/')[-1]}:{name}"
    if "benchmarks/apps.py" in path:
        return "the bare app"
    for part in ("uvicorn", "httptools", "uvloop", "asyncio"):
        if part in path:
            return f"{part} (server)"
    return f"other: {name}"


def summarise(collapsed: str, top: int = 15) -> tuple[int, list[tuple[str, int]], list[tuple[str, int]]]:
    """Total samples, self samples by group, and inclusive samples of our functions."""
    own: collections.Counter[str] = collections.Counter()
    ours: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        groups = [_group(f) for f in frames]
        mine = [g for g in groups if g.startswith("tokenguard ")]
        # The innermost frame that is ours or the bare app's: the app (and the server's
        # send it awaits) is not our cost even though our __call__ is above it.
        owner = next((g for g in reversed(groups) if g.startswith("tokenguard ") or g == "the bare app"), None)
        own[owner or groups[-1]] += count
        for g in dict.fromkeys(mine):  # each function once per stack: inclusive
            ours[g] += count
    return total, own.most_common(top), ours.most_common(top)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("file", "fixed", "static"), default="file")
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    args = parser.parse_args(argv)
    if shutil.which("py-spy") is None and not (Path(sys.executable).parent / "py-spy").exists():
        raise SystemExit("py-spy is not installed (pip install py-spy)")
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    with tempfile.TemporaryDirectory(prefix="tokenguard-profile-") as tmp:
        script = Path(tmp) / "bench.lua"
        script.write_text(_WRK_LUA)
        if args.mode == "file":
            tokens = Path(tmp) / "tokens.txt"
            count = 40_000
            tokens.write_text("\n".join(apps.directus_token() for _ in range(count)) + "\n")
            wrk_args = ["file", str(tokens), "0"]
        else:
            token = apps.STATIC_TOKEN if args.mode == "static" else apps.directus_token()
            wrk_args = ["fixed", token]
        server = Server("asgi", "make_asgi_tokenguard", ("--http", "httptools", "--loop", "uvloop"))
        out = Path(tmp) / "profile.txt"
        try:
            server.wait_ready()
            run_wrk(server.port, 1, 16, str(script), wrk_args)  # warm-up
            spy_proc = subprocess.Popen(
                [spy, "record", "--pid", str(server.proc.pid), "--duration", str(args.seconds),
                 "--rate", str(args.rate), "--format", "raw", "--output", str(out), "--nonblocking"],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            result = run_wrk(server.port, args.seconds, 16, str(script), wrk_args)
            _, err = spy_proc.communicate(timeout=args.seconds + 60)
            if spy_proc.returncode:
                raise SystemExit(f"py-spy failed: {err[-1000:]}")
        finally:
            server.stop()
        total, own, ours = summarise(out.read_text())
    print(f"{result['requests']} requests, {total} samples, mode {args.mode}\n")
    print("| where the CPU is (innermost frame of ours, else the server's) | share |")
    print("|---|---:|")
    for group, n in own:
        print(f"| {group} | {n / total:.1%} |")
    print("\n| tokenguard function, inclusive | share |")
    print("|---|---:|")
    for group, n in ours:
        print(f"| {group} | {n / total:.1%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
