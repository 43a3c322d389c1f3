"""Players: created on their first event, named and described by the partner."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from gamify.db import Conn

ENSURE = """
INSERT INTO players (tenant_id, id)
SELECT $1, player FROM unnest($2::text[]) AS player ORDER BY player
ON CONFLICT (tenant_id, id) DO NOTHING
"""
UPSERT = """
INSERT INTO players (tenant_id, id, display_name, metadata) VALUES ($1, $2, $3, $4)
ON CONFLICT (tenant_id, id) DO UPDATE
SET display_name = EXCLUDED.display_name, metadata = EXCLUDED.metadata, updated_at = now()
RETURNING id, display_name, metadata, created_at, updated_at
"""
GET = """
SELECT id, display_name, metadata, created_at, updated_at FROM players
WHERE tenant_id = $1 AND id = $2
"""


class PlayerRow(msgspec.Struct, frozen=True):
    id: str
    display_name: str | None
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


async def ensure(conn: Conn, tenant: str, players: list[str]) -> None:
    """Create the players not seen before (sorted, so concurrent writers never deadlock)."""
    await conn.execute(ENSURE, tenant, sorted(set(players)))


async def upsert(
    conn: Conn, tenant: str, player: str, display_name: str | None, metadata: dict[str, Any]
) -> PlayerRow:
    record = await conn.fetchrow(UPSERT, tenant, player, display_name, metadata)
    assert record is not None
    return PlayerRow(**dict(record))


async def get(conn: Conn, tenant: str, player: str) -> PlayerRow | None:
    record = await conn.fetchrow(GET, tenant, player)
    return PlayerRow(**dict(record)) if record is not None else None
