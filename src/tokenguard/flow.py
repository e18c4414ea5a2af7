"""One logic for sync and async stores: flows are generators driven by two small drivers.

A flow (login, refresh, a static-token lookup…) is a generator that *yields* what it needs
done — a store call, a CPU-heavy call, a pause — and receives the result. :func:`run_sync`
drives it with blocking calls (WSGI); :func:`run_async` awaits async stores and moves
blocking work to a thread (ASGI). This is httpx's ``Auth.auth_flow`` pattern: the security
logic exists once, and neither driver knows anything about it.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = ["Call", "Flow", "Sleep", "run_async", "run_sync"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Call:
    """Call ``fn(*args, **kwargs)``; await it if it returns an awaitable.

    ``blocking`` marks CPU-heavy work (argon2) that must not run on the event loop.
    """

    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    blocking: bool = False


@dataclass(frozen=True, slots=True)
class Sleep:
    """Pause for ``seconds`` (the login stall)."""

    seconds: float


Step = Call | Sleep
Flow = Generator[Step, Any, T]


def _offload(call: Call) -> bool:
    if call.blocking:
        return True
    # Sync stores doing real I/O (SQLite) say so; they then run in a worker thread under ASGI.
    owner = getattr(call.fn, "__self__", None)
    return bool(getattr(owner, "io_bound", False)) and not inspect.iscoroutinefunction(call.fn)


def run_sync(flow: Flow[T]) -> T:
    """Drive ``flow`` with blocking calls. Async stores are a programming error here."""
    send: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = flow.throw(error) if error is not None else flow.send(send)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        send, error = None, None
        if isinstance(step, Sleep):
            if step.seconds > 0:
                time.sleep(step.seconds)
            continue
        try:
            send = step.fn(*step.args, **step.kwargs)
            if inspect.isawaitable(send):
                close = getattr(send, "close", None)
                if close is not None:
                    close()
                raise TypeError(f"{step.fn!r} is asynchronous; a WSGI app needs synchronous stores")
        except Exception as exc:  # handed to the flow, which decides (e.g. 503)
            error = exc


async def run_async(flow: Flow[T]) -> T:
    """Drive ``flow`` on an event loop: await async stores, thread blocking work."""
    import anyio.to_thread

    send: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = flow.throw(error) if error is not None else flow.send(send)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        send, error = None, None
        if isinstance(step, Sleep):
            if step.seconds > 0:
                await anyio.sleep(step.seconds)
            continue
        try:
            if _offload(step):
                send = await anyio.to_thread.run_sync(
                    functools.partial(step.fn, *step.args, **step.kwargs)
                )
            else:
                send = step.fn(*step.args, **step.kwargs)
            if inspect.isawaitable(send):
                send = await send
        except Exception as exc:
            error = exc
