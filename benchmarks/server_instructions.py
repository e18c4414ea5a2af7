"""Instructions per request of a live uvicorn (httptools + uvloop), counted by callgrind.

    apt-get install -y valgrind
    python -m benchmarks.server_instructions            # every variant, 1,000 requests each
    python -m benchmarks.server_instructions -n 500 --variants bare,tokenguard-repeated
    python -m benchmarks.server_instructions --keep cg/   # dumps for callgrind_annotate

On a shared 2-core machine a minute's requests per CPU-second move by 10 to 30 % between
rounds; the instructions one request executes do not. Each variant's server runs under
``valgrind --tool=callgrind``, answers 300 requests to warm up, has its counters zeroed,
answers ``n`` more over one keep-alive connection, and is dumped: the count divided by
``n`` is one request, everything uvicorn, httptools, uvloop and the app execute for it.
The ratio to the bare app is what the server-CPU targets would be if every instruction cost
the same; a live server's cold caches make our instructions dearer than the bare app's, so
it is an upper bound on the measured ratio, not a substitute for it.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import apps
from .run import ROOT, free_port

#: variant -> (app factory in benchmarks.apps, token mode)
VARIANTS = {
    "bare": ("make_asgi_bare", "repeated"),
    "pass-through middleware": ("make_asgi_passthrough", "repeated"),
    "header walk + attach (no auth)": ("make_asgi_header_attach", "repeated"),
    "tokenguard-repeated": ("make_asgi_tokenguard", "repeated"),
    "tokenguard-static": ("make_asgi_tokenguard", "static"),
    "tokenguard-first-seen": ("make_asgi_tokenguard", "first-seen"),
    # Tokens naming their session (as a login's do): the list empty, then not.
    "tokenguard-first-seen-sid": ("make_asgi_tokenguard", "first-seen-sid"),
    "tokenguard-repeated-revocations-held": ("make_asgi_tokenguard_revocations", "repeated-sid"),
    "tokenguard-first-seen-revocations-held": (
        "make_asgi_tokenguard_revocations",
        "first-seen-sid",
    ),
    "Starlette AuthenticationMiddleware + PyJWT": ("make_asgi_starlette_auth", "repeated"),
}
WARMUP = 300


def _tokens(mode: str, count: int) -> list[str]:
    if mode == "static":
        return [apps.STATIC_TOKEN] * count
    if mode.endswith("-sid"):
        mode = mode.removesuffix("-sid")
        if mode == "first-seen":
            return [apps.directus_token(sid=secrets.token_urlsafe(16)[:22]) for _ in range(count)]
        return [apps.directus_token(sid=secrets.token_urlsafe(16)[:22])] * count
    if mode == "first-seen":
        return [apps.directus_token() for _ in range(count)]
    return [apps.directus_token()] * count


def _request(conn: socket.socket, token: str) -> None:
    conn.sendall(
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
        + token.encode()
        + b"\r\n\r\n"
    )
    answer = b""
    while not answer.endswith(apps.BODY):
        chunk = conn.recv(4096)
        if not chunk:
            raise RuntimeError("the server closed the connection")
        answer += chunk
    if b" 200 " not in answer.split(b"\r\n", 1)[0]:
        raise RuntimeError(f"not a 200: {answer[:200]!r}")


def count(factory: str, mode: str, n: int, keep: Path | None = None) -> float:
    """Instructions per request of ``factory``'s app under uvicorn, ``n`` requests; the
    callgrind dump is copied to ``keep`` (for ``callgrind_annotate``) when given."""
    with tempfile.TemporaryDirectory(prefix="tokenguard-callgrind-") as tmp:
        port = free_port()
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")]),
            "PYTHONHASHSEED": "0",
        }
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.%p",
               sys.executable, "-m", "uvicorn", "--factory", f"benchmarks.apps:{factory}",
               "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
               "--log-level", "warning", "--http", "httptools", "--loop", "uvloop"]  # fmt: skip
        server = subprocess.Popen(
            cmd, cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            tokens = _tokens(mode, WARMUP + n)
            deadline = time.monotonic() + 300
            while True:
                try:
                    conn = socket.create_connection(("127.0.0.1", port), timeout=120)
                    break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"{factory} did not start under valgrind") from None
                    time.sleep(0.5)
            with conn:
                for token in tokens[:WARMUP]:
                    _request(conn, token)
                subprocess.run(["callgrind_control", "-z", str(server.pid)], check=True,
                               capture_output=True, timeout=120)  # fmt: skip
                for token in tokens[WARMUP:]:
                    _request(conn, token)
                subprocess.run(["callgrind_control", "-d", str(server.pid)], check=True,
                               capture_output=True, timeout=120)  # fmt: skip
        finally:
            server.terminate()
            server.wait(60)
        # callgrind_control -d writes cg.<pid>.1: the counts since they were zeroed.
        dump = next(Path(tmp).glob("cg.*.1"), None)
        if dump is None:
            raise RuntimeError("callgrind wrote no dump")
        if keep is not None:
            shutil.copyfile(dump, keep)
        match = re.search(r"^(?:summary|totals): (\d+)", dump.read_text(), re.M)
        if match is None:
            raise RuntimeError(f"no total in {dump.name}")
        return int(match.group(1)) / n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=1000, help="requests per variant")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated")
    parser.add_argument("--keep", type=Path, help="a folder to keep each variant's dump in")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install -y valgrind)")
    wanted = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in wanted if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    if "bare" not in wanted:
        wanted.insert(0, "bare")
    counts: dict[str, float] = {}
    for name in wanted:
        factory, mode = VARIANTS[name]
        keep = None
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            keep = args.keep / (re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") + ".out")
        counts[name] = count(factory, mode, args.n, keep)
        print(f"{name:45} {counts[name]:>10,.0f} instructions/request", file=sys.stderr)
    bare = counts["bare"]
    print("| variant | instructions/request | added to bare | bare / variant |")
    print("|---|---:|---:|---:|")
    for name, value in counts.items():
        print(f"| {name} | {value:,.0f} | {value - bare:,.0f} | {bare / value:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
