"""A loop that runs until cancelled still stops when a library swallowed its cancellation."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from gamify.platform.cancellation import stop_if_cancelled


async def test_a_swallowed_cancellation_still_stops_the_loop() -> None:
    passes = 0

    async def loop_forever() -> None:
        nonlocal passes
        while True:
            passes += 1
            with contextlib.suppress(asyncio.CancelledError):  # as a library might
                await asyncio.sleep(0.01)
            stop_if_cancelled()

    task = asyncio.get_running_loop().create_task(loop_forever())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=5)
    assert passes >= 1


async def test_nothing_happens_when_no_one_cancelled() -> None:
    stop_if_cancelled()
