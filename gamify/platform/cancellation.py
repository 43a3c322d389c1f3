"""Cancellation that a library lost on its way: the loops that run until cancelled check it."""

from __future__ import annotations

import asyncio


def cancelling() -> bool:
    """Whether the current task is being cancelled."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def stop_if_cancelled() -> None:
    """Raise CancelledError if the current task is being cancelled.

    A cancellation can be lost on its way out: cleanup that fails while it unwinds raises an
    error in its place, and some library calls return normally after meeting one. A loop that
    keeps going after either would never end, and whoever awaits it on shutdown would wait
    forever.
    """
    if cancelling():
        raise asyncio.CancelledError
