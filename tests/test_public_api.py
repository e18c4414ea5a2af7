"""The public API is what ``tokenguard.__all__`` says; a change to it is a deliberate act."""

from __future__ import annotations

import tokenguard

EXPECTED = {
    "AuthError",
    "ConfigError",
    "ENVIRON_PRINCIPAL",
    "ENVIRON_ROLE",
    "ENVIRON_USER",
    "Guard",
    "Principal",
    "RedactingFilter",
    "Refusal",
    "SessionRecord",
    "Settings",
    "StoreUnavailable",
    "TokenGuard",
    "TokenGuardMiddleware",
    "TokenGuardWSGI",
    "User",
    "generate_secret",
}


def test_exported_names_are_pinned() -> None:
    assert set(tokenguard.__all__) == EXPECTED
    for name in tokenguard.__all__:
        assert getattr(tokenguard, name) is not None


def test_core_does_not_import_frameworks() -> None:
    import subprocess
    import sys

    code = (
        "import sys, tokenguard, tokenguard.guard.decide, tokenguard.auth.service;"
        "print(','.join(m for m in ('flask', 'starlette', 'werkzeug') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # The ASGI shell needs nothing from Starlette; Werkzeug/Flask only for their integrations.
    assert out.stdout.strip() == ""
