"""Serve an example on a production server: the ASGI ones under uvicorn, the WSGI ones under
gunicorn (never Werkzeug's development server, which announces its version in ``Server`` and
takes a bare CR for a line break).

    python -m examples.serve [starlette|fastapi|django|flask|flask_sqlalchemy] [server options]

It listens on ``HOST``/``PORT`` (default 127.0.0.1:8055) with ``WEB_CONCURRENCY`` worker
processes (default 1; both servers read it).

The servers' own forwarded-header handling runs before tokenguard sees the request, so it is
off unless ``IP_TRUST_PROXY`` says a proxy stands in front: uvicorn would otherwise rewrite
the client address from ``X-Forwarded-For`` for any client on 127.0.0.1 (its default
``--forwarded-allow-ips``), letting a client behind a same-host proxy choose its own address
for the per-address limits. With ``IP_TRUST_PROXY`` set, the servers believe the forwarded
headers of ``FORWARDED_ALLOW_IPS`` only (default: this host), and tokenguard counts
``IP_TRUST_PROXY`` hops from the right of ``X-Forwarded-For`` (see SECURITY.md).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

__all__ = ["APPS", "command", "main"]

#: Each example: its server and the app it serves.
APPS: dict[str, tuple[str, str]] = {
    "starlette": ("uvicorn", "examples.starlette_app.app:app"),
    "fastapi": ("uvicorn", "examples.fastapi_app.app:app"),
    "django": ("uvicorn", "examples.django_app.asgi:application"),
    "flask": ("gunicorn", "examples.flask_app.app:app"),
    "flask_sqlalchemy": ("gunicorn", "examples.flask_sqlalchemy_app.app:app"),
}


def _trusts_proxy(environ: Mapping[str, str]) -> bool:
    return environ.get("IP_TRUST_PROXY", "").strip().lower() not in ("", "false", "no", "off", "0")


def command(which: str, environ: Mapping[str, str], extra: Sequence[str] = ()) -> list[str]:
    """The server's command line for example ``which`` under ``environ``, ``extra`` (more
    options of that server, such as ``--log-level``) at the end."""
    server, target = APPS[which]
    host = environ.get("HOST", "127.0.0.1")
    port = environ.get("PORT", "8055")
    proxy = _trusts_proxy(environ)
    if server == "uvicorn":
        argv = [sys.executable, "-m", "uvicorn", target, "--host", host, "--port", port]
        if which == "django":
            argv += ["--lifespan", "off"]  # Django's ASGI handler does not speak it
        if proxy:
            allowed = environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
            return [*argv, "--proxy-headers", "--forwarded-allow-ips", allowed, *extra]
        return [*argv, "--no-proxy-headers", *extra]
    argv = [sys.executable, "-m", "gunicorn", target, "--bind", f"{host}:{port}"]
    # Threads: a request waiting on argon2 or a store does not hold up the others.
    argv += ["--threads", environ.get("GUNICORN_THREADS", "8")]
    # gunicorn never rewrites REMOTE_ADDR, but believes X-Forwarded-Proto from these peers.
    allowed = environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1") if proxy else ""
    return [*argv, "--forwarded-allow-ips", allowed, *extra]


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    which = args[0] if args else "starlette"
    if which not in APPS:
        sys.exit(f"usage: python -m examples.serve [{'|'.join(APPS)}]")
    cmd = command(which, os.environ, args[1:])
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main()
