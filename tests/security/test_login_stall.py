"""Directus's login stall: unknown user and wrong password take the same time.

A behaviour test on purpose (the one timing measurement in the suite): with
``LOGIN_STALL_TIME=50ms``, many interleaved logins of each kind are timed through the WSGI
and ASGI shells, and the medians must differ by less than the measured noise allows. The
test also checks that it *could* see a difference: the tolerance must stay well below the
gap an attacker would look for (here 40% of the stall), else the run was too noisy to say
anything and is repeated.
"""

from __future__ import annotations

import statistics
import time

import pytest

from tests.helpers.auth import EMAIL
from tests.security.harness import INVALID_CREDENTIALS, Shell, make_shell

STALL_MS = 50
ROUNDS = 40


def _timed(shell: Shell, email: str) -> float:
    started = time.perf_counter()
    reply = shell.request("POST", "/auth/login", json_body={"email": email, "password": "wrong"})
    elapsed = time.perf_counter() - started
    assert (reply.status, reply.body) == (401, INVALID_CREDENTIALS)
    return elapsed * 1000


def _iqr(values: list[float]) -> float:
    q = statistics.quantiles(values, n=4)
    return q[2] - q[0]


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_unknown_user_and_wrong_password_take_the_same_time(kind: str) -> None:
    shell = make_shell(kind, login_stall_ms=STALL_MS, auth_login_attempts=0, login_account_points=0)
    _timed(shell, EMAIL)  # warm up (argon2's dummy hash, imports)
    last = ""
    for _attempt in range(3):
        unknown: list[float] = []
        known: list[float] = []
        for i in range(ROUNDS):
            # Interleaved, so that any drift in machine load hits both series alike.
            pair = [("nobody@example.com", unknown), (EMAIL, known)]
            for email, series in pair if i % 2 else reversed(pair):
                series.append(_timed(shell, email))
        # Both series are stalled: nothing answers before the stall.
        assert min(unknown) >= STALL_MS * 0.95 and min(known) >= STALL_MS * 0.95
        difference = abs(statistics.median(unknown) - statistics.median(known))
        tolerance = max(2.0, 2 * max(_iqr(unknown), _iqr(known)))
        last = f"difference {difference:.2f} ms, tolerance {tolerance:.2f} ms"
        if tolerance < STALL_MS * 0.4:
            assert difference < tolerance, last
            return
    pytest.skip(f"the machine was too noisy to measure: {last}")
