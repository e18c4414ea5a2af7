"""Boot a real server process on 127.0.0.1 and a free port, and stop it by PID."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]

#: tests/e2e/auth_app.py under one uvicorn worker, configured from the environment.
AUTH_APP_UVICORN = [
    sys.executable, "-m", "uvicorn", "tests.e2e.auth_app:application",
    "--host", "127.0.0.1", "--port", "{port}", "--log-level", "warning",
]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def serve(
    argv: Sequence[str],
    env: Mapping[str, str],
    tmp_path: Path,
    *,
    port: int | None = None,
    ready_path: str = "/",
    timeout: float = 20.0,
) -> Iterator[Server]:
    """Run ``argv`` (``{port}`` is substituted) until the server answers ``ready_path``."""
    port = port or free_port()
    log_path = tmp_path / f"server-{port}.log"
    full_env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "PYTHONUNBUFFERED": "1", **env}
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), full_env.get("PYTHONPATH")]))
    args = [a.replace("{port}", str(port)).replace("{python}", sys.executable) for a in argv]
    with log_path.open("wb") as log:
        process = subprocess.Popen(args, cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{log_path.read_text(errors='replace')}")
            try:
                httpx.get(url + ready_path, timeout=1.0)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start:\n{log_path.read_text(errors='replace')}") from None
                time.sleep(0.1)
        yield Server(url, port, process, log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
