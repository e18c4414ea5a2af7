"""What the browser tests share: the example apps and their settings, and Chromium."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass

from tests.helpers.servers import Server
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
    "django-uvicorn": [sys.executable, "-m", "examples.django_app.app"],
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


def chromium_path() -> str | None:
    """Debian's Chromium (``TG_CHROMIUM`` overrides the path)."""
    explicit = os.environ.get("TG_CHROMIUM")
    if explicit:
        return explicit
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass(frozen=True)
class Example:
    """An example app (``name`` is a key of :data:`EXAMPLES`) and the server running it."""

    name: str
    server: Server

    @property
    def url(self) -> str:
        return self.server.url
