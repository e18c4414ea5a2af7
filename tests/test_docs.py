"""Every Python code block of the documentation runs, and the generated pages are current.

The blocks are collected from README.md and docs/**/*.md. Each runs in a fresh interpreter
(a block may configure Django, or leave files behind) in an empty folder that is also its
``HOME``, with a strong ``SECRET`` and no other tokenguard setting. An HTML comment on the line
right before a block says what more to do with it:

``<!-- check: GET /me -> 401; GET /me as editor -> 200 -->``
    the block defines ``app`` (ASGI or WSGI); each request is sent to it in-process through
    httpx's ASGI/WSGI transport, ``as ROLE`` with a fresh access token of that role (an
    administrator's for ``administrator``), and must answer that status.
``<!-- django: GET /me -> 401 -->``
    the block is a Django views module: the runner configures Django with tokenguard's
    middleware, routes ``/<name>`` to each view it defines, and checks through Django's
    test client.
``<!-- server: https://api.example.com -->``
    the block talks to that URL: a real server (the Starlette example under uvicorn, with the
    user ``me@example.com`` / ``secret``) is started and its address put in the URL's place.
``<!-- not run: reason -->``
    the block is not run; the reason is required.

Run ``python tests/test_docs.py BLOCK MODE ARG`` to run one block as the tests do.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import os
import re
import secrets
import socket
import subprocess
import sys
import textwrap
import time
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
MARK = re.compile(r"^<!--\s*(not run|check|django|server)\s*:\s*(.*?)\s*-->$")
CHECK = re.compile(r"^(GET|POST|PUT|PATCH|DELETE)\s+(\S+)(?:\s+as\s+(\S+))?\s*->\s*(\d{3})$")
#: Runs this file as a script without putting tests/ first on sys.path, where tests/http would
#: shadow the standard library's http package.
RUN_SELF = "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
#: Settings a developer's shell may hold that would change what a block does.
FOREIGN_ENV = ("TOKENGUARD_", "DB_", "AUTH_", "REDIS", "SECRET", "ADMIN_", "RATE_LIMITER_")


@dataclass(frozen=True)
class Block:
    """One fenced Python block and the mark before it."""

    path: Path
    line: int
    code: str
    mode: str  # "run", "check", "django", "server" or "not run"
    arg: str

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks_of(path: Path) -> Iterator[Block]:
    """The Python blocks of one Markdown file (fences may be indented, as in a list item)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        stripped = lines[i].lstrip()
        if stripped.startswith("```python"):
            indent = len(lines[i]) - len(stripped)
            start = i
            body: list[str] = []
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i][indent:] if lines[i].strip() else "")
                i += 1
            mark = MARK.match(lines[start - 1].strip()) if start else None
            mode, arg = (mark.group(1), mark.group(2)) if mark else ("run", "")
            yield Block(path, start + 1, textwrap.dedent("\n".join(body)) + "\n", mode, arg)
        i += 1


BLOCKS = [block for path in DOCS for block in blocks_of(path)]


def test_blocks_are_found() -> None:
    # A collector that silently finds nothing would pass everything.
    assert len([b for b in BLOCKS if b.mode != "not run"]) >= 8


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.id)
def test_block_runs(block: Block, tmp_path: Path) -> None:
    if block.mode == "not run":
        assert block.arg, f"{block.id}: a block that is not run says why"
        pytest.skip(block.arg)
    source = tmp_path / "block.py"
    source.write_text(block.code, encoding="utf-8")
    env = _clean_env(tmp_path)
    server = None
    arg = block.arg
    try:
        if block.mode == "server":
            server, url = _start_server(env)
            source.write_text(block.code.replace(block.arg, url), encoding="utf-8")
        done = subprocess.run(
            [sys.executable, "-c", RUN_SELF, str(Path(__file__).resolve()), str(source), block.mode, arg],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
        )
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
    assert done.returncode == 0, f"{block.id} failed:\n{done.stdout}\n{done.stderr}"
    # "~" is the user's home, never a folder of that name (FileStorage("~/…")).
    assert not (tmp_path / "~").exists(), f"{block.id} wrote into a literal ./~ folder"


def test_the_committed_cli_reference_is_current() -> None:
    spec = importlib.util.spec_from_file_location("cli_reference", ROOT / "scripts" / "cli_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (ROOT / "docs" / "cli.md").read_text(encoding="utf-8") == module.cli_markdown(), (
        "docs/cli.md is stale: run `python scripts/cli_reference.py > docs/cli.md`"
    )


def test_the_readme_is_a_landing_page() -> None:
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 250


# --------------------------------------------------------------------------- the test's side


def _clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_ENV)}
    import tokenguard

    # The tokenguard under test (a checkout's src/ wins over an installed one) and the
    # repository root (the examples).
    here = str(Path(tokenguard.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([here, str(ROOT)])
    env["HOME"] = str(home)
    env["SECRET"] = secrets.token_urlsafe(48)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_server(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    server_env = {
        **env, "HOST": "127.0.0.1", "PORT": str(port),
        "ADMIN_EMAIL": "me@example.com", "ADMIN_PASSWORD": "secret",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "examples.starlette_app.app"], cwd=ROOT, env=server_env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server, f"http://127.0.0.1:{port}"
        except OSError:
            if server.poll() is not None:
                break
            time.sleep(0.1)
    server.terminate()
    raise AssertionError("the example server did not start")


# --------------------------------------------------------------------------- the block's side


def _token(role: str) -> str:
    import jwt

    now = int(time.time())
    claims = {
        "id": f"docs-{role}", "role": role, "app_access": True,
        "admin_access": role == "administrator", "iat": now, "exp": now + 300, "iss": "directus",
    }
    return jwt.encode(claims, os.environ["SECRET"], algorithm="HS256")


def _requests(spec: str) -> list[tuple[str, str, dict[str, str], int]]:
    out = []
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        found = CHECK.match(part)
        assert found, f"not a check: {part!r}"
        method, path, role, status = found.groups()
        headers = {"Authorization": f"Bearer {_token(role)}"} if role else {}
        out.append((method, path, headers, int(status)))
    return out


def _is_asgi(app: Any) -> bool:
    call = app if inspect.isfunction(app) else type(app).__call__
    return inspect.iscoroutinefunction(call)


def _check_app(app: Any, spec: str) -> None:
    import httpx

    answers: list[tuple[str, int, int, str]] = []
    if _is_asgi(app):
        async def send_all() -> None:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                for method, path, headers, status in _requests(spec):
                    r = await c.request(method, path, headers=headers)
                    answers.append((f"{method} {path}", status, r.status_code, r.text))

        asyncio.run(send_all())
    else:
        transport = httpx.WSGITransport(app=app)
        with httpx.Client(transport=transport, base_url="http://testserver") as c:
            for method, path, headers, status in _requests(spec):
                r = c.request(method, path, headers=headers)
                answers.append((f"{method} {path}", status, r.status_code, r.text))
    wrong = [a for a in answers if a[1] != a[2]]
    assert not wrong, f"expected/got: {wrong}"


def _run_django(code: str, spec: str) -> None:
    import django
    from django.conf import settings

    settings.configure(
        SECRET_KEY="docs", ALLOWED_HOSTS=["*"], ROOT_URLCONF="docs_urls", INSTALLED_APPS=[],
        MIDDLEWARE=["tokenguard.integrations.django.TokenGuardMiddleware"],
        TOKENGUARD={"public_role": "public"},
    )
    django.setup()
    views = _exec(code, "docs_views")
    from django.test import Client
    from django.urls import path

    urls = types.ModuleType("docs_urls")
    urls.urlpatterns = [  # type: ignore[attr-defined]
        path(name, view) for name, view in vars(views).items()
        if inspect.isfunction(view) and view.__module__ == "docs_views"
    ]
    sys.modules["docs_urls"] = urls
    client = Client()
    for method, url, headers, status in _requests(spec):
        extra = {"HTTP_AUTHORIZATION": headers["Authorization"]} if headers else {}
        answer = client.generic(method, url, **extra)
        assert answer.status_code == status, (method, url, answer.status_code, answer.content)


def _exec(code: str, name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    sys.modules[name] = module
    exec(compile(code, f"<{name}>", "exec"), module.__dict__)
    return module


def main(source: str, mode: str, arg: str) -> None:
    code = Path(source).read_text(encoding="utf-8")
    if mode == "django":
        _run_django(code, arg)
        return
    module = _exec(code, "docs_block")
    if mode == "check":
        _check_app(module.app, arg)


if __name__ == "__main__":
    main(*sys.argv[1:4])
