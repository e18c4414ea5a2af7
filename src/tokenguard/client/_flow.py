"""What a client flow yields, and the stepping that the sync and async drivers share.

A flow is a generator in the manner of httpx's ``Auth.auth_flow``: it yields a
:data:`Step` — an :class:`httpx.Request` to send, :data:`LOAD` or a :class:`Save` for the
storage, an :class:`Exclusive` sub-flow to run under the refresh lock — and receives the
step's result, or has the step's exception thrown into it. :class:`Stepper` holds that
protocol (send or throw, ``StopIteration``'s value, closing the flow) once, so that a
driver only says how it does a step: with blocking calls or with awaits.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx

from ._storage import AuthData

__all__ = ["LOAD", "Exclusive", "Flow", "Load", "Save", "Step", "Stepper"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Load:
    """Read the stored :class:`AuthData` (``None`` when nothing is stored)."""


LOAD = Load()


@dataclass(frozen=True, slots=True)
class Save:
    """Store ``data`` (an empty ``AuthData()`` logs out)."""

    data: AuthData


@dataclass(frozen=True, slots=True)
class Exclusive:
    """Run ``flow`` while holding the refresh lock; its result is sent back."""

    flow: Generator[Any, Any, Any]


Step = httpx.Request | Load | Save | Exclusive
Flow = Generator[Step, Any, T]


class Stepper(Generic[T]):
    """One run of a flow, for a driver::

        with Stepper(flow) as run:
            for step in run:
                try:
                    run.send(do(step))
                except Exception as exc:  # handed to the flow, which may handle it
                    run.throw(exc)
        return run.result

    Iterating gives the flow's steps; after each one the driver hands back its outcome
    with :meth:`send` or :meth:`throw`. The iteration ends when the flow returns (its value
    is then :attr:`result`) and raises what the flow raises. Leaving the ``with`` block
    closes the flow, also when the driver itself is interrupted (a cancelled task).
    """

    result: T

    def __init__(self, flow: Flow[T]) -> None:
        self._flow = flow
        self._value: Any = None
        self._error: Exception | None = None

    def __iter__(self) -> Iterator[Step]:
        while True:
            try:
                if self._error is not None:
                    step = self._flow.throw(self._error)
                else:
                    step = self._flow.send(self._value)
            except StopIteration as stop:
                self.result = stop.value
                return
            self._value, self._error = None, None
            yield step

    def send(self, value: Any) -> None:
        """The last step's result, sent into the flow when it resumes."""
        self._value = value

    def throw(self, error: Exception) -> None:
        """The last step's exception, thrown into the flow when it resumes."""
        self._error = error

    def __enter__(self) -> Stepper[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._flow.close()
