"""Backfill: a campaign created with a past start takes the events already reported.

The events gamify stored before the campaign existed are folded into it, a chunk of players at
a time, through the write path's own `fold` (same locks, same writes). Live events may arrive
meanwhile: the engine counts an event id once and its result does not depend on order, so
the two commute. The boards are rebuilt at the end.

The work owed is in the campaign row (`backfill_pending`, `backfill_after`), so a backfill
outlives its instance: each chunk locks the row, reads where the last chunk stopped, folds the
next players and moves the mark in the same transaction. Two instances resuming the same
campaign therefore take turns, and no chunk is folded twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg
import stamina

from gamify.boards.rebuild import rebuild_here
from gamify.boards.service import Boards
from gamify.campaigns.compiled import CompiledCampaign
from gamify.events import store
from gamify.events.folding import fold
from gamify.events.wire import EventIn
from gamify.platform.cancellation import cancelling, stop_if_cancelled

log = logging.getLogger(__name__)

PLAYERS_PER_TRANSACTION = 200
RETRIES = 3  # after about 1, 5 and 25 s


async def backfill(pool: asyncpg.Pool, tenant: str, compiled: CompiledCampaign) -> int:
    """Fold the stored events the campaign still owes; returns how many this call folded."""
    total = 0
    while (folded := await _next_chunk(pool, tenant, compiled)) is not None:
        total += folded
        stop_if_cancelled()
    log.info("backfilled %s/%s: %d stored events folded here", tenant, compiled.id, total)
    return total


async def _next_chunk(pool: asyncpg.Pool, tenant: str, compiled: CompiledCampaign) -> int | None:
    """Fold the next chunk of players; None once nothing is owed."""
    rules = compiled.campaign.rules
    window = (rules.starts_at, rules.ends_at + compiled.campaign.grace)
    async with pool.acquire() as conn, conn.transaction():
        after = await store.claim_backfill(conn, tenant, compiled.id)
        if after is None:
            return None  # finished, here or by another instance
        players = await store.players_between(conn, tenant, *window, after, PLAYERS_PER_TRANSACTION)
        if not players:
            await store.finish_backfill(conn, tenant, compiled.id)
            return 0
        events = [
            EventIn(e.id, e.player, e.type, e.occurred_at, e.attributes)
            for e in await store.events_of(conn, tenant, players, *window)
        ]
        await fold(conn, tenant, events, [[compiled]] * len(events), by_backfill=True)
        await store.advance_backfill(conn, tenant, compiled.id, players[-1])
    return len(events)


class Backfills:
    """Backfills running in this instance, each followed by a rebuild of the boards."""

    def __init__(self, pool: asyncpg.Pool, boards: Boards) -> None:
        self.pool = pool
        self.boards = boards
        self._running: set[asyncio.Task[None]] = set()

    def start(self, tenant: str, campaign: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(self._run(tenant, campaign))
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return task

    async def resume(self) -> None:
        """Start every backfill still owed (an instance stopped, or failed, in the middle)."""
        async with self.pool.acquire() as conn:
            pending = await store.pending_backfills(conn)
        for tenant, campaign in pending:
            self.start(tenant, campaign)

    async def _run(self, tenant: str, campaign: str) -> None:
        try:
            async for attempt in stamina.retry_context(
                on=_worth_retrying,
                attempts=RETRIES + 1,
                timeout=None,
                wait_initial=1.0,
                wait_exp_base=5,
                wait_max=30.0,
            ):
                with attempt:
                    await self._once(tenant, campaign)
        except Exception:
            stop_if_cancelled()
            # Still owed in the database: the next instance to start takes it up again.
            log.exception("backfill of %s/%s failed; left to the next start", tenant, campaign)

    async def _once(self, tenant: str, campaign: str) -> None:
        compiled = await self.boards.lookup(tenant, campaign)
        if compiled is None:
            return
        await backfill(self.pool, tenant, compiled)
        # A rebuild that started before the backfill ended may have missed some of it:
        # run one more (waiting out any that holds the lock).
        await rebuild_here(self.pool, self.boards.redis, tenant, compiled)

    async def stop(self) -> None:
        for task in list(self._running):
            task.cancel()
        for task in list(self._running):
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _worth_retrying(error: Exception) -> bool:
    # A library may turn the cancellation of a stopping instance into another error.
    if cancelling():
        return False
    log.warning("backfill chunk failed; retrying", exc_info=error)
    return True
