"""Concurrent reads share pipelines, and each caller still gets exactly its own reply."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError, ResponseError

from gamify.boards.batch import ReadBatcher
from gamify.platform.embedded.ports import free_port
from tests.gamify.support import Servers


class CountingRedis(Redis):
    """Counts the pipelines sent."""

    pipelines = 0

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        self.pipelines += 1
        return super().pipeline(*args, **kwargs)


@pytest.fixture
async def redis(servers: Servers, clean: None) -> AsyncIterator[CountingRedis]:
    client = cast(CountingRedis, CountingRedis.from_url(servers.redis_url))
    yield client
    await client.aclose()


async def test_three_hundred_concurrent_reads_each_get_their_own_reply_in_few_pipelines(
    redis: CountingRedis,
) -> None:
    await redis.mset({f"k{i}": f"v{i}" for i in range(300)})
    reads = ReadBatcher(redis)

    replies = await asyncio.gather(*(reads.call("GET", f"k{i}") for i in range(300)))

    assert replies == [f"v{i}".encode() for i in range(300)]
    assert redis.pipelines <= 4


async def test_an_error_reply_reaches_only_its_own_caller(redis: CountingRedis) -> None:
    await redis.mset({"n": "1", "text": "not a number"})
    reads = ReadBatcher(redis)

    results = await asyncio.gather(
        reads.call("INCR", "n"),
        reads.call("INCR", "text"),
        reads.call("GET", "n"),
        return_exceptions=True,
    )

    assert results[0] == 2
    assert isinstance(results[1], ResponseError)
    assert results[2] == b"2"


async def test_a_lone_read_is_sent_at_once(redis: CountingRedis) -> None:
    await redis.set("k", "v")
    assert await ReadBatcher(redis).call("GET", "k") == b"v"
    assert redis.pipelines == 1


async def test_when_redis_is_unreachable_every_caller_hears_it_and_nothing_hangs() -> None:
    nowhere = Redis(port=free_port(), socket_connect_timeout=1)
    reads = ReadBatcher(nowhere)
    try:
        results = await asyncio.wait_for(
            asyncio.gather(
                *(reads.call("GET", f"k{i}") for i in range(20)), return_exceptions=True
            ),
            timeout=10,
        )
    finally:
        await nowhere.aclose()
    assert all(isinstance(r, ConnectionError) for r in results)
