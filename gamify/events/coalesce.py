"""Coalescing: the events of concurrent requests share transactions.

A transaction costs about ten round trips to Postgres whatever its size, and on this kind of
machine a round trip (syscalls on both ends) costs more than folding an event. So requests
queue their events here; a flusher takes everything queued, runs one `ingest` per tenant, and
hands each request its own results. An idle server flushes a lone request at once, so nothing
waits for a timer; under load, batches grow by themselves.

Events are queued in lanes by player, each flushed one transaction at a time: transactions
that shared players would lock the same rows and run one after the other anyway, holding a
connection while they wait.

If a shared transaction fails, each of its requests is retried alone, so that one request's
failure can never become another's.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

import asyncpg
import stamina

from gamify.boards.writer import BoardWriter
from gamify.campaigns.compiled import EngineCache
from gamify.events.ingest import Outcome, ingest
from gamify.events.ranking import ranked
from gamify.events.wire import EventIn, EventResult

log = logging.getLogger(__name__)

MAX_EVENTS_PER_FLUSH = 2000
RETRIES = 3
_RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)

# Hears each committed group: its tenant, then each result's player and the ranked result.
Listener = Callable[[str, Sequence[str], Sequence[EventResult]], None]


class _Pending:
    __slots__ = ("events", "future", "tenant")

    def __init__(self, tenant: str, events: list[EventIn]) -> None:
        self.tenant = tenant
        self.events = events
        self.future: asyncio.Future[list[EventResult]] = asyncio.get_running_loop().create_future()


class _Lane:
    """The queued events of one share of the players, flushed one transaction at a time: two
    transactions of this process never wait on each other's player rows, so while one waits on
    Postgres another folds."""

    __slots__ = ("flushing", "queue")

    def __init__(self) -> None:
        self.queue: list[_Pending] = []
        self.flushing = False


class Coalescer:
    def __init__(
        self,
        pool: asyncpg.Pool,
        engines: EngineCache,
        boards: BoardWriter,
        parallel: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.pool = pool
        self.engines = engines
        self.boards = boards
        self.clock = clock
        self._lanes = [_Lane() for _ in range(max(1, parallel))]
        self._tasks: set[asyncio.Task[None]] = set()  # the loop keeps only weak references
        self._listeners: list[Listener] = []

    def on_committed(self, listener: Listener) -> None:
        """`listener` hears every committed group once its results carry their ranks. It must
        not block: the requests of the group wait for it (live push only queues)."""
        self._listeners.append(listener)

    async def submit(self, tenant: str, events: list[EventIn]) -> list[EventResult]:
        """The results of `events`, in order. A request whose players fall in several lanes is
        committed lane by lane; a replay of it answers each part as its first arrival did."""
        parts = self._route(events)
        if len(parts) == 1:
            [lane] = parts
            return await self._submit(self._lanes[lane], tenant, events)
        answers = await asyncio.gather(
            *(
                self._submit(self._lanes[lane], tenant, [events[i] for i in indexes])
                for lane, indexes in parts.items()
            )
        )
        results: list[EventResult | None] = [None] * len(events)
        for indexes, answer in zip(parts.values(), answers, strict=True):
            for i, result in zip(indexes, answer, strict=True):
                results[i] = result
        return [r for r in results if r is not None]

    def _route(self, events: list[EventIn]) -> dict[int, list[int]]:
        """Event indexes per lane: by player, but every occurrence of an id goes where its
        first went, so that one transaction settles which occurrence counts."""
        count = len(self._lanes)
        lane_of_id: dict[str, int] = {}
        parts: dict[int, list[int]] = defaultdict(list)
        for i, event in enumerate(events):
            lane = lane_of_id.get(event.id)
            if lane is None:
                lane = lane_of_id[event.id] = hash(event.player) % count
            parts[lane].append(i)
        return parts

    async def _submit(self, lane: _Lane, tenant: str, events: list[EventIn]) -> list[EventResult]:
        pending = _Pending(tenant, events)
        lane.queue.append(pending)
        if not lane.flushing:
            lane.flushing = True
            task = asyncio.get_running_loop().create_task(self._flush(lane))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await pending.future

    async def _flush(self, lane: _Lane) -> None:
        try:
            while lane.queue:
                taken = _take(lane.queue)
                by_tenant: dict[str, list[_Pending]] = defaultdict(list)
                for pending in taken:
                    by_tenant[pending.tenant].append(pending)
                await asyncio.gather(*(self._run_group(t, group) for t, group in by_tenant.items()))
        finally:
            lane.flushing = False

    async def _run_group(self, tenant: str, group: list[_Pending]) -> None:
        events = [event for pending in group for event in pending.events]
        try:
            results = await self._ingest(tenant, events)
        except Exception as exc:
            if len(group) == 1:
                if not group[0].future.done():
                    group[0].future.set_exception(exc)
                return
            log.warning(
                "a shared transaction of %d requests failed; retrying each alone",
                len(group),
                exc_info=True,
            )
            await asyncio.gather(*(self._run_group(tenant, [pending]) for pending in group))
            return
        offset = 0
        for pending in group:
            count = len(pending.events)
            if not pending.future.done():
                pending.future.set_result(results[offset : offset + count])
            offset += count

    async def _ingest(self, tenant: str, events: list[EventIn]) -> list[EventResult]:
        outcome = await _retrying(lambda: self._once(tenant, events))
        # Committed: Redis comes after, once for the whole group, and cannot undo anything.
        # Nor may its failure be taken for the transaction's: a request retried now would
        # find its own events stored and answer them as duplicates.
        try:
            results = await ranked(self.boards, tenant, outcome)
        except Exception:
            log.exception("ranking a committed group failed; answering without ranks")
            results = outcome.results
        for listener in self._listeners:
            try:
                listener(tenant, outcome.players, results)
            except Exception:
                log.exception("a listener of committed events failed")
        return results

    async def _once(self, tenant: str, events: list[EventIn]) -> Outcome:
        async with self.pool.acquire() as conn:
            return await ingest(conn, tenant, events, self.engines, self.clock())


def _take(queue: list[_Pending]) -> list[_Pending]:
    taken: list[_Pending] = []
    count = 0
    while queue and (not taken or count + len(queue[0].events) <= MAX_EVENTS_PER_FLUSH):
        pending = queue.pop(0)
        taken.append(pending)
        count += len(pending.events)
    return taken


async def _retrying(attempt: Callable[[], Awaitable[Outcome]]) -> Outcome:
    """`attempt()`, retried on a deadlock or serialization failure with a short backoff.

    stamina takes over only after a first conflict: a retry context costs about 40 us, a
    tenth of a single-event request, and the first attempt almost always succeeds.
    """
    try:
        return await attempt()
    except _RETRYABLE:
        log.info("write path conflict, retrying")
    async for retry in stamina.retry_context(
        on=_RETRYABLE, attempts=RETRIES - 1, wait_initial=0.01, wait_max=0.1, wait_jitter=0.01
    ):
        with retry:
            return await attempt()
    raise AssertionError("unreachable: the last attempt returns or raises")
