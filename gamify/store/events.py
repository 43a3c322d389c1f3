"""Events: stored once per (tenant, id); a replay is answered from what the first one earned."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from gamify.db import Conn

# New players first (the events reference them), then the events; both sorted so that two
# requests carrying the same ids wait on each other instead of deadlocking. Attributes travel
# as JSON text: cheaper to encode than asyncpg's per-element jsonb codec.
INSERT = """
WITH new_players AS (
    INSERT INTO players (tenant_id, id)
    SELECT $1, player FROM unnest($3::text[]) AS player GROUP BY player ORDER BY player
    ON CONFLICT (tenant_id, id) DO NOTHING
)
INSERT INTO events (tenant_id, id, player_id, type, occurred_at, attributes, payload_hash)
SELECT $1, e.id, e.player, e.type, e.occurred_at, e.attributes::jsonb, e.hash
FROM unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[], $7::bytea[])
     AS e (id, player, type, occurred_at, attributes, hash)
ORDER BY e.id
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
    payload_hash: bytes


class StoredEvent(msgspec.Struct, frozen=True):
    id: str
    payload_hash: bytes
    awards: list[dict[str, Any]]


async def insert(conn: Conn, tenant: str, events: list[NewEvent]) -> set[str]:
    """Insert what is new (and its new players); returns the ids this call inserted."""
    rows = await conn.fetch(
        INSERT,
        tenant,
        [e.id for e in events],
        [e.player for e in events],
        [e.type for e in events],
        [e.occurred_at for e in events],
        [msgspec.json.encode(e.attributes).decode() for e in events],
        [e.payload_hash for e in events],
    )
    return {row["id"] for row in rows}


async def stored(conn: Conn, tenant: str, ids: list[str]) -> dict[str, StoredEvent]:
    """Events already stored, with the awards their own arrival granted."""
    rows = await conn.fetch(STORED, tenant, ids)
    return {r["id"]: StoredEvent(r["id"], bytes(r["payload_hash"]), r["awards"]) for r in rows}
