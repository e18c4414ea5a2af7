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
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from types import CoroutineType, GeneratorType, MappingProxyType
from typing import Any, TypeVar

__all__ = ["Call", "Flow", "Sleep", "run_async", "run_sync"]

T = TypeVar("T")
_NO_KWARGS: Mapping[str, Any] = MappingProxyType({})


class Call:
    """Call ``fn(*args, **kwargs)``; await it if it returns an awaitable.

    ``blocking`` marks CPU-heavy work (argon2) that must not run on the event loop.
    A plain slotted class rather than a dataclass: one is built for every store call.
    """

    __slots__ = ("fn", "args", "kwargs", "blocking")

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...] = (),
        kwargs: Mapping[str, Any] = _NO_KWARGS,
        blocking: bool = False,
    ) -> None:
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.blocking = blocking

    def __repr__(self) -> str:
        name = getattr(self.fn, "__qualname__", repr(self.fn))
        return f"Call({name}, blocking={self.blocking})"


@dataclass(frozen=True, slots=True)
class Sleep:
    """Pause for ``seconds`` (the login stall).

    ``tarpit``: the pause only slows a client down (a throttled login answered after the
    stall, so that a flood's clients cannot spin on instant refusals). An event loop waits
    for free; a blocking driver (WSGI, the command line) skips it, since there it would hold
    a worker thread for every request of the flood.
    """

    seconds: float
    tarpit: bool = False


Step = Call | Sleep
Flow = Generator[Step, Any, T]


def _offload(call: Call) -> bool:
    if call.blocking:
        return True
    # Sync stores doing real I/O (SQLite) say so; they then run in a worker thread under ASGI.
    owner = getattr(call.fn, "__self__", None)
    return bool(getattr(owner, "io_bound", False)) and not inspect.iscoroutinefunction(call.fn)


def _is_awaitable(value: Any) -> bool:
    # inspect.isawaitable asks an ABC about every plain result (a User, None); an awaitable
    # is a coroutine, a generator-based coroutine, or a type with __await__.
    kind = type(value)
    if kind is CoroutineType:
        return True
    if kind is GeneratorType:
        return inspect.isawaitable(value)
    return hasattr(kind, "__await__")


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
            if step.seconds > 0 and not step.tarpit:
                time.sleep(step.seconds)
            continue
        try:
            send = step.fn(*step.args, **step.kwargs)
            if _is_awaitable(send):
                close = getattr(send, "close", None)
                if close is not None:
                    close()
                raise TypeError(f"{step.fn!r} is asynchronous; a WSGI app needs synchronous stores")
        except Exception as exc:  # handed to the flow, which decides (e.g. 503)
            error = exc


async def run_async(flow: Flow[T]) -> T:
    """Drive ``flow`` on an event loop: await async stores, thread blocking work."""
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
                import anyio  # a pause is rare (throttled logins); keep it off the import path

                await anyio.sleep(step.seconds)
            continue
        try:
            if _offload(step):
                work = functools.partial(step.fn, *step.args, **step.kwargs)
                # Password hashing has a pool of its own (tokenguard.auth.hashing), bounded
                # for the whole process: awaited there, a flood of logins holds no thread
                # of the loop's, which other requests' blocking store calls need.
                pool = getattr(getattr(step.fn, "__self__", None), "pool", None)
                if pool is not None:
                    send = await pool.arun(work)
                else:
                    import anyio.to_thread  # only ASGI apps with blocking work need it

                    send = await anyio.to_thread.run_sync(work)
            else:
                send = step.fn(*step.args, **step.kwargs)
            if _is_awaitable(send):
                send = await send
        except Exception as exc:
            error = exc
