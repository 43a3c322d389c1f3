"""Backfill: a campaign created with a past start takes the events already reported.

The events gamify stored before the campaign existed are folded into it, a chunk of players at
a time, through the write path's own `fold` (same locks, same writes). Live events may arrive
meanwhile: the engine counts an event id once and its result does not depend on order, so
the two commute. The boards are rebuilt at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from gamify.boards.rebuild import rebuild
from gamify.boards.service import Boards
from gamify.engines import CompiledCampaign
from gamify.ingest import fold
from gamify.wire import EventIn

log = logging.getLogger(__name__)

PLAYERS_PER_TRANSACTION = 200
PLAYERS = """
SELECT DISTINCT player_id FROM events
WHERE tenant_id = $1 AND occurred_at BETWEEN $2 AND $3
ORDER BY player_id
"""
EVENTS = """
SELECT id, player_id, type, occurred_at, attributes FROM events
WHERE tenant_id = $1 AND player_id = ANY($2::text[]) AND occurred_at BETWEEN $3 AND $4
ORDER BY occurred_at, id
"""


async def backfill(pool: asyncpg.Pool, tenant: str, compiled: CompiledCampaign) -> int:
    """Fold every stored event inside the campaign's window; returns how many were read."""
    rules = compiled.campaign.rules
    window = (rules.starts_at, rules.ends_at + compiled.campaign.grace)
    async with pool.acquire() as conn:
        players = [r["player_id"] for r in await conn.fetch(PLAYERS, tenant, *window)]
    total = 0
    for i in range(0, len(players), PLAYERS_PER_TRANSACTION):
        chunk = players[i : i + PLAYERS_PER_TRANSACTION]
        async with pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(EVENTS, tenant, chunk, *window)
            events = [
                EventIn(r["id"], r["player_id"], r["type"], r["occurred_at"], r["attributes"])
                for r in rows
            ]
            await fold(conn, tenant, events, [[compiled]] * len(events))
        total += len(rows)
    log.info(
        "backfilled %s/%s from %d stored events of %d players",
        tenant,
        compiled.id,
        total,
        len(players),
    )
    return total


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

    async def _run(self, tenant: str, campaign: str) -> None:
        try:
            compiled = await self.boards.lookup(tenant, campaign)
            if compiled is None:
                return
            await backfill(self.pool, tenant, compiled)
            # A rebuild that started before the backfill ended may have missed some of it:
            # run one more (waiting out any that holds the lock).
            while await rebuild(self.pool, self.boards.redis, tenant, compiled) is None:
                await asyncio.sleep(0.2)
        except Exception:
            log.exception("backfill of %s/%s failed", tenant, campaign)

    async def stop(self) -> None:
        for task in list(self._running):
            task.cancel()
        for task in list(self._running):
            with contextlib.suppress(asyncio.CancelledError):
                await task
