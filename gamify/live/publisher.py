"""From the write path to the players' streams, in the background: a request never waits on it.

Committed batches queue here; one task takes everything queued, finds the players each move
passed (one pipelined read of the boards), and appends every player's messages to their stream
with one Function call each, pipelined: the call also publishes them to the player's shard
channel, where any instance holding the player's sockets hears them (see fanout.py).

Only the streams of a tenant's audience are written: the players who listened to `me` within
the streams' retention, the only ones who can ever read or resume them. Who else a batch tells
costs one pipelined read, so a write path without sockets pays next to nothing here.

One task per instance keeps a player's messages from one instance in commit order. When Redis
cannot be reached the messages are dropped, not retried: a move is news only while it is
fresh, and the REST API holds the truth the app reloads (`recovered: false` never lies,
because a message that was never appended never took a seq).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Sequence

import msgspec
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


class Listening(msgspec.Struct):
    players: set[tuple[str, str]]  # (tenant, player) in the audience
    tenants: set[str]  # tenants with an audience


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
        # Only the audience's streams are written: no one else can ever read them.
        listening = await self._listening(list(by_player), {tenant for tenant, _ in moves})
        passed = await self._overtaken([(t, m) for t, m in moves if t in listening.tenants])
        if passed:
            listening.players |= (await self._listening([key for key, _ in passed], set())).players
        for key, message in passed:
            by_player[key].append(message)
        kept = {key: said for key, said in by_player.items() if said and key in listening.players}
        calls = [
            streams.push_args(tenant, player, [encode(m) for m in said])
            for (tenant, player), said in kept.items()
        ]
        if calls:
            await streams.loading(self.redis, lambda: self._push(calls))
        self.published += sum(len(said) for said in kept.values())

    async def _listening(self, players: list[tuple[str, str]], tenants: set[str]) -> Listening:
        """Which of `players` are in their tenant's audience, and which of `tenants` have one."""
        by_tenant: dict[str, list[str]] = defaultdict(list)
        for tenant, player in players:
            by_tenant[tenant].append(player)
        if not by_tenant and not tenants:
            return Listening(set(), set())
        since = time.time() - streams.RETENTION_SECONDS
        async with self.redis.pipeline(transaction=False) as pipe:
            for tenant, members in by_tenant.items():
                pipe.zmscore(streams.audience(tenant), members)
            for tenant in tenants:
                pipe.zcount(streams.audience(tenant), since, "+inf")
            replies = await pipe.execute()
        found = Listening(set(), set())
        for (tenant, members), scores in zip(by_tenant.items(), replies, strict=False):
            found.players.update(
                (tenant, player)
                for player, score in zip(members, scores, strict=True)
                if score is not None and score >= since
            )
        for tenant, count in zip(tenants, replies[len(by_tenant) :], strict=True):
            if count:
                found.tenants.add(tenant)
        return found

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
