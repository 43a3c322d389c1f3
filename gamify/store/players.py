"""Players: created on their first event, named and described by the partner."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from gamify.db import Conn

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


NAMES = "SELECT id, display_name FROM players WHERE tenant_id = $1 AND id = ANY($2::text[])"


class PlayerRow(msgspec.Struct, frozen=True):
    id: str
    display_name: str | None
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


async def upsert(
    conn: Conn, tenant: str, player: str, display_name: str | None, metadata: dict[str, Any]
) -> PlayerRow:
    record = await conn.fetchrow(UPSERT, tenant, player, display_name, metadata)
    assert record is not None
    return PlayerRow(**dict(record))


async def get(conn: Conn, tenant: str, player: str) -> PlayerRow | None:
    record = await conn.fetchrow(GET, tenant, player)
    return PlayerRow(**dict(record)) if record is not None else None


async def display_names(conn: Conn, tenant: str, ids: list[str]) -> dict[str, str | None]:
    return {r["id"]: r["display_name"] for r in await conn.fetch(NAMES, tenant, ids)}
