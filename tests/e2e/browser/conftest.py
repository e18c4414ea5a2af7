"""Headless Chromium (Debian's, never a downloaded one) driven by Playwright, and the two
example apps served by real servers on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.helpers.servers import Server, serve
from tests.helpers.tokens import SECRET

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "correct horse battery staple"
ENV = {
    "SECRET": SECRET,
    "ADMIN_EMAIL": ADMIN_EMAIL,
    "ADMIN_PASSWORD": ADMIN_PASSWORD,
    "TOKENGUARD_PUBLIC_ROLE": "public",
}
EXAMPLES = {
    "starlette-uvicorn": [sys.executable, "-m", "examples.starlette_app.app"],
    "flask-werkzeug": [sys.executable, "-m", "examples.flask_app.app"],
}
# No sandbox: CI containers run as root, where Chromium's sandbox cannot start. Everything
# that would reach the network by itself is off; the tests talk to 127.0.0.1 only.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]


def _skip_or_fail(reason: str) -> None:
    # On a laptop without Chromium the browser tests skip; CI installs it, so there it fails.
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: CI must run the browser tests (bash scripts/install-browser.sh)")
    pytest.skip(reason)


def chromium_path() -> str | None:
    """Debian's Chromium (``TG_CHROMIUM`` overrides the path)."""
    explicit = os.environ.get("TG_CHROMIUM")
    if explicit:
        return explicit
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the session; each test opens its own fresh context."""
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


@dataclass(frozen=True)
class Example:
    name: str
    server: Server

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(params=sorted(EXAMPLES), scope="module")
def example(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Example]:
    """One example app, served by a real server on 127.0.0.1 for the module's tests."""
    with serve(EXAMPLES[request.param], ENV, tmp_path_factory.mktemp(request.param)) as srv:
        yield Example(request.param, srv)
