"""Each player's message stream in Redis: key names, appending (with the publish to the
player's shard channel) and replaying. The Function library is streams.lua."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import msgspec
from redis.asyncio import Redis

from gamify.boards import functions

T = TypeVar("T")

LIBRARY = (Path(__file__).parent / "streams.lua").read_text()
PUSH = "gamify_live_push"
REPLAY = "gamify_live_replay"
# The longest stream kept (approximately): a bound on a player's Redis memory whatever the day
# brings. 24 hours of an ordinary player's messages are far fewer.
MAX_LENGTH = 1000
REPLAY_PAGE = 100


class Replayed(msgspec.Struct, frozen=True):
    """What a stream holds from a seq on: the last seq it gave (None: no stream at all) and
    the frames, in order, with their seqs."""

    last: int | None
    frames: list[tuple[int, bytes]]


def _tag(tenant: str, player: str) -> str:
    # Everything up to the first "}" is the hash tag, so a player id holding braces still gives
    # one tag for all three names below: stream, counter and channel share a cluster slot.
    return f"live:{{{tenant}:{player}}}"


def stream(tenant: str, player: str) -> str:
    return f"{_tag(tenant, player)}:s"


def counter(tenant: str, player: str) -> str:
    return f"{_tag(tenant, player)}:n"


def channel(tenant: str, player: str) -> str:
    return f"{_tag(tenant, player)}:c"


def audience(tenant: str) -> str:
    """The players of `tenant` with a stream worth writing: those who listened to `me` within
    the stream retention (scored by when they last did)."""
    return f"live:{{{tenant}}}:audience"


# A stream is kept this long after its last message (streams.lua), so a player who listened
# this long ago can still resume; no one else ever will.
RETENTION_SECONDS = 24 * 3600


async def attend(redis: Redis, tenant: str, players: list[str], now: float) -> None:
    """Count `players` in the audience from `now` (Unix seconds), and forget the players who
    left it more than the retention ago."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zadd(audience(tenant), dict.fromkeys(players, now))
        pipe.zremrangebyscore(audience(tenant), "-inf", now - RETENTION_SECONDS)
        await pipe.execute()


def player_of(channel_name: bytes) -> tuple[str, str]:
    """(tenant, player) of a channel name that `channel` made."""
    inner = channel_name.decode()[len("live:{") : -len("}:c")]
    tenant, _, player = inner.partition(":")
    return tenant, player


def push_args(tenant: str, player: str, messages: list[bytes]) -> list[Any]:
    """The FCALL arguments appending `messages` (JSON objects without seq) to the stream."""
    keys = [stream(tenant, player), counter(tenant, player)]
    return [PUSH, 2, *keys, channel(tenant, player), MAX_LENGTH, *messages]


Call = Callable[..., Awaitable[Any]]  # runs one raw command (the boards' ReadBatcher)


async def replay(redis: Redis, call: Call, tenant: str, player: str, first: int) -> Replayed:
    """Up to REPLAY_PAGE frames from seq `first` on."""
    keys = [stream(tenant, player), counter(tenant, player)]
    command = ("FCALL_RO", REPLAY, 2, *keys, first, REPLAY_PAGE)
    reply = await loading(redis, lambda: call(*command))
    last = int(reply[0])
    frames = [(int(reply[i]), bytes(reply[i + 1])) for i in range(1, len(reply), 2)]
    return Replayed(None if last < 0 else last, frames)


async def last_seq(call: Call, tenant: str, player: str) -> int | None:
    found = await call("GET", counter(tenant, player))
    return None if found is None else int(found)


def split_published(data: bytes) -> list[tuple[int, bytes]]:
    """The frames of one published message, with their seqs (consecutive from the first)."""
    first, *frames = data.split(b"\n")
    start = int(first)
    return [(start + i, frame) for i, frame in enumerate(frames)]


async def load(redis: Redis) -> None:
    await functions.load(redis, LIBRARY)


async def loading(redis: Redis, call: Callable[[], Awaitable[T]]) -> T:
    """`call()`, and once more after loading the library if Redis lost it (restarted empty)."""
    return await functions.loading(redis, call, LIBRARY)
