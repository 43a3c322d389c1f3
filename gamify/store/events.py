"""Events: stored once per (tenant, id); a replay is answered from what the first one earned."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from gamify.db import Conn

# A batch travels as one JSON array: Postgres parses it far faster than asyncpg encodes a
# dozen parallel arrays element by element. New players first, then the events; both sorted,
# so that two requests carrying the same ids wait on each other instead of deadlocking.
INSERT = """
WITH input AS (
    SELECT * FROM json_to_recordset($2::text::json)
        AS e (id text, player text, type text, occurred_at timestamptz, attributes jsonb,
              hash text)
), new_players AS (
    INSERT INTO players (tenant_id, id)
    SELECT $1, player FROM input GROUP BY player ORDER BY player
    ON CONFLICT (tenant_id, id) DO NOTHING
)
INSERT INTO events (tenant_id, id, player_id, type, occurred_at, attributes, payload_hash)
SELECT $1, id, player, type, occurred_at, attributes, decode(hash, 'base64')
FROM input ORDER BY id
ON CONFLICT (tenant_id, id) DO NOTHING
RETURNING id
"""
STORED = """
SELECT e.id, e.payload_hash,
       coalesce(jsonb_agg(jsonb_build_object('campaign', a.campaign_id, 'badge', a.badge_id,
                                             'awarded_at', a.first_awarded_at)
                          ORDER BY a.campaign_id, a.first_awarded_at, a.badge_id)
                FILTER (WHERE a.badge_id IS NOT NULL), '[]') AS awards
FROM events e
LEFT JOIN awards a ON a.tenant_id = e.tenant_id AND a.event_id = e.id
WHERE e.tenant_id = $1 AND e.id = ANY($2::text[])
GROUP BY e.id, e.payload_hash
"""


class NewEvent(msgspec.Struct, frozen=True):
    id: str
    player: str
    type: str
    occurred_at: datetime
    attributes: dict[str, Any]
    hash: bytes


class StoredEvent(msgspec.Struct, frozen=True):
    id: str
    payload_hash: bytes
    awards: list[dict[str, Any]]


async def insert(conn: Conn, tenant: str, events: list[NewEvent]) -> set[str]:
    """Insert what is new (and its new players); returns the ids this call inserted."""
    rows = await conn.fetch(INSERT, tenant, msgspec.json.encode(events).decode())
    return {row["id"] for row in rows}


async def stored(conn: Conn, tenant: str, ids: list[str]) -> dict[str, StoredEvent]:
    """Events already stored, with the awards their own arrival granted."""
    rows = await conn.fetch(STORED, tenant, ids)
    return {r["id"]: StoredEvent(r["id"], bytes(r["payload_hash"]), r["awards"]) for r in rows}
