"""The SQL of the dashboard: the stored events a simulation replays, and the credits waiting to
be delivered (the outbox depth `/metrics` shows)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import asyncpg

import badges
from gamify.platform.db import Conn

# At most $4 events of the period, counted: a period over the limit is told at once, without
# counting all of it.
COUNT = """
SELECT count(*) FROM (
    SELECT 1 FROM events
    WHERE tenant_id = $1 AND occurred_at >= $2 AND occurred_at <= $3
    LIMIT $4
) AS taken
"""
# One player after the other, each in the engine's fold order (occurred_at, then the id compared
# as Python compares strings: byte-wise). Player ids in the index's order, so the scan of
# events_player (tenant_id, player_id, occurred_at) needs no sort of the whole period.
STREAM = """
SELECT player_id, id, type, occurred_at, attributes FROM events
WHERE tenant_id = $1 AND occurred_at >= $2 AND occurred_at <= $3
ORDER BY player_id, occurred_at, id COLLATE "C"
"""
# The partial index payouts_due holds exactly the pending credits.
PENDING_CREDITS = "SELECT count(*) FROM payouts WHERE status = 'pending'"


async def count_events(conn: Conn, tenant: str, start: datetime, end: datetime, most: int) -> int:
    """The tenant's events in [start, end], counted up to `most`."""
    found: int = await conn.fetchval(COUNT, tenant, start, end, most)
    return found


async def events_by_player(
    conn: Conn, tenant: str, start: datetime, end: datetime, chunk: int
) -> AsyncIterator[tuple[str, list[badges.Event]]]:
    """The tenant's events in [start, end] as (player, up to `chunk` of their events), one
    player after the other, through a server-side cursor: memory holds one chunk, however long
    the period. Must run inside a transaction (a cursor lives in one)."""
    player: str | None = None
    taken: list[badges.Event] = []
    async for row in conn.cursor(STREAM, tenant, start, end, prefetch=chunk):
        if row["player_id"] != player or len(taken) >= chunk:
            if player is not None:
                yield player, taken
            player, taken = row["player_id"], []
        taken.append(badges.Event(row["id"], row["type"], row["occurred_at"], row["attributes"]))
    if player is not None:
        yield player, taken


async def pending_credits(pool: asyncpg.Pool) -> int:
    """Credits not yet delivered (nor failed for good)."""
    async with pool.acquire() as conn:
        found: int = await conn.fetchval(PENDING_CREDITS)
    return found
