"""The SQL of the dashboard: the stored events a simulation replays, the credits waiting to be
delivered (the outbox depth `/metrics` shows), and what the campaign pages chart: badges held,
awards and active players per local day."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
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
# The badges some players of a campaign hold, through the awards' primary key.
HELD = """
SELECT player_id, badge_id, awarded_at FROM awards
WHERE tenant_id = $1 AND campaign_id = $2 AND player_id = ANY($3::text[])
ORDER BY player_id, awarded_at, badge_id COLLATE "C"
"""
# Local days are bucketed by their first instants ($3, from Python's zoneinfo, as the engine
# and the window boards count days): Postgres's own time zone names may lag Python's tzdata.
# width_bucket gives 1 for the first day; what falls after the last day's end is left out.
AWARDS_BY_DAY = """
SELECT badge_id, width_bucket(awarded_at, $3::timestamptz[]) AS day, count(*) AS awarded
FROM awards
WHERE tenant_id = $1 AND campaign_id = $2
  AND awarded_at >= ($3::timestamptz[])[1] AND awarded_at < ($3::timestamptz[])[cardinality($3)]
GROUP BY badge_id, day
"""
# Every player with a progress row: one with an event in the campaign's period.
PARTICIPANTS = "SELECT count(*) FROM progress WHERE tenant_id = $1 AND campaign_id = $2"
ACTIVE_BY_DAY = """
SELECT width_bucket(occurred_at, $2::timestamptz[]) AS day,
       count(DISTINCT player_id) AS players, count(*) AS events
FROM events
WHERE tenant_id = $1 AND occurred_at >= $3 AND occurred_at <= $4
  AND occurred_at >= ($2::timestamptz[])[1] AND occurred_at < ($2::timestamptz[])[cardinality($2)]
GROUP BY day
"""


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


async def held_badges(
    conn: Conn, tenant: str, campaign: str, players: Sequence[str]
) -> dict[str, list[tuple[str, datetime]]]:
    """(badge, awarded_at) of each player holding any, oldest first."""
    held: dict[str, list[tuple[str, datetime]]] = {}
    for row in await conn.fetch(HELD, tenant, campaign, list(players)):
        held.setdefault(row["player_id"], []).append((row["badge_id"], row["awarded_at"]))
    return held


async def awards_by_day(
    conn: Conn, tenant: str, campaign: str, day_starts: Sequence[datetime]
) -> list[tuple[str, int, int]]:
    """(badge, day, awards) where `day` indexes the days whose first instants `day_starts`
    lists (0 for the first; the last entry ends the last day)."""
    rows = await conn.fetch(AWARDS_BY_DAY, tenant, campaign, list(day_starts))
    return [(row["badge_id"], row["day"] - 1, row["awarded"]) for row in rows]


async def participants(conn: Conn, tenant: str, campaign: str) -> int:
    found: int = await conn.fetchval(PARTICIPANTS, tenant, campaign)
    return found


async def active_by_day(
    conn: Conn, tenant: str, start: datetime, end: datetime, day_starts: Sequence[datetime]
) -> dict[int, tuple[int, int]]:
    """Players and events of the tenant's events in [start, end], by day as in awards_by_day."""
    rows = await conn.fetch(ACTIVE_BY_DAY, tenant, list(day_starts), start, end)
    return {row["day"] - 1: (row["players"], row["events"]) for row in rows}
