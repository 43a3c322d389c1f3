"""A player's stream in Redis (streams.lua): seqs, epochs, replay and the 24-hour trim."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from gamify.live import streams
from tests.gamify.support import Servers

DAY_MS = 24 * 3600 * 1000


@pytest.fixture
async def redis(servers: Servers) -> AsyncIterator[Redis]:
    client = Redis.from_url(servers.redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


async def push(redis: Redis, *messages: str) -> int:
    encoded = [m.encode() for m in messages]
    first = await streams.loading(redis, lambda: redis.fcall(*streams.push_args("t", "p", encoded)))
    return int(first)


async def test_seqs_are_consecutive_from_an_epoch_taken_from_the_clock(redis: Redis) -> None:
    before = int(time.time() * 1_000_000)
    first = await push(redis, '{"type":"a"}', '{"type":"b"}')
    second = await push(redis, '{"type":"c"}')
    assert first > before - 5_000_000  # the server's clock, give or take its skew
    assert second == first + 2
    replayed = await streams.replay(redis, redis.execute_command, "t", "p", first + 1)
    assert replayed.last == second
    assert replayed.frames == [
        (first + 1, f'{{"seq":{first + 1},"type":"b"}}'.encode()),
        (second, f'{{"seq":{second},"type":"c"}}'.encode()),
    ]


async def test_a_lost_stream_starts_a_new_epoch_above_every_old_seq(redis: Redis) -> None:
    old = await push(redis, '{"type":"a"}')
    await redis.delete(streams.stream("t", "p"), streams.counter("t", "p"))
    new = await push(redis, '{"type":"b"}')
    assert new > old + 1
    replayed = await streams.replay(redis, redis.execute_command, "t", "p", old + 1)
    assert [seq for seq, _ in replayed.frames] == [new]  # old + 1 is not held: not recovered


async def test_messages_older_than_a_day_are_trimmed_as_new_ones_arrive(redis: Redis) -> None:
    stale = int(time.time() * 1000) - DAY_MS - 60_000
    stream, counter = streams.stream("t", "p"), streams.counter("t", "p")
    await redis.xadd(stream, {"t": stale, "m": '{"seq":5,"type":"old"}'}, id="5-0")
    await redis.set(counter, 5)
    for _ in range(streams_trim_every()):
        await push(redis, '{"type":"new"}')
    entries = await redis.xrange(stream)
    assert entries is not None
    held = [int(str(entry_id, "ascii").split("-")[0]) for entry_id, _ in entries]  # type: ignore[arg-type]
    assert held == list(range(6, 6 + streams_trim_every()))
    assert 0 < await redis.pttl(stream) <= DAY_MS


def streams_trim_every() -> int:
    """How many seqs a push may add before it looks at the stream's head (streams.lua)."""
    for line in streams.LIBRARY.splitlines():
        if line.startswith("local TRIM_EVERY"):
            return int(line.split("=")[1])
    raise AssertionError("streams.lua names no TRIM_EVERY")
