"""The fuzz harness stays runnable: its six targets on a few hundred inputs (the long run is
``fuzz/README.md``'s). Skipped where atheris is not installed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("atheris")

_PATH = Path(__file__).resolve().parents[2] / "fuzz" / "fuzz_auth.py"


def _harness() -> object:
    spec = importlib.util.spec_from_file_location("tokenguard_fuzz_auth", _PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


HARNESS = _harness()


@pytest.mark.parametrize("target", range(6))
@given(data=st.binary(max_size=600))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_every_target_holds_its_invariants(target: int, data: bytes) -> None:
    HARNESS.test_one_input(bytes([target]) + data)  # type: ignore[attr-defined]


def test_known_inputs() -> None:
    # Inputs that once broke the harness itself (a HEAD answer has no body to parse).
    for data in (b"A\x00L", b"))", b"\x05" + b"\x05" * 40):
        HARNESS.test_one_input(data)  # type: ignore[attr-defined]
