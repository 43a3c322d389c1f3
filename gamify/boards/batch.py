"""Concurrent Redis reads share pipelines.

redis-py spends several times more CPU on a lone command (connection checkout, timeouts,
retries) than on one more command in a pipeline, and around-me is one command a request. So
reads queue here, and at most `parallel` pipelines are in flight: an idle server sends a lone
read at once, while under load each pipeline carries everything that queued behind the last.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis

MAX_PER_PIPELINE = 256


class ReadBatcher:
    def __init__(self, redis: Redis, parallel: int = 2) -> None:
        self.redis = redis
        self.parallel = parallel
        self._queue: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()  # the loop keeps only weak references

    async def call(self, *command: Any) -> Any:
        """The reply to `command` (raw, as `execute_command` gives it); raises its error."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((command, future))
        if self._running < self.parallel:
            self._running += 1
            task = loop.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._queue[:MAX_PER_PIPELINE]
                del self._queue[:MAX_PER_PIPELINE]
                await self._send(batch)
        finally:
            self._running -= 1

    async def _send(self, batch: list[tuple[tuple[Any, ...], asyncio.Future[Any]]]) -> None:
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for command, _ in batch:
                    pipe.execute_command(*command)
                replies = await pipe.execute(raise_on_error=False)
        except Exception as exc:  # the connection failed: every caller in the batch hears it
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), reply in zip(batch, replies, strict=True):
            if future.done():  # its caller went away
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)
