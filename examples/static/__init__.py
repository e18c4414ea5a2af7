"""The login page both examples serve: plain HTML, CSS and a little script, no build step.

The files live here once; each example maps ``GET /login`` to ``login.html`` and
``GET /static/<name>`` to the other files through :func:`asset`, which serves only the
files listed in :data:`ASSETS` (no path from the URL ever reaches the file system).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["ASSETS", "HEADERS", "LOGIN_PAGE", "asset"]

DIRECTORY = Path(__file__).resolve().parent

#: The files that may be served, and their content types.
ASSETS: dict[str, str] = {
    "login.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}

LOGIN_PAGE = "login.html"

#: Sent with every file: the page runs only its own script, talks only to its own origin,
#: cannot be framed (clickjacking) and posts forms nowhere else.
HEADERS: dict[str, str] = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cache-control": "no-cache",
}


def asset(name: str) -> tuple[bytes, str] | None:
    """The body and content type of the listed file ``name``, or ``None``."""
    content_type = ASSETS.get(name)
    if content_type is None:
        return None
    # Read on every request so that an edit shows on reload; the files are tiny.
    return (DIRECTORY / name).read_bytes(), content_type
