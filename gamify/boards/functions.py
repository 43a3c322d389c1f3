"""The Redis Function library of the boards, loaded at start."""

from __future__ import annotations

from pathlib import Path

from redis.asyncio import Redis

LIBRARY = (Path(__file__).parent / "functions.lua").read_text()
SET_MANY = "gamify_set_many"
FINISH_REBUILD = "gamify_finish_rebuild"
AROUND = "gamify_around"


async def load(redis: Redis) -> None:
    """FUNCTION LOAD REPLACE: idempotent, so every instance may load it at start."""
    await redis.function_load(LIBRARY, replace=True)


def missing(error: Exception) -> bool:
    """Whether a Redis error says the library is not loaded (a restarted, empty Redis)."""
    return "function not found" in str(error).lower()
