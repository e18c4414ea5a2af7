"""Headless Chromium (Debian's, never a downloaded one) driven by Playwright, and the two
example apps served by real servers on 127.0.0.1."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.browser.support import CHROMIUM_ARGS, ENV, EXAMPLES, Example, chromium_path
from tests.helpers.servers import serve


def _skip_or_fail(reason: str) -> None:
    # On a laptop without Chromium the browser tests skip; CI installs it, so there it fails.
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: CI must run the browser tests (bash scripts/install-browser.sh)")
    pytest.skip(reason)


# Package scope, not session: Playwright's sync API keeps an asyncio loop running in the main
# thread while it lives, and every later test that calls asyncio.run() would fail.
@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """One headless Chromium for the browser tests; each test opens its own fresh context."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _skip_or_fail("the playwright package is not installed")
    executable = chromium_path()
    if executable is None:
        _skip_or_fail("Chromium is not installed")
    # Playwright gives the browser a fresh, empty --user-data-dir and deletes it afterwards.
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    """A fresh browser profile (no cookies, no cache) for one test."""
    ctx = browser.new_context(viewport={"width": 720, "height": 600}, device_scale_factor=1)
    ctx.set_default_timeout(10_000)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture(params=sorted(EXAMPLES), scope="module")
def example(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Example]:
    """One example app, served by a real server on 127.0.0.1 for the module's tests."""
    with serve(EXAMPLES[request.param], ENV, tmp_path_factory.mktemp(request.param)) as srv:
        yield Example(request.param, srv)
