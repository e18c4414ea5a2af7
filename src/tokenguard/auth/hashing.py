"""A bound on password hashing: how many argon2 runs a process does at once, and how long a
login may wait for one.

An argon2id verification with Directus's parameters takes 64 MiB and a core for tens of
milliseconds. Run in a worker thread per request, a flood of wrong passwords (or unknown
e-mails, which verify a dummy hash so as to cost the same) has no bound on either: memory grows
with the number of requests in flight, and every other request queues behind the hashing for
the CPU. A :class:`HashPool` runs at most ``concurrency`` of them at once in its own threads;
a few more may wait, each for at most ``wait`` seconds; the rest are refused at once with
:class:`Overloaded` (503 ``SERVICE_UNAVAILABLE`` with ``Retry-After``), before anything of the
login is done, so nothing is ever half done.

One pool serves the whole process, whatever calls it: WSGI request threads and the command
line wait for the result (:meth:`HashPool.run`), event loops await it without holding a
thread (:meth:`HashPool.arun`), so a flood of logins never starves the loop's thread pool,
which other requests' blocking store calls need.
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from ..errors import AuthError, service_unavailable

__all__ = ["HashPool", "Overloaded", "shared_pool"]

T = TypeVar("T")

#: Thread-local: set in the pool's own threads, where a nested run() must not queue again.
_inside = threading.local()


class Overloaded(AuthError):
    """503 ``SERVICE_UNAVAILABLE``: more password checks waiting than the pool takes.

    ``retry_after`` is the seconds for the ``Retry-After`` header."""

    def __init__(self, retry_after: int) -> None:
        error = service_unavailable("auth", "Too many logins at once, retry shortly")
        super().__init__(error.status, error.code, error.message, error.extensions)
        self.retry_after = retry_after


class HashPool:
    """At most ``concurrency`` hashes at once; at most ``queue`` more waiting, each at most
    ``wait`` seconds before it starts.

    ``concurrency`` defaults to the CPU count (more would only share the cores and multiply
    the memory), ``queue`` to twice ``concurrency``. The threads start on first use and again
    in a forked child (a server's worker), whose parent's threads do not exist there.
    """

    def __init__(
        self,
        concurrency: int | None = None,
        *,
        queue: int | None = None,
        wait: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.concurrency = max(1, concurrency or os.cpu_count() or 1)
        self.queue = max(0, 2 * self.concurrency if queue is None else queue)
        if wait <= 0:
            raise ValueError("wait must be a positive number of seconds")
        self.wait = wait
        self._clock = clock
        self._lock = threading.Lock()
        self._pending = 0  # admitted and not yet done: running plus waiting
        self._executor: ThreadPoolExecutor | None = None
        self._pid = 0

    def __repr__(self) -> str:
        return (
            f"HashPool(concurrency={self.concurrency}, queue={self.queue}, wait={self.wait}, "
            f"pending={self._pending})"
        )

    @property
    def pending(self) -> int:
        """Hashes admitted and not finished (running and waiting)."""
        return self._pending

    @property
    def retry_after(self) -> int:
        """Seconds a refused caller is told to wait."""
        return max(1, math.ceil(self.wait))

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the pool, waiting for it; :class:`Overloaded` if it cannot start
        in time. Called from one of the pool's own threads, it runs inline."""
        if getattr(_inside, "active", False):
            return fn(*args)
        return self._submit(fn, args).result()

    async def arun(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the pool, awaited without holding a thread of the event loop's."""
        return await asyncio.wrap_future(self._submit(fn, args))

    def close(self) -> None:
        """Stop the threads once the running hashes are done (a later call starts them
        again)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def _submit(self, fn: Callable[..., T], args: tuple[Any, ...]) -> Future[T]:
        with self._lock:
            if self._pending >= self.concurrency + self.queue:
                raise Overloaded(self.retry_after)
            self._pending += 1
            executor = self._executor
            if executor is None or self._pid != os.getpid():
                executor = self._executor = ThreadPoolExecutor(
                    self.concurrency, thread_name_prefix="tokenguard-hash"
                )
                self._pid = os.getpid()
        admitted = self._clock()

        def job() -> T:
            if self._clock() - admitted > self.wait:
                # Waited too long: whoever asked has been kept long enough; refuse rather
                # than start a hash whose answer comes later still.
                raise Overloaded(self.retry_after)
            _inside.active = True
            try:
                return fn(*args)
            finally:
                _inside.active = False

        try:
            future = executor.submit(job)
        except RuntimeError:  # shut down by close() in another thread meanwhile
            self._done(None)
            raise Overloaded(self.retry_after) from None
        future.add_done_callback(self._done)  # also when a waiting job is cancelled
        return future

    def _done(self, _future: Future[Any] | None) -> None:
        with self._lock:
            self._pending -= 1


_shared: dict[tuple[int | None, int | None, float], HashPool] = {}
_shared_lock = threading.Lock()


def shared_pool(
    concurrency: int | None = None, *, queue: int | None = None, wait: float = 2.0
) -> HashPool:
    """The process's pool for these limits: every guard, shell and command of the process
    configured alike shares one."""
    key = (concurrency, queue, wait)
    with _shared_lock:
        pool = _shared.get(key)
        if pool is None:
            pool = _shared[key] = HashPool(concurrency, queue=queue, wait=wait)
        return pool
