"""Events: stored once per (tenant, id), with what they earned."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from gamify.db import Conn

# Sorted by id so that two requests carrying the same ids wait on each other, not deadlock.
INSERT = """
INSERT INTO events (tenant_id, id, player_id, type, occurred_at, attributes, payload_hash)
SELECT $1, e.id, e.player, e.type, e.occurred_at, e.attributes, e.hash
FROM unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::jsonb[], $7::bytea[])
     AS e (id, player, type, occurred_at, attributes, hash)
ORDER BY e.id
ON CONFLICT (tenant_id, id) DO NOTHING
RETURNING id
"""
STORED = """
SELECT id, payload_hash, awards FROM events WHERE tenant_id = $1 AND id = ANY($2::text[])
"""
SET_AWARDS = """
UPDATE events SET awards = a.awards::jsonb
FROM unnest($2::text[], $3::text[]) AS a (id, awards)
WHERE events.tenant_id = $1 AND events.id = a.id
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
    """Insert what is new; returns the ids this call inserted (the others existed)."""
    rows = await conn.fetch(
        INSERT,
        tenant,
        [e.id for e in events],
        [e.player for e in events],
        [e.type for e in events],
        [e.occurred_at for e in events],
        [e.attributes for e in events],
        [e.payload_hash for e in events],
    )
    return {row["id"] for row in rows}


async def stored(conn: Conn, tenant: str, ids: list[str]) -> dict[str, StoredEvent]:
    rows = await conn.fetch(STORED, tenant, ids)
    return {r["id"]: StoredEvent(r["id"], bytes(r["payload_hash"]), r["awards"]) for r in rows}


async def set_awards(conn: Conn, tenant: str, awards: dict[str, list[dict[str, Any]]]) -> None:
    if awards:
        # As JSON text: asyncpg would read a list of lists as a two-dimensional array.
        encoded = [msgspec.json.encode(a).decode() for a in awards.values()]
        await conn.execute(SET_AWARDS, tenant, list(awards), encoded)
