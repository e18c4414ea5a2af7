"""The app-wide rate limiter over real servers: uvicorn (ASGI) and Werkzeug (WSGI), two
processes sharing one count in Redis; the refused requests' query tokens reach no log."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

import httpx

from tests.helpers.servers import serve
from tests.helpers.tokens import SECRET

POINTS = 6


def test_two_processes_share_one_count_and_log_no_token(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    query_secret = "qs-" + secrets.token_urlsafe(24)
    jwt_secret = "jw-" + secrets.token_urlsafe(24)
    env = {
        "SECRET": SECRET,
        "LOG_STATIC_TOKEN": "static-" + secrets.token_urlsafe(24),
        "TOKENGUARD_PUBLIC_ROLE": "public",
        "REDIS": redis_url,
        "TOKENGUARD_REDIS_PREFIX": redis_prefix,
        "RATE_LIMITER_ENABLED": "true",
        "RATE_LIMITER_STORE": "redis",
        "RATE_LIMITER_POINTS": str(POINTS),
        "RATE_LIMITER_DURATION": "120",
    }
    uvicorn = [sys.executable, "-m", "uvicorn", "tests.e2e.apps.log_asgi_app:app", "--port", "{port}"]
    werkzeug = [sys.executable, "-m", "tests.e2e.apps.log_wsgi_app", "{port}"]
    with serve(uvicorn, env, tmp_path, ready_path="/ok") as one, serve(
        werkzeug, env, tmp_path, ready_path="/ok"
    ) as two:
        # Each readiness probe was one request: 2 of the 6 points are spent.
        replies = []
        with httpx.Client(timeout=10) as client:
            for i in range(6):
                server = (one, two)[i % 2]
                replies.append(client.get(f"{server.url}/ok?access_token={query_secret}&jwt={jwt_secret}"))
        statuses = [r.status_code for r in replies]
        # The token is not a valid one (401) until the shared count passes 6; then both
        # processes refuse, whichever one the client asks.
        assert statuses == [401, 401, 401, 401, 429, 429], statuses
        for reply in replies[4:]:
            body = reply.json()
            assert body["errors"][0]["extensions"]["code"] == "REQUESTS_EXCEEDED"
            assert body["errors"][0]["extensions"]["limit"] == POINTS
            retry = reply.headers["retry-after"]
            assert retry.isdigit() and 1 <= int(retry) <= 120
        one.process.terminate()
        two.process.terminate()
        one.process.wait(timeout=15)
        two.process.wait(timeout=15)
        logs = one.output() + two.output()
    # Both servers did log the refused requests, without the credentials.
    assert logs.count("429") >= 2, logs
    assert query_secret not in logs and jwt_secret not in logs, logs
