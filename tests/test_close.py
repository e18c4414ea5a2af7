"""close() / aclose() / context managers / ASGI lifespan: no thread, no Redis connection and
no SQLite file handle is left behind (real Redis, real SQLite files)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from werkzeug.test import Client

from tests.helpers.auth import EMAIL, FAST, PASSWORD, SECRET, make_user
from tokenguard import TokenGuard, TokenGuardMiddleware, TokenGuardWSGI
from tokenguard.auth.mail import Mail
from tokenguard.stores.memory import MemorySessionStore, MemoryUserStore
from tokenguard.stores.once import MemoryOnceStore, SQLiteOnceStore
from tokenguard.stores.sqlite import SQLiteSessionStore, SQLiteUserStore

pytestmark = pytest.mark.redis

LOGIN = json.dumps({"email": EMAIL, "password": PASSWORD, "mode": "session"})


def named_url(redis_url: str) -> tuple[str, str]:
    """``redis_url`` with a client name unique to this test, so that CLIENT LIST counts only
    this test's connections."""
    name = f"tg-close-{uuid.uuid4().hex[:12]}"
    return f"{redis_url}{'&' if '?' in redis_url else '?'}client_name={name}", name


def connections(redis_url: str, name: str) -> int:
    client = redis.Redis.from_url(redis_url.partition("?")[0])
    try:
        return sum(1 for c in client.client_list() if c.get("name") == name)
    finally:
        client.close()


def open_files(path: Path) -> list[str]:
    """This process's open descriptors on the SQLite file (and its -wal/-shm)."""
    fd_dir = Path("/proc/self/fd")
    found = []
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(fd_dir / fd)
        except OSError:
            continue  # closed meanwhile (e.g. listdir's own descriptor)
        if target.startswith(str(path)):
            found.append(target)
    return found


def new_threads(before: set[threading.Thread]) -> set[threading.Thread]:
    """Threads started since ``before`` and still alive. AnyIO's idle workers (which ran
    the SQLite calls) are told to stop when their event loop ends, and exit on their own
    right after: they are waited for, boundedly, since they are AnyIO's, not ours."""
    for thread in set(threading.enumerate()) - before:
        if thread.name == "AnyIO worker thread":
            thread.join(timeout=10)
    return {t for t in set(threading.enumerate()) - before if t.is_alive()}


needs_proc = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="counts file descriptors in /proc/self/fd"
)


def settings(url: str, db: Path, prefix: str) -> dict[str, Any]:
    return {
        "secret": SECRET,
        "redis_url": url,
        "redis_prefix": prefix,
        "db_filename": str(db),
        "rate_limiter_enabled": True,
        "rate_limiter_store": "redis",
        "login_stall_ms": 0,
        "email_transport": "console",
    }


def hello(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(environ["tokenguard.user"]).encode()]


@needs_proc
def test_close_stops_every_thread_and_closes_every_connection(
    redis_url: str, redis_prefix: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, name = named_url(redis_url)
    db = tmp_path / "tg.db"
    threads_before = set(threading.enumerate())
    assert connections(redis_url, name) == 0
    wsgi = TokenGuardWSGI(hello, passwords=FAST, **settings(url, db, redis_prefix))
    core = wsgi.core
    core.users.create(make_user())  # type: ignore[union-attr]
    assert core.invalidation is not None and core.invalidation.start(wait_s=5)
    client = Client(wsgi)
    login = client.post("/auth/login", data=LOGIN, content_type="application/json")
    assert login.status_code == 200
    cookie = login.headers["Set-Cookie"].split(";")[0]
    # From another thread too: SQLite connections are per thread.
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(lambda: client.get("/me", headers={"Cookie": cookie})).result()
        assert (answer.status_code, answer.get_data()) == (200, b"9b7c5e2a-1f3d-4c6b-8a9e-0d2f4b6c8e1a")
        core.extras.mailer.send(Mail(to=EMAIL, subject="hi", text="queued before close"))
        assert connections(redis_url, name) >= 3  # sessions, counter, subscriber
        assert open_files(db)
        assert {t.name for t in set(threading.enumerate()) - threads_before} >= {
            "tokenguard-invalidation"
        }
        wsgi.close()
        assert core.closed
        assert connections(redis_url, name) == 0
        assert open_files(db) == []
    assert set(threading.enumerate()) - threads_before == set()
    assert "queued before close" in capsys.readouterr().err  # sent, not dropped
    wsgi.close()  # idempotent
    core.close()
    assert connections(redis_url, name) == 0


@needs_proc
def test_with_statement_closes_sqlite_and_memory_stores(tmp_path: Path) -> None:
    db = tmp_path / "tg.db"
    threads_before = set(threading.enumerate())
    with TokenGuard(secret=SECRET, db_filename=str(db), passwords=FAST) as core:
        core.users.create(make_user())  # type: ignore[union-attr]
        assert core.users.get_by_email(EMAIL) is not None  # type: ignore[union-attr]
        core.extras.once.claim("k", 1000, 0)  # type: ignore[union-attr]
        assert open_files(db)
    assert core.closed and open_files(db) == []
    assert set(threading.enumerate()) - threads_before == set()


def test_caller_stores_are_left_open() -> None:
    users, sessions = MemoryUserStore(), MemorySessionStore()
    closed: list[str] = []
    users.close = lambda: closed.append("users")  # type: ignore[method-assign]
    sessions.close = lambda: closed.append("sessions")  # type: ignore[method-assign]
    with TokenGuard(secret=SECRET, users=users, sessions=sessions):
        pass
    assert closed == []


@needs_proc
def test_every_store_close_is_idempotent(tmp_path: Path) -> None:
    db = tmp_path / "stores.db"
    stores: list[Any] = [
        SQLiteUserStore(db),
        SQLiteSessionStore(db),
        SQLiteOnceStore(str(db)),
        MemoryUserStore(),
        MemorySessionStore(),
        MemoryOnceStore(),
    ]
    stores[0].create(make_user())
    assert stores[1].get("x.y", 0) is None
    assert stores[2].claim("k", 1000, 0) is True
    with ThreadPoolExecutor(1) as pool:  # a connection opened in a thread still alive
        assert pool.submit(stores[2].claim, "k2", 1000, 0).result() is True
        assert open_files(db)
        for store in stores:
            store.close()
            store.close()
        assert open_files(db) == []
    # Usable again afterwards (a late request reopens), then closed again.
    assert stores[0].get_by_email(EMAIL) is not None
    stores[0].close()
    assert open_files(db) == []


@needs_proc
def test_asgi_lifespan_shutdown_closes_the_middlewares_own_guard(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    url, name = named_url(redis_url)
    db = tmp_path / "tg.db"
    threads_before = set(threading.enumerate())

    async def me(request: Request) -> JSONResponse:
        return JSONResponse({"user": request.state.user.user})

    async def main() -> list[str]:
        app = TokenGuardMiddleware(
            Starlette(routes=[Route("/me", me)]), passwords=FAST, **settings(url, db, redis_prefix)
        )
        assert app.owns_core
        app.core.users.create(make_user())  # type: ignore[union-attr]
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        sent: list[str] = []
        startup = asyncio.Event()

        async def receive() -> dict[str, Any]:
            return await inbox.get()

        async def send(message: Any) -> None:
            sent.append(message["type"])
            if message["type"] == "lifespan.startup.complete":
                startup.set()

        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        lifespan = asyncio.create_task(app(scope, receive, send))
        await inbox.put({"type": "lifespan.startup"})
        await startup.wait()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            login = await http.post(
                "/auth/login", content=LOGIN, headers={"content-type": "application/json"}
            )
            assert login.status_code == 200
            answer = await http.get("/me")
            assert (answer.status_code, answer.json()) == (
                200,
                {"user": "9b7c5e2a-1f3d-4c6b-8a9e-0d2f4b6c8e1a"},
            )
        assert app.core.invalidation is not None and app.core.invalidation.start(wait_s=5)
        assert connections(redis_url, name) >= 3
        assert open_files(db)
        await inbox.put({"type": "lifespan.shutdown"})
        await lifespan
        assert app.core.closed
        assert connections(redis_url, name) == 0
        assert open_files(db) == []
        await app.aclose()  # idempotent
        return sent

    assert asyncio.run(main()) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert new_threads(threads_before) == set()


def test_asgi_lifespan_leaves_a_shared_guard_open() -> None:
    core = TokenGuard(secret=SECRET, flavour="async")

    async def main() -> None:
        app = TokenGuardMiddleware(Starlette(), guard=core)
        assert not app.owns_core
        messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

        async def receive() -> Any:
            return next(messages)

        async def send(message: Any) -> None:
            pass

        await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
        await app.aclose()

    asyncio.run(main())
    assert not core.closed
    core.close()
    assert core.closed


def test_async_with_and_sync_close_inside_a_loop(redis_url: str, redis_prefix: str) -> None:
    url, name = named_url(redis_url)

    async def main() -> None:
        async with TokenGuard(
            secret=SECRET, flavour="async", redis_url=url, redis_prefix=redis_prefix
        ) as core:
            assert await core.sessions.get("x.y", 0) is None  # type: ignore[misc]
            assert connections(redis_url, name) >= 1
            with pytest.raises(RuntimeError, match="aclose"):
                core.close()  # asyncio connections: only aclose() can close them here
            assert not core.closed
        assert core.closed
        assert connections(redis_url, name) == 0
        await core.aclose()
        core.close()  # idempotent, even inside the loop once closed

    asyncio.run(main())


EXAMPLE_STARLETTE = """
import asyncio
from examples.starlette_app.app import app, guard

async def main():
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent = []

    async def receive():
        return next(messages)

    async def send(message):
        sent.append(message["type"])

    await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    print(sent, guard.closed)

asyncio.run(main())
"""

EXAMPLE_FLASK = """
import werkzeug.serving
werkzeug.serving.run_simple = lambda *args, **kwargs: None  # returns as on Ctrl-C
from examples.flask_app import app
app.main()
print(app.tokenguard.guard.closed)
"""


@pytest.mark.parametrize(
    ("script", "printed"),
    [
        (EXAMPLE_STARLETTE, "['lifespan.startup.complete', 'lifespan.shutdown.complete'] True"),
        (EXAMPLE_FLASK, "True"),
    ],
    ids=["starlette", "flask"],
)
def test_examples_close_their_guard_at_shutdown(script: str, printed: str, tmp_path: Path) -> None:
    import subprocess

    root = Path(__file__).resolve().parent.parent
    if not (root / "examples").is_dir():
        pytest.skip("the examples are not next to the tests (an installed-package run)")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("REDIS", "ADMIN_", "DB_FILENAME"))
    }
    env.update(SECRET=SECRET, DB_FILENAME=str(tmp_path / "demo.db"), PYTHONPATH=str(root))
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout.strip()) == (0, printed), done.stderr[-2000:]
