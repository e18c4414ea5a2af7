"""Fixtures of the guard's tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.security.harness import Shell, make_core
from tokenguard.app import TokenGuard


@pytest.fixture
def shell_of() -> Iterator[Callable[..., Shell]]:
    """``shell_of(kind, core=None, **settings)``: a middleware over ``core`` (by default one
    from tests/security/harness.py with ``settings``); its event loop and core are closed
    after the test."""
    made: list[Shell] = []

    def build(kind: str, core: TokenGuard | None = None, **settings: Any) -> Shell:
        shell = Shell(kind, core if core is not None else make_core(kind, **settings))
        made.append(shell)
        return shell

    yield build
    for shell in made:
        if shell.loop is not None:
            shell.loop.run_until_complete(shell.core.aclose())
            shell.loop.close()
        else:
            shell.core.close()
