"""Campaigns: their documents and what the write path needs to know of them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import asyncpg
import msgspec

from gamify.campaigns.document import Campaign, Status
from gamify.platform.db import Conn
from gamify.tenants import audit

# One advisory lock per tenant orders campaign changes against the write path: every write
# transaction holds it shared from its first statement (events.store.INSERT) and reads the
# open campaigns after that; creating or re-timing a campaign takes it exclusively. So an event
# is either folded by its own transaction (which then sees the campaign) or committed before
# the campaign is, where the backfill finds it; and rules never change under a fold.
TENANT_GUARD = "hashtextextended('gamify.campaigns:' || $1, 0)"
GUARD_EXCLUSIVE = f"SELECT pg_advisory_xact_lock({TENANT_GUARD})"
# Events may arrive this much before their time (events.ingest.FUTURE_TOLERANCE), so a campaign
# starting within it may already have missed some: the backfill owes them too.
EARLY = "interval '5 minutes'"

COLUMNS = """
id, name, document, version, starts_at, ends_at, grace, cancelled_at, created_at, updated_at,
backfill_pending, score_bits, closes_at, settling_since, settled_at, pool_eligible, pool_allocated
"""
# A start in the past means events already stored may count: the backfill owes them.
INSERT = f"""
INSERT INTO campaigns
    (tenant_id, id, name, starts_at, ends_at, timezone, grace, document, score_bits, closes_at,
     backfill_pending)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $5::timestamptz + $7::interval,
        $4::timestamptz < now() + {EARLY})
ON CONFLICT (tenant_id, id) DO NOTHING
RETURNING {COLUMNS}
"""
GET = f"SELECT {COLUMNS} FROM campaigns WHERE tenant_id = $1 AND id = $2"
GET_FOR_UPDATE = GET + " FOR UPDATE"
LIST = f"""
SELECT {COLUMNS} FROM campaigns
WHERE tenant_id = $1 AND id > $2
ORDER BY id LIMIT $3
"""
UPDATE = f"""
UPDATE campaigns
SET name = $3, starts_at = $4, ends_at = $5, timezone = $6, grace = $7, document = $8,
    score_bits = $9, closes_at = $5::timestamptz + $7::interval, version = version + 1,
    updated_at = now(),
    backfill_pending = backfill_pending OR $4::timestamptz < now() + {EARLY}
WHERE tenant_id = $1 AND id = $2
RETURNING {COLUMNS}
"""
END_NOW = f"""
UPDATE campaigns
SET ends_at = now(), closes_at = now() + grace,
    document = jsonb_set(document, '{{ends_at}}', to_jsonb(now())),
    version = version + 1, updated_at = now()
WHERE tenant_id = $1 AND id = $2
RETURNING {COLUMNS}
"""
CANCEL = f"""
UPDATE campaigns SET cancelled_at = now(), updated_at = now()
WHERE tenant_id = $1 AND id = $2
RETURNING {COLUMNS}
"""
# Campaigns whose time to settle has come (ends_at + grace passed), oldest first.
DUE = """
SELECT tenant_id, id FROM campaigns
WHERE settled_at IS NULL AND cancelled_at IS NULL AND closes_at <= now()
ORDER BY closes_at LIMIT $1
"""
# Campaigns that can still take an event (the engine then checks each event's own time).
OPEN = """
SELECT id, version, document, score_bits FROM campaigns
WHERE tenant_id = $1 AND cancelled_at IS NULL AND closes_at >= now()
"""


HAS_PROGRESS = """
SELECT EXISTS (SELECT 1 FROM progress WHERE tenant_id = $1 AND campaign_id = $2)
"""


class CampaignRow(msgspec.Struct, frozen=True):
    id: str
    name: str
    document: dict[str, Any]
    version: int
    starts_at: datetime
    ends_at: datetime
    grace: timedelta
    cancelled_at: datetime | None
    created_at: datetime
    updated_at: datetime
    backfill_pending: bool
    score_bits: int
    closes_at: datetime
    settling_since: datetime | None
    settled_at: datetime | None
    pool_eligible: int | None  # what settlement found (see migrations/0006)
    pool_allocated: int | None

    def status(self, now: datetime) -> Status:
        if self.cancelled_at is not None:
            return "cancelled"
        if self.settled_at is not None:
            return "settled"
        if self.settling_since is not None:
            return "settling"
        if now < self.starts_at:
            return "scheduled"
        return "live" if now <= self.ends_at else "ended"

    def open(self) -> OpenCampaign:
        return OpenCampaign(self.id, self.version, self.document, self.score_bits)


class OpenCampaign(msgspec.Struct, frozen=True):
    """What compiling a campaign takes (see campaigns.compiled)."""

    id: str
    version: int
    document: dict[str, Any]
    score_bits: int


def _row(record: Any) -> CampaignRow:
    return CampaignRow(**dict(record))


def _values(campaign: Campaign) -> tuple[Any, ...]:
    rules = campaign.rules
    return (
        campaign.name,
        rules.starts_at,
        rules.ends_at,
        rules.timezone,
        campaign.grace,
        campaign.document,
        campaign.score_bits,
    )


async def guard(conn: Conn, tenant: str) -> None:
    """Wait for the tenant's write transactions in flight, and hold new ones off until this
    transaction ends (see TENANT_GUARD)."""
    await conn.execute(GUARD_EXCLUSIVE, tenant)


async def create(conn: Conn, tenant: str, campaign: Campaign, *, actor: str) -> CampaignRow | None:
    """The new campaign, or None when the tenant already has one with this id."""
    async with conn.transaction():
        await guard(conn, tenant)
        record = await conn.fetchrow(INSERT, tenant, campaign.id, *_values(campaign))
        if record is None:
            return None
        await audit.record(
            conn,
            tenant=tenant,
            actor=actor,
            action="campaign.create",
            target=campaign.id,
            detail={"version": 1},
        )
    return _row(record)


async def get(
    conn: Conn, tenant: str, campaign_id: str, *, lock: bool = False
) -> CampaignRow | None:
    record = await conn.fetchrow(GET_FOR_UPDATE if lock else GET, tenant, campaign_id)
    return _row(record) if record is not None else None


async def page(conn: Conn, tenant: str, after: str, limit: int) -> list[CampaignRow]:
    return [_row(record) for record in await conn.fetch(LIST, tenant, after, limit)]


async def update(
    conn: Conn, tenant: str, campaign: Campaign, *, actor: str, changed: list[str]
) -> CampaignRow:
    return await _changed(
        conn, UPDATE, (tenant, campaign.id, *_values(campaign)), "update", actor, changed
    )


async def end_now(conn: Conn, tenant: str, campaign_id: str, *, actor: str) -> CampaignRow:
    return await _changed(conn, END_NOW, (tenant, campaign_id), "end", actor)


async def _changed(
    conn: Conn,
    statement: str,
    args: tuple[Any, ...],
    action: str,
    actor: str,
    changed: list[str] | None = None,
) -> CampaignRow:
    """Run a statement that changes a campaign (args: tenant, id, ...) and audit it."""
    record = await conn.fetchrow(statement, *args)
    assert record is not None
    row = _row(record)
    detail: dict[str, Any] = {"version": row.version}
    if changed is not None:
        detail["changed"] = changed
    await audit.record(
        conn, tenant=args[0], actor=actor, action=f"campaign.{action}", target=row.id, detail=detail
    )
    return row


async def open_campaigns(conn: Conn, tenant: str) -> list[OpenCampaign]:
    return [
        OpenCampaign(r["id"], r["version"], r["document"], r["score_bits"])
        for r in await conn.fetch(OPEN, tenant)
    ]


async def has_progress(conn: Conn, tenant: str, campaign_id: str) -> bool:
    """Whether any event has counted for the campaign yet."""
    counted: bool = await conn.fetchval(HAS_PROGRESS, tenant, campaign_id)
    return counted


IDS = "SELECT tenant_id, id FROM campaigns WHERE cancelled_at IS NULL ORDER BY tenant_id, id"
MATCHING = """
SELECT tenant_id, id, version, document, score_bits FROM campaigns
WHERE cancelled_at IS NULL
  AND ($1::text IS NULL OR tenant_id = $1) AND ($2::text IS NULL OR id = $2)
ORDER BY tenant_id, id
"""


async def matching(
    conn: Conn | asyncpg.Pool, tenant: str | None = None, campaign_id: str | None = None
) -> list[tuple[str, OpenCampaign]]:
    """Every campaign not cancelled (of a tenant, or one), with its tenant."""
    rows = await conn.fetch(MATCHING, tenant, campaign_id)
    return [
        (r["tenant_id"], OpenCampaign(r["id"], r["version"], r["document"], r["score_bits"]))
        for r in rows
    ]


async def ids(conn: Conn) -> list[tuple[str, str]]:
    """Every campaign not cancelled, as (tenant, id): what the reconciler checks."""
    return [(r["tenant_id"], r["id"]) for r in await conn.fetch(IDS)]


async def cancel(conn: Conn, tenant: str, campaign_id: str, *, actor: str) -> CampaignRow:
    return await _changed(conn, CANCEL, (tenant, campaign_id), "cancel", actor)


async def due(conn: Conn, limit: int) -> list[tuple[str, str]]:
    """Campaigns whose settlement is due, as (tenant, id)."""
    return [(r["tenant_id"], r["id"]) for r in await conn.fetch(DUE, limit)]
