"""docs/configuration.md is written from the declaration and must not go stale."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tokenguard.config.reference import reference_markdown
from tokenguard.config.settings import ENV_NAMES

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_the_committed_reference_is_current() -> None:
    assert REFERENCE.read_text(encoding="utf-8") == reference_markdown(), (
        "docs/configuration.md is stale: run `python -m tokenguard.config > docs/configuration.md`"
    )


def test_every_variable_is_in_the_reference() -> None:
    text = reference_markdown()
    for env in ENV_NAMES.values():
        assert f"| `{env}` |" in text, env


def test_defaults_are_shown_as_the_environment_writes_them() -> None:
    text = reference_markdown()
    assert "| `ACCESS_TOKEN_TTL` | `access_token_ttl_ms` | `15m` |" in text
    assert "| `REFRESH_TOKEN_TTL` | `refresh_token_ttl_ms` | `7d` |" in text
    assert "| `MAX_PAYLOAD_SIZE` | `max_payload_bytes` | `1mb` |" in text
    assert "| `RATE_LIMITER_DURATION` | `rate_limiter_duration_ms` | `1` |" in text
    assert "| `TOKENGUARD_QUERY_PARAMS` | `query_params` | `access_token` |" in text
    assert "| `SECRET` | `secret` | — (required) |" in text
    assert "| `DB_PASSWORD` | `db_password` | — |" in text


def test_the_module_prints_the_reference() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tokenguard.config"], capture_output=True, text=True, check=True
    )
    assert out.stdout == reference_markdown()
