"""Releasing what a :class:`~tokenguard.app.TokenGuard` made: threads, pools, files.

A :class:`Resources` list is filled while the core is built (only with what the core made
itself: stores, counters, the invalidation subscriber, the mail pool, the SSO HTTP client)
and emptied once, in order, by ``close()`` or ``aclose()``. What the caller passed in stays
the caller's to close.

A failure to release one thing is logged (its class name only: a driver's message may
quote a URL with a password) and does not stop the others.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["Resources"]

log = logging.getLogger("tokenguard")


class Resources:
    """Things to release, each with a sync ``close()`` or an async ``aclose()``."""

    def __init__(self) -> None:
        self._sync: list[tuple[str, Callable[[], Any]]] = []
        self._async: list[tuple[str, Callable[[], Awaitable[Any]]]] = []
        self._lock = threading.Lock()
        self.closed = False

    def add(self, resource: Any) -> None:
        """Own ``resource``: its ``aclose()`` when that is a coroutine function, else its
        ``close()``."""
        name = type(resource).__name__
        aclose = getattr(resource, "aclose", None)
        if aclose is not None and inspect.iscoroutinefunction(aclose):
            self._async.append((name, aclose))
            return
        self._sync.append((name, resource.close))

    @property
    def needs_loop(self) -> bool:
        """Whether something can only be released on an event loop."""
        return bool(self._async)

    def _take(self) -> tuple[list[tuple[str, Callable[[], Any]]], list[Any]] | None:
        with self._lock:
            if self.closed:
                return None
            self.closed = True
            taken = (self._sync, self._async)
            self._sync, self._async = [], []
            return taken

    def close(self) -> None:
        """Release everything (idempotent). Async resources are released on a fresh event
        loop (which cannot close connections left by an ended loop: that is logged); called
        from a running loop with async resources, it refuses (RuntimeError): ``await
        aclose()`` there instead."""
        if self._async and _running_loop():
            raise RuntimeError(
                "this TokenGuard holds asynchronous connections: use `await guard.aclose()` "
                "(or `async with`) inside an event loop"
            )
        taken = self._take()
        if taken is None:
            return
        sync, async_ = taken
        _close_all(sync)
        if async_:
            asyncio.run(_aclose_all(async_, hint=_ON_ITS_LOOP))

    async def aclose(self) -> None:
        """Release everything (idempotent); blocking releases (joining a thread, closing a
        SQLite file) run in a worker thread, off the event loop."""
        taken = self._take()
        if taken is None:
            return
        sync, async_ = taken
        if sync:
            import anyio.to_thread

            await anyio.to_thread.run_sync(_close_all, sync)
        await _aclose_all(async_)


def _running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _close_all(items: list[tuple[str, Callable[[], Any]]]) -> None:
    for name, close in items:
        try:
            close()
        except Exception as exc:  # one failure must not keep the rest open
            log.warning("closing %s failed: %s", name, type(exc).__name__)


_ON_ITS_LOOP = (
    " (asyncio connections opened on an event loop that has ended cannot be closed on"
    " another: await guard.aclose() on the loop that used them)"
)


async def _aclose_all(
    items: list[tuple[str, Callable[[], Awaitable[Any]]]], hint: str = ""
) -> None:
    for name, aclose in items:
        try:
            await aclose()
        except Exception as exc:  # one failure must not keep the rest open
            log.warning("closing %s failed: %s%s", name, type(exc).__name__, hint)
