"""Players: created on their first event, named and described by the partner; their
standing in each campaign for the profile."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from gamify.platform.db import Conn

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


async def upsert(
    conn: Conn, tenant: str, player: str, display_name: str | None, metadata: dict[str, Any]
) -> PlayerRow:
    record = await conn.fetchrow(UPSERT, tenant, player, display_name, metadata)
    assert record is not None
    return PlayerRow(**dict(record))


async def get(conn: Conn, tenant: str, player: str) -> PlayerRow | None:
    record = await conn.fetchrow(GET, tenant, player)
    return PlayerRow(**dict(record)) if record is not None else None


PROFILE = """
SELECT p.campaign_id, p.state, p.score, c.version, c.document, c.score_bits
FROM progress p JOIN campaigns c ON c.tenant_id = p.tenant_id AND c.id = p.campaign_id
WHERE p.tenant_id = $1 AND p.player_id = $2
ORDER BY p.campaign_id
"""
# By campaign as well: the primary key leads (tenant, campaign, player), and without the
# campaign a server older than PostgreSQL 18 (no skip scans) reads every award of the tenant.
HELD = """
SELECT campaign_id, badge_id, awarded_at FROM awards
WHERE tenant_id = $1 AND campaign_id = ANY($3::text[]) AND player_id = $2
ORDER BY campaign_id, awarded_at, badge_id
"""


class PlayerCampaign(msgspec.Struct, frozen=True):
    campaign: str
    version: int
    document: dict[str, Any]
    score_bits: int
    state: bytes
    score: int


class HeldAward(msgspec.Struct, frozen=True):
    campaign: str
    badge: str
    awarded_at: datetime


async def of_player(conn: Conn, tenant: str, player: str) -> list[PlayerCampaign]:
    rows = await conn.fetch(PROFILE, tenant, player)
    return [
        PlayerCampaign(
            r["campaign_id"],
            r["version"],
            r["document"],
            r["score_bits"],
            bytes(r["state"]),
            r["score"],
        )
        for r in rows
    ]


async def held(conn: Conn, tenant: str, player: str, campaigns: list[str]) -> list[HeldAward]:
    """The badges `player` holds in `campaigns`."""
    rows = await conn.fetch(HELD, tenant, player, campaigns)
    return [HeldAward(r["campaign_id"], r["badge_id"], r["awarded_at"]) for r in rows]
