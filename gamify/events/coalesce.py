"""Coalescing: the events of concurrent requests share transactions.

A transaction costs about ten round trips to Postgres whatever its size, and on this kind of
machine a round trip (syscalls on both ends) costs more than folding an event. So requests
queue their events here; a flusher takes everything queued, runs one `ingest` per tenant, and
hands each request its own results. An idle server flushes a lone request at once, so nothing
waits for a timer; under load, batches grow by themselves.

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
        self.parallel = max(1, parallel)
        self.clock = clock
        self._queue: list[_Pending] = []
        self._flushing = 0
        self._tasks: set[asyncio.Task[None]] = set()  # the loop keeps only weak references
        self._listeners: list[Listener] = []

    def on_committed(self, listener: Listener) -> None:
        """`listener` hears every committed group once its results carry their ranks. It must
        not block: the requests of the group wait for it (live push only queues)."""
        self._listeners.append(listener)

    async def submit(self, tenant: str, events: list[EventIn]) -> list[EventResult]:
        pending = _Pending(tenant, events)
        self._queue.append(pending)
        if self._flushing < self.parallel:
            self._flushing += 1
            task = asyncio.get_running_loop().create_task(self._flush())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await pending.future

    async def _flush(self) -> None:
        try:
            while self._queue:
                taken = self._take()
                by_tenant: dict[str, list[_Pending]] = defaultdict(list)
                for pending in taken:
                    by_tenant[pending.tenant].append(pending)
                await asyncio.gather(*(self._run_group(t, group) for t, group in by_tenant.items()))
        finally:
            self._flushing -= 1

    def _take(self) -> list[_Pending]:
        taken: list[_Pending] = []
        count = 0
        while self._queue and (
            not taken or count + len(self._queue[0].events) <= MAX_EVENTS_PER_FLUSH
        ):
            pending = self._queue.pop(0)
            taken.append(pending)
            count += len(pending.events)
        return taken

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
