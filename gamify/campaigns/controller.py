"""HTTP: campaigns: create, list, read, change (rules only before the start), end now."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, patch, post
from litestar.params import JSONBody, Parameter

from gamify.campaigns import changes, document, store
from gamify.campaigns.hooks import CampaignHooks
from gamify.campaigns.schema import CAMPAIGN_OPERATION, CampaignCursor, CampaignId
from gamify.platform.container import container_of
from gamify.platform.openapi import ProblemOperation
from gamify.tenants.guards import Principal, requires

CampaignDocument = Annotated[
    dict[str, Any],
    msgspec.Meta(
        description="A campaign as in API.md: id, name, starts_at, ends_at, timezone, "
        "grace, badges, scoring, leaderboards, prize_pool, loyalty"
    ),
]


class CampaignOut(msgspec.Struct, kw_only=True):
    id: str
    name: str
    status: document.Status
    version: int
    starts_at: datetime
    ends_at: datetime
    created_at: datetime
    updated_at: datetime
    document: dict[str, Any]


class CampaignPage(msgspec.Struct):
    items: list[CampaignOut]
    next: str | None


def _out(row: store.CampaignRow) -> CampaignOut:
    now = datetime.now(UTC)
    return CampaignOut(
        id=row.id,
        name=row.name,
        version=row.version,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
        status=row.status(now),
        document=document.redacted(row.document),
    )


class CampaignController(Controller):
    path = "/v1/campaigns"
    tags = ["campaigns"]

    @post(
        "/",
        status_code=201,
        guards=[requires("campaigns:write")],
        summary="Create a campaign (starts_at may be in the past, to take reported events)",
        operation_class=CAMPAIGN_OPERATION,
    )
    async def create(
        self, request: Request[Any, Principal, Any], data: JSONBody[CampaignDocument]
    ) -> CampaignOut:
        container = container_of(request)
        row = await changes.create(
            container.db,
            container.get(CampaignHooks),
            request.auth.tenant,
            data,
            actor=request.auth.actor,
        )
        return _out(row)

    @get(
        "/",
        guards=[requires("read")],
        summary="List campaigns, by id",
        operation_class=ProblemOperation,
    )
    async def list_campaigns(
        self,
        request: Request[Any, Principal, Any],
        after: CampaignCursor = "",
        limit: Annotated[int, Parameter(ge=1, le=500)] = 100,
    ) -> CampaignPage:
        async with container_of(request).db.acquire() as conn:
            rows = await store.page(conn, request.auth.tenant, after, limit + 1)
        items = [_out(row) for row in rows[:limit]]
        return CampaignPage(items, items[-1].id if len(rows) > limit else None)

    @get(
        "/{campaign_id:str}",
        guards=[requires("read")],
        summary="Read a campaign",
        operation_class=ProblemOperation,
    )
    async def read(
        self, request: Request[Any, Principal, Any], campaign_id: CampaignId
    ) -> CampaignOut:
        async with container_of(request).db.acquire() as conn:
            row = await store.get(conn, request.auth.tenant, campaign_id)
        if row is None:
            raise changes.not_found(campaign_id)
        return _out(row)

    @patch(
        "/{campaign_id:str}",
        guards=[requires("campaigns:write")],
        summary="Change a campaign (JSON merge patch); rules only before starts_at",
        operation_class=ProblemOperation,
    )
    async def change(
        self,
        request: Request[Any, Principal, Any],
        campaign_id: CampaignId,
        data: JSONBody[CampaignDocument],
    ) -> CampaignOut:
        container = container_of(request)
        row = await changes.change(
            container.db,
            container.get(CampaignHooks),
            request.auth.tenant,
            campaign_id,
            data,
            actor=request.auth.actor,
        )
        return _out(row)

    @post(
        "/{campaign_id:str}/end",
        status_code=200,
        guards=[requires("campaigns:write")],
        summary="End a live campaign now (events within its grace still count)",
        operation_class=ProblemOperation,
    )
    async def end(
        self, request: Request[Any, Principal, Any], campaign_id: CampaignId
    ) -> CampaignOut:
        row = await changes.end(
            container_of(request).db, request.auth.tenant, campaign_id, actor=request.auth.actor
        )
        return _out(row)

    @post(
        "/{campaign_id:str}/cancel",
        status_code=200,
        guards=[requires("campaigns:write")],
        summary="Cancel a campaign before it settles (no prize pool is paid)",
        operation_class=ProblemOperation,
    )
    async def cancel(
        self, request: Request[Any, Principal, Any], campaign_id: CampaignId
    ) -> CampaignOut:
        row = await changes.cancel(
            container_of(request).db, request.auth.tenant, campaign_id, actor=request.auth.actor
        )
        return _out(row)
