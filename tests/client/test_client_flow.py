"""The stepping of a client flow (client/_flow.py), shared by the sync and async drivers."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest

from tokenguard.client._flow import LOAD, Flow, Save, Stepper
from tokenguard.client._storage import AuthData

REQUEST = httpx.Request("GET", "https://api.example.com/x")


def drive(flow: Flow[Any], do: Any) -> Any:
    with Stepper(flow) as run:
        for step in run:
            try:
                run.send(do(step))
            except Exception as exc:
                run.throw(exc)
    return run.result


def test_results_are_sent_back_and_the_return_value_is_the_result() -> None:
    seen: list[Any] = []

    def flow() -> Flow[str]:
        seen.append((yield REQUEST))
        seen.append((yield LOAD))
        return "done"

    assert drive(flow(), lambda step: "response" if step is REQUEST else None) == "done"
    assert seen == ["response", None]


def test_a_step_error_is_thrown_into_the_flow_which_may_handle_it() -> None:
    def flow() -> Flow[str]:
        try:
            yield REQUEST
        except ConnectionError as exc:
            stored = yield Save(AuthData())
            return f"handled {exc} then {stored}"
        return "not reached"

    def do(step: Any) -> Any:
        if step is REQUEST:
            raise ConnectionError("down")
        return "saved"

    assert drive(flow(), do) == "handled down then saved"


def test_an_unhandled_step_error_propagates_and_the_flow_is_closed() -> None:
    closed: list[bool] = []

    def flow() -> Flow[None]:
        try:
            yield REQUEST
        finally:
            closed.append(True)

    def do(step: Any) -> Any:
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        drive(flow(), do)
    assert closed == [True]


def test_an_interrupted_driver_closes_the_flow_at_once() -> None:
    # A BaseException (a cancellation, Ctrl-C) is not handed to the flow, but leaving the
    # block still closes it: its cleanup runs now, not when it is garbage-collected.
    closed: list[bool] = []

    def flow() -> Flow[None]:
        try:
            yield REQUEST
            yield REQUEST
        finally:
            closed.append(True)

    def do(step: Any) -> Any:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        drive(flow(), do)
    assert closed == [True]


def test_the_same_stepping_drives_awaited_steps() -> None:
    def flow() -> Flow[int]:
        first = yield REQUEST
        second = yield REQUEST
        return int(first) + int(second)

    async def do(step: Any) -> int:
        await anyio.sleep(0)
        return 20

    async def main() -> int:
        with Stepper(flow()) as run:
            for step in run:
                run.send(await do(step))
        return run.result

    assert anyio.run(main) == 40
