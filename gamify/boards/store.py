"""What the boards read from Postgres: scores to rebuild and replay, and display names.

Scores are encoded in SQL (see boards.encoding) so that a rebuild only forwards them. The
display names are the players' own rows: board entries show them, and the boards sit below
the players package, so they read them here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import asyncpg

from gamify.platform.db import Conn

# $3 = campaign start, $4 = time bits; t is clamped to [0, 2^bits - 1] as in encoding.encode.
ENCODED = """
(score << $4) + ((1::bigint << $4) - 1 - least(greatest(
    coalesce(floor(extract(epoch FROM reached_at - $3::timestamptz))::bigint, 0), 0),
    (1::bigint << $4) - 1)) AS encoded
"""
CAMPAIGN_ROWS = f"""
SELECT player_id, {ENCODED} FROM progress
WHERE tenant_id = $1 AND campaign_id = $2 AND score > 0 AND score < (1::bigint << (53 - $4))
"""
WINDOW_ROWS = f"""
SELECT board, period, player_id, {ENCODED} FROM window_scores
WHERE tenant_id = $1 AND campaign_id = $2 AND score > 0 AND score < (1::bigint << (53 - $4))
"""
OVERFLOWING = """
SELECT count(*) FROM progress
WHERE tenant_id = $1 AND campaign_id = $2 AND score >= (1::bigint << (53 - $3))
"""
# Campaign and window scores in one stream: the campaign board's rows as board 'campaign'.
CHANGED = """
SELECT tenant_id, campaign_id, 'campaign' AS board, NULL::date AS period, player_id, score,
       reached_at
FROM progress WHERE updated_at > $1 AND score > 0
UNION ALL
SELECT tenant_id, campaign_id, board, period, player_id, score, reached_at
FROM window_scores WHERE updated_at > $1
"""
NAMES = "SELECT id, display_name FROM players WHERE tenant_id = $1 AND id = ANY($2::text[])"


async def overflowing(pool: asyncpg.Pool, tenant: str, campaign: str, bits: int) -> int:
    """How many players have more points than the campaign's boards can rank exactly."""
    count: int = await pool.fetchval(OVERFLOWING, tenant, campaign, bits)
    return count


async def changed_since(
    conn: Conn, since: datetime, chunk: int
) -> AsyncIterator[list[asyncpg.Record]]:
    """Campaign and window scores written after `since`, `chunk` rows at a time (inside a
    transaction: the rows come from a server-side cursor)."""
    cursor = await conn.cursor(CHANGED, since)
    while rows := await cursor.fetch(chunk):
        yield rows


async def display_names(conn: Conn, tenant: str, ids: list[str]) -> dict[str, str | None]:
    return {r["id"]: r["display_name"] for r in await conn.fetch(NAMES, tenant, ids)}
