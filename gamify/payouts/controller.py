"""HTTP: settling a campaign early, the payout preview, and the frozen allocation page by page."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.params import Parameter

from gamify.campaigns import store as campaigns
from gamify.campaigns.changes import not_found
from gamify.campaigns.schema import CampaignId
from gamify.payouts import settlement, store
from gamify.payouts.split import allocate
from gamify.platform.container import container_of
from gamify.platform.openapi import ProblemOperation
from gamify.platform.problems import ApiError
from gamify.tenants.guards import Principal, requires


class PreviewItem(msgspec.Struct):
    player: str
    amount: int
    rank: int


class Preview(msgspec.Struct):
    amount: int
    allocated: int
    unallocated: int
    eligible: int
    items: list[PreviewItem]


class PayoutItem(msgspec.Struct, omit_defaults=True):
    player: str
    amount: int
    status: str
    attempts: int
    last_error: str | None = None


class Payouts(msgspec.Struct):
    amount: int
    allocated: int
    delivered: int
    failed: int
    eligible: int
    items: list[PayoutItem]
    next: str | None


class Retried(msgspec.Struct):
    retried: int


class PayoutController(Controller):
    path = "/v1/campaigns/{campaign_id:str}"
    tags = ["payouts"]
    guards = [requires("campaigns:write")]

    @post(
        "/settle",
        status_code=200,
        summary="Settle an ended campaign now, before its grace is over",
        operation_class=ProblemOperation,
    )
    async def settle(
        self, request: Request[Any, Principal, Any], campaign_id: CampaignId
    ) -> Payouts:
        container = container_of(request)
        tenant = request.auth.tenant
        row = await _campaign(request, campaign_id)
        status = row.status(datetime.now(UTC))
        if status not in ("ended", "settling", "settled"):
            raise ApiError(409, "Conflict", f"campaign {campaign_id} is {status}, not ended")
        await settlement.settle(container.db, tenant, campaign_id, early=True)
        return await _payouts(request, await _campaign(request, campaign_id), "", 100)

    @post(
        "/payouts/preview",
        status_code=200,
        summary="The prize pool's allocation as it would be now (nothing is written)",
        operation_class=ProblemOperation,
    )
    async def preview(
        self,
        request: Request[Any, Principal, Any],
        campaign_id: CampaignId,
        limit: Annotated[int, Parameter(ge=1, le=10_000)] = 1000,
    ) -> Preview:
        row = await _campaign(request, campaign_id)
        pool = settlement.pool_of(row.document)
        if pool is None:
            raise ApiError(409, "Conflict", f"campaign {campaign_id} has no prize pool")
        async with container_of(request).db.acquire() as conn:
            standings = await store.standings(conn, request.auth.tenant, campaign_id)
        found = allocate(pool, standings)
        ranks = {s.player: s.rank for s in standings}
        shown = found.items[:limit]
        return Preview(
            pool.amount,
            found.allocated,
            found.unallocated,
            found.eligible,
            [PreviewItem(c.player, c.amount, ranks[c.player]) for c in shown],
        )

    @post(
        "/payouts/retry",
        status_code=200,
        operation_class=ProblemOperation,
        summary="Send every failed credit again, with the same webhook-id (after fixing loyalty)",
    )
    async def retry(
        self, request: Request[Any, Principal, Any], campaign_id: CampaignId
    ) -> Retried:
        await _campaign(request, campaign_id)
        async with container_of(request).db.acquire() as conn:
            count = await store.retry_failed(conn, request.auth.tenant, campaign_id)
        return Retried(count)

    @get(
        "/payouts",
        summary="The frozen allocation and each credit's delivery, by player",
        operation_class=ProblemOperation,
    )
    async def payouts(
        self,
        request: Request[Any, Principal, Any],
        campaign_id: CampaignId,
        after: Annotated[str, Parameter(description="`next` of the previous page")] = "",
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
    ) -> Payouts:
        return await _payouts(request, await _campaign(request, campaign_id), after, limit)


async def _payouts(
    request: Request[Any, Principal, Any], row: campaigns.CampaignRow, after: str, limit: int
) -> Payouts:
    pool = settlement.pool_of(row.document)
    tenant = request.auth.tenant
    async with container_of(request).db.acquire() as conn:
        rows = await store.page(conn, tenant, row.id, after, limit + 1)
        delivered, failed = await store.sums(conn, tenant, row.id)
    items = [PayoutItem(r.player, r.amount, r.status, r.attempts, r.last_error) for r in rows]
    return Payouts(
        pool.amount if pool else 0,
        row.pool_allocated or 0,
        delivered,
        failed,
        row.pool_eligible or 0,
        items[:limit],
        items[limit - 1].player if len(items) > limit else None,
    )


async def _campaign(
    request: Request[Any, Principal, Any], campaign_id: str
) -> campaigns.CampaignRow:
    async with container_of(request).db.acquire() as conn:
        row = await campaigns.get(conn, request.auth.tenant, campaign_id)
    if row is None:
        raise not_found(campaign_id)
    return row
