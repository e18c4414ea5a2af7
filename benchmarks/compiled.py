"""What a compiled hot path would give: the same modules built with mypyc, measured beside
the pure-Python ones.

    python -m benchmarks.compiled            # build, then count instructions (valgrind)

mypyc (part of mypy, already a dev dependency) compiles our own type-annotated modules to a
C extension without a line of C of ours, so it is the cheapest "compiled verifier" to try
and the one that would keep a single source. The build goes to a temporary directory; the
checkout is never touched.

Timing on a shared 2-core machine swings by 2x from minute to minute, so the comparison
counts **instructions** with ``valgrind --tool=callgrind`` instead: the same binary on the
same input executes the same number of instructions whatever the neighbours do. Each
workload runs twice per build, with ``n`` operations and with none (same set-up, tokens
issued alike), and the difference divided by ``n`` is the cost of one operation.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The modules a request runs through, in the order it meets them.
HOT = (
    "shells/asgi.py",
    "guard/decide.py",
    "guard/extract.py",
    "guard/cache.py",
    "jose/tokens.py",
    "jose/compact.py",
)
WORKLOADS = ("verify", "asgi_repeated", "asgi_first_seen", "asgi_static")

_WORKLOAD = r'''
import asyncio, sys, time
from benchmarks import apps
import tokenguard.jose.tokens as tokens
from tokenguard.config import token_policy

kind, n = sys.argv[1], int(sys.argv[2])
N = 2000
now = time.time()
fresh = [apps.directus_token() for _ in range(N + 1)]
if kind == "verify":
    verifier = tokens.TokenVerifier(token_policy(apps.SETTINGS))
    verifier.verify(fresh[N], now)
    for token in fresh[:n]:
        verifier.verify(token, now)
    raise SystemExit(0)

app = apps.make_asgi_tokenguard()
if kind == "asgi_repeated":
    values = [b"Bearer " + fresh[N].encode()] * (N + 1)
elif kind == "asgi_static":
    values = [b"Bearer " + apps.STATIC_TOKEN.encode()] * (N + 1)
else:
    values = [b"Bearer " + t.encode() for t in fresh]
scopes = [
    {"type": "http", "method": "GET", "path": "/", "raw_path": b"/", "query_string": b"",
     "headers": [(b"host", b"127.0.0.1"), (b"authorization", v)]}
    for v in values
]
sent = []

async def receive():
    return {"type": "http.request", "body": b""}

async def send(message):
    sent.append(message["type"])

async def main():
    await app(scopes[N], receive, send)  # warm: the first request of each kind
    for scope in scopes[:n]:
        await app(scope, receive, send)

asyncio.run(main())
assert len(sent) == 2 * (n + 1), sent[:4]
'''


def build(dest: Path) -> Path:
    """A copy of ``src/`` with the hot modules compiled by mypyc; returns its path."""
    src = dest / "src"
    shutil.copytree(ROOT / "src", src)
    cmd = [sys.executable, "-m", "mypyc", *(f"tokenguard/{m}" for m in HOT)]
    out = subprocess.run(cmd, cwd=src, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"mypyc failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    built = sorted(p.name for p in (src / "tokenguard").rglob("*.so"))
    if len(built) < len(HOT):
        raise RuntimeError(f"mypyc built only {built}")
    return src


def instructions(src: Path, kind: str, n: int, script: Path) -> int:
    """Instructions executed by one run of the workload (callgrind's total)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(src)])}
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
           sys.executable, str(script), kind, str(n)]  # fmt: skip
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if out.returncode:
        raise RuntimeError(f"{kind} under {src} failed:\n{out.stderr[-2000:]}")
    match = re.search(r"Collected : (\d+)", out.stderr)
    if match is None:
        raise RuntimeError(f"callgrind printed no total:\n{out.stderr[-1000:]}")
    return int(match.group(1))


def measure(n: int = 2000) -> dict[str, dict[str, float | None]]:
    """Instructions per operation, pure Python against mypyc, for every workload."""
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install -y valgrind)")
    with tempfile.TemporaryDirectory(prefix="tokenguard-mypyc-") as tmp:
        script = Path(tmp) / "workload.py"
        script.write_text(_WORKLOAD)
        compiled = build(Path(tmp))
        builds = {"pure Python": ROOT / "src", "mypyc": compiled}
        result: dict[str, dict[str, float | None]] = {}
        for kind in WORKLOADS:
            result[kind] = {}
            for label, src in builds.items():
                try:
                    full = instructions(src, kind, n, script)
                    empty = instructions(src, kind, 0, script)
                except RuntimeError as exc:
                    # A compiled build that cannot run a workload is a finding, not a crash.
                    print(f"{kind:16} {label:12} fails: {str(exc).splitlines()[-1]}",
                          file=sys.stderr, flush=True)  # fmt: skip
                    result[kind][label] = None
                    continue
                result[kind][label] = (full - empty) / n
                print(f"{kind:16} {label:12} {result[kind][label]:>10,.0f} instr/op",
                      file=sys.stderr, flush=True)  # fmt: skip
    return result


def markdown(result: dict[str, dict[str, float | None]]) -> str:
    lines = [
        "| workload | pure Python, instructions/op | mypyc, instructions/op | mypyc / pure |",
        "|---|---:|---:|---:|",
    ]
    for kind, row in result.items():
        pure, compiled = row["pure Python"], row["mypyc"]
        if pure is None or compiled is None:
            cells = [f"{v:,.0f}" if v is not None else "fails" for v in (pure, compiled)]
            lines.append(f"| {kind} | {cells[0]} | {cells[1]} | - |")
        else:
            lines.append(f"| {kind} | {pure:,.0f} | {compiled:,.0f} | {compiled / pure:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=2000, help="operations per workload")
    args = parser.parse_args(argv)
    print(markdown(measure(args.n)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
