"""Shared by the end-to-end tests: the @directus/sdk harness in ``sdk/``, installed once."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

SDK_DIR = Path(__file__).resolve().parent / "sdk"


def _locked(name: str) -> str:
    lock = json.loads((SDK_DIR / "package-lock.json").read_text())
    return str(lock["packages"][f"node_modules/{name}"]["version"])


def _installed(name: str) -> str | None:
    manifest = SDK_DIR / "node_modules" / name / "package.json"
    return json.loads(manifest.read_text())["version"] if manifest.exists() else None


@pytest.fixture(scope="session")
def node() -> str:
    """The ``node`` binary, with ``sdk/node_modules`` matching the lock file (``npm ci``)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        reason = "node and npm are needed to drive @directus/sdk (install Node.js 20 or newer)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}: CI must run the SDK check")  # a skip would hide it
        pytest.skip(reason)
    if any(_installed(n) != _locked(n) for n in ("@directus/sdk", "ws")):
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=SDK_DIR,
            capture_output=True,
            text=True,
            timeout=600,
        )
        # Present but failing is a failure, never a skip: CI must really run this.
        assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"
    return node
