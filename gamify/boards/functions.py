"""The Redis Function library of the boards, loaded at start."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from redis.asyncio import Redis
from redis.exceptions import ResponseError

T = TypeVar("T")

LIBRARY = (Path(__file__).parent / "functions.lua").read_text()
WRITE = "gamify_write"
PAGE = "gamify_page"
FINISH_REBUILD = "gamify_finish_rebuild"
AROUND = "gamify_around"


async def load(redis: Redis, library: str = LIBRARY) -> None:
    """FUNCTION LOAD REPLACE: idempotent, so every instance may load it at start."""
    await redis.function_load(library, replace=True)


def missing(error: Exception) -> bool:
    """Whether a Redis error says the library is not loaded (a restarted, empty Redis)."""
    return "function not found" in str(error).lower()


async def loading(redis: Redis, call: Callable[[], Awaitable[T]], library: str = LIBRARY) -> T:
    """`call()`, and once more after loading `library` if Redis had lost it (restarted
    empty): every caller of a Function goes through here."""
    try:
        return await call()
    except ResponseError as exc:
        if not missing(exc):
            raise
    await load(redis, library)
    return await call()
