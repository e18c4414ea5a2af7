"""A spoofed ``X-Forwarded-For`` cannot dodge the per-address limit in the documented setup.

uvicorn's own proxy-header handling runs before tokenguard: left at its default
(``--forwarded-allow-ips 127.0.0.1``) it rewrites the client address from
``X-Forwarded-For`` for every client on this host, so a client sending a new address with
each request is a new client each time. Served as ``examples/run.sh`` serves the examples
(``python -m examples.serve``: ``--no-proxy-headers`` while ``IP_TRUST_PROXY`` is off), the
same client is one address and meets 429.
"""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

from tests.helpers.servers import serve
from tests.helpers.tokens import SECRET

pytestmark = pytest.mark.e2e

POINTS = 5
ENV = {
    "SECRET": SECRET,
    "RATE_LIMITER_ENABLED": "true",
    "RATE_LIMITER_POINTS": str(POINTS),
    "RATE_LIMITER_DURATION": "60",
}
DOCUMENTED = [sys.executable, "-m", "examples.serve", "starlette"]
# uvicorn's defaults: proxy headers believed from 127.0.0.1 — what the examples used to run.
UVICORN_DEFAULTS = [
    sys.executable, "-m", "uvicorn", "examples.starlette_app.app:app",
    "--host", "127.0.0.1", "--port", "{port}",
]  # fmt: skip


def _statuses(url: str, count: int) -> list[int]:
    """``count`` requests from one client, each claiming another address."""
    with httpx.Client(base_url=url) as client:
        return [
            client.get("/", headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code
            for i in range(1, count + 1)
        ]


def test_spoofed_forwarded_for_still_hits_the_limit(tmp_path: Path) -> None:
    with serve(DOCUMENTED, ENV, tmp_path, ready_path="/ping") as server:
        statuses = _statuses(server.url, POINTS * 3)
    # The readiness probe spent a point of the same address: at most POINTS answers pass.
    assert statuses[0] == 200 and statuses.count(200) <= POINTS
    assert set(statuses[POINTS:]) == {429}


def test_the_servers_default_would_let_it_dodge(tmp_path: Path) -> None:
    # The contrast that shows why the documented setup turns uvicorn's handling off.
    with serve(UVICORN_DEFAULTS, ENV, tmp_path, ready_path="/ping") as server:
        statuses = _statuses(server.url, POINTS * 3)
    assert set(statuses) == {200}
