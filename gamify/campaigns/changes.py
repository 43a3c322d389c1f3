"""Changing a campaign: create, merge-patch and end, each in one transaction; what may change
when, and telling the hooks what the change owes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg

from gamify.campaigns import document, store
from gamify.campaigns.hooks import CampaignHooks
from gamify.campaigns.store import CampaignRow
from gamify.platform.problems import VALIDATION, ApiError, FieldProblem, invalid


def not_found(campaign_id: str) -> ApiError:
    return ApiError(404, "Not Found", f"no campaign {campaign_id}")


def _parse(body: Any) -> document.Campaign:
    try:
        return document.parse(body)
    except document.CampaignInvalid as exc:
        raise invalid(exc.errors) from None


async def create(
    pool: asyncpg.Pool, hooks: CampaignHooks, tenant: str, body: Any, *, actor: str
) -> CampaignRow:
    parsed = _parse(body)
    async with pool.acquire() as conn:
        row = await store.create(conn, tenant, parsed, actor=actor)
    if row is None:
        raise ApiError(409, "Conflict", f"campaign {parsed.id} already exists")
    if row.backfill_pending:
        # Events reported before the campaign existed count too, folded in the background.
        hooks.backfill_owed(tenant, row.id)
    return row


async def change(
    pool: asyncpg.Pool,
    hooks: CampaignHooks,
    tenant: str,
    campaign_id: str,
    patch: Any,
    *,
    actor: str,
) -> CampaignRow:
    """Apply a JSON merge patch; the rules only until the campaign starts or counts."""
    async with pool.acquire() as conn, conn.transaction():
        # Before reading whether it counted: a fold in flight must not be missed, and none
        # may start under the old rules until this commits.
        await store.guard(conn, tenant)
        row = await store.get(conn, tenant, campaign_id, lock=True)
        if row is None:
            raise not_found(campaign_id)
        merged = document.merge_patch(row.document, patch)
        if merged.get("id") != campaign_id:
            raise invalid([FieldProblem("id", "a campaign's id cannot change")])
        parsed = _parse(merged)
        changed = document.changed_fields(row.document, merged)
        counted = await store.has_progress(conn, tenant, campaign_id)
        _check_changeable(row, changed, counted)
        if not changed:
            return row
        row = await store.update(conn, tenant, parsed, actor=actor, changed=changed)
    if row.backfill_pending and "starts_at" in changed:
        # Moved to start in the past: the events already reported in the new window count.
        hooks.backfill_owed(tenant, row.id)
    return row


async def end(pool: asyncpg.Pool, tenant: str, campaign_id: str, *, actor: str) -> CampaignRow:
    """End a live campaign now; events within its grace still count."""
    async with pool.acquire() as conn, conn.transaction():
        row = await store.get(conn, tenant, campaign_id, lock=True)
        if row is None:
            raise not_found(campaign_id)
        current = row.status(datetime.now(UTC))
        if current != "live":
            raise ApiError(409, "Conflict", f"campaign {campaign_id} is {current}, not live")
        return await store.end_now(conn, tenant, campaign_id, actor=actor)


def _check_changeable(row: CampaignRow, changed: list[str], counted: bool) -> None:
    # Events may arrive up to 5 minutes early, so a campaign can have counted events just
    # before it starts: its rules are frozen from the first one, lest states folded under
    # the old rules meet the new ones.
    if datetime.now(UTC) < row.starts_at and not counted:
        return
    frozen = [name for name in changed if name not in document.MUTABLE_WHEN_LIVE]
    if frozen:
        raise ApiError(
            409,
            "Conflict",
            "rules can change only before the campaign starts and counts its first event",
            type=VALIDATION,
            errors=[FieldProblem(name, "cannot change after starts_at") for name in frozen],
        )


async def cancel(pool: asyncpg.Pool, tenant: str, campaign_id: str, *, actor: str) -> CampaignRow:
    """Cancel a campaign that has not settled: it stops taking events and pays no pool. The row
    lock waits out a settlement in progress, which then wins."""
    async with pool.acquire() as conn, conn.transaction():
        row = await store.get(conn, tenant, campaign_id, lock=True)
        if row is None:
            raise not_found(campaign_id)
        current = row.status(datetime.now(UTC))
        if current in ("settled", "cancelled"):
            raise ApiError(409, "Conflict", f"campaign {campaign_id} is {current} already")
        return await store.cancel(conn, tenant, campaign_id, actor=actor)
