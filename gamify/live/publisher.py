"""From the write path to the players' streams, in the background: a request never waits on it.

Committed batches queue here; one task takes everything queued, finds the players each move
passed (one pipelined read of the boards), and appends every player's messages to their stream
with one Function call each, pipelined: the call also publishes them to the player's shard
channel, where any instance holding the player's sockets hears them (see fanout.py).

One task per instance keeps a player's messages from one instance in commit order. When Redis
cannot be reached the messages are dropped, not retried: a move is news only while it is
fresh, and the REST API holds the truth the app reloads (`recovered: false` never lies,
because a message that was never appended never took a seq).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.exceptions import RedisError

from gamify.events.wire import EventResult
from gamify.live import messages, streams
from gamify.live.messages import Move, Told
from gamify.live.protocol import Message, Overtaken, encode
from gamify.platform.cancellation import stop_if_cancelled

log = logging.getLogger(__name__)

# Batches waiting beyond this mean Redis is far behind: the oldest are dropped, not hoarded.
MAX_WAITING = 10_000


class Publisher:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._waiting: list[tuple[str, Told]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.published = 0  # messages appended, for tests and the benchmark

    def committed(
        self, tenant: str, players: Sequence[str], results: Sequence[EventResult]
    ) -> None:
        """The write path's listener: queue what the batch tells its players."""
        told = messages.of_batch(tenant, players, results)
        if told.messages or told.moves:
            self._queue(tenant, told)

    def tell(self, tenant: str, player: str, message: Message) -> None:
        """Queue one message for one player (a payout, say)."""
        self._queue(tenant, Told({player: [message]}, []))

    def _queue(self, tenant: str, told: Told) -> None:
        if len(self._waiting) >= MAX_WAITING:
            del self._waiting[: MAX_WAITING // 10]
            log.warning("live messages are waiting on Redis; the oldest were dropped")
        self._waiting.append((tenant, told))
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="live-publisher")

    async def stop(self) -> None:
        """Publish what is queued, then stop."""
        if self._task is None:
            return
        task, self._task = self._task, None
        self._wake.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if self._waiting:
            await self.flush()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.flush()
            stop_if_cancelled()  # a library call may have returned after meeting it

    async def flush(self) -> None:
        taken, self._waiting = self._waiting, []
        if not taken:
            return
        try:
            await self._publish(taken)
        except RedisError:
            stop_if_cancelled()  # redis-py may turn a cancellation into a connection error
            log.warning("live messages not published: Redis unreachable", exc_info=True)
        except Exception:
            stop_if_cancelled()
            log.exception("live messages not published")

    async def _publish(self, taken: list[tuple[str, Told]]) -> None:
        by_player: dict[tuple[str, str], list[Message]] = defaultdict(list)
        moves: list[tuple[str, Move]] = []
        for tenant, told in taken:
            for player, said in told.messages.items():
                by_player[(tenant, player)] += said
            moves += [(tenant, move) for move in told.moves]
        for (tenant, player), message in await self._overtaken(moves):
            by_player[(tenant, player)].append(message)
        calls = [
            streams.push_args(tenant, player, [encode(m) for m in said])
            for (tenant, player), said in by_player.items()
            if said
        ]
        await streams.loading(self.redis, lambda: self._push(calls))
        self.published += sum(len(said) for said in by_player.values())

    async def _push(self, calls: list[list[object]]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for call in calls:
                pipe.fcall(*call)  # type: ignore[arg-type]
            await pipe.execute()

    async def _overtaken(
        self, moves: list[tuple[str, Move]]
    ) -> list[tuple[tuple[str, str], Overtaken]]:
        """The players each move passed, as they stand on the board now."""
        if not moves:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for _, move in moves:
                pipe.zrevrange(move.key, *move.passed)
            passed = await pipe.execute()
        told = []
        for (tenant, move), players in zip(moves, passed, strict=True):
            for offset, player in enumerate(players):
                message = Overtaken(
                    move.campaign, move.board, move.player, move.rank + 1 + offset, move.period
                )
                told.append(((tenant, player.decode()), message))
        return told
