"""Campaigns: create, list, read, change (rules only before the start), end now."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, patch, post
from litestar.params import FromPath, JSONBody, Parameter

from gamify import auth, campaign
from gamify.problems import VALIDATION, ApiError, FieldProblem, invalid
from gamify.services import services_of
from gamify.store import campaigns

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
    status: campaign.Status
    version: int
    starts_at: datetime
    ends_at: datetime
    created_at: datetime
    updated_at: datetime
    document: dict[str, Any]


class CampaignPage(msgspec.Struct):
    items: list[CampaignOut]
    next: str | None


def _out(row: campaigns.CampaignRow) -> CampaignOut:
    now = datetime.now(UTC)
    return CampaignOut(
        id=row.id,
        name=row.name,
        version=row.version,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
        status=campaign.status(row.starts_at, row.ends_at, row.cancelled_at, now),
        document=campaign.redacted(row.document),
    )


def _parse(document: Any) -> campaign.Campaign:
    try:
        return campaign.parse(document)
    except campaign.CampaignInvalid as exc:
        raise invalid(exc.errors) from None


def _not_found(campaign_id: str) -> ApiError:
    return ApiError(404, "Not Found", f"no campaign {campaign_id}")


class CampaignController(Controller):
    path = "/v1/campaigns"
    tags = ["campaigns"]

    @post(
        "/",
        status_code=201,
        guards=[auth.requires("campaigns:write")],
        summary="Create a campaign (starts_at may be in the past, to take reported events)",
    )
    async def create(
        self, request: Request[Any, auth.Principal, Any], data: JSONBody[CampaignDocument]
    ) -> CampaignOut:
        parsed = _parse(data)
        principal = request.auth
        async with services_of(request).db.acquire() as conn:
            row = await campaigns.create(conn, principal.tenant, parsed, actor=principal.actor)
        if row is None:
            raise ApiError(409, "Conflict", f"campaign {parsed.id} already exists")
        if row.backfill_pending:
            # Events reported before the campaign existed count too, folded in the background.
            services_of(request).backfills.start(principal.tenant, row.id)
        return _out(row)

    @get("/", guards=[auth.requires("read")], summary="List campaigns, by id")
    async def list_campaigns(
        self,
        request: Request[Any, auth.Principal, Any],
        after: Annotated[str, Parameter(description="the last id of the previous page")] = "",
        limit: Annotated[int, Parameter(ge=1, le=500)] = 100,
    ) -> CampaignPage:
        async with services_of(request).db.acquire() as conn:
            rows = await campaigns.page(conn, request.auth.tenant, after, limit + 1)
        items = [_out(row) for row in rows[:limit]]
        return CampaignPage(items, items[-1].id if len(rows) > limit else None)

    @get("/{campaign_id:str}", guards=[auth.requires("read")], summary="Read a campaign")
    async def read(
        self, request: Request[Any, auth.Principal, Any], campaign_id: FromPath[str]
    ) -> CampaignOut:
        async with services_of(request).db.acquire() as conn:
            row = await campaigns.get(conn, request.auth.tenant, campaign_id)
        if row is None:
            raise _not_found(campaign_id)
        return _out(row)

    @patch(
        "/{campaign_id:str}",
        guards=[auth.requires("campaigns:write")],
        summary="Change a campaign (JSON merge patch); rules only before starts_at",
    )
    async def change(
        self,
        request: Request[Any, auth.Principal, Any],
        campaign_id: FromPath[str],
        data: JSONBody[CampaignDocument],
    ) -> CampaignOut:
        principal = request.auth
        async with services_of(request).db.acquire() as conn, conn.transaction():
            row = await campaigns.get(conn, principal.tenant, campaign_id, lock=True)
            if row is None:
                raise _not_found(campaign_id)
            merged = campaign.merge_patch(row.document, data)
            if merged.get("id") != campaign_id:
                raise invalid([FieldProblem("id", "a campaign's id cannot change")])
            parsed = _parse(merged)
            changed = campaign.changed_fields(row.document, merged)
            counted = await campaigns.has_progress(conn, principal.tenant, campaign_id)
            _check_changeable(row, changed, counted)
            if not changed:
                return _out(row)
            row = await campaigns.update(
                conn, principal.tenant, parsed, actor=principal.actor, changed=changed
            )
        if row.backfill_pending and "starts_at" in changed:
            # Moved to start in the past: the events already reported in the new window count.
            services_of(request).backfills.start(principal.tenant, row.id)
        return _out(row)

    @post(
        "/{campaign_id:str}/end",
        status_code=200,
        guards=[auth.requires("campaigns:write")],
        summary="End a live campaign now (events within its grace still count)",
    )
    async def end(
        self, request: Request[Any, auth.Principal, Any], campaign_id: FromPath[str]
    ) -> CampaignOut:
        principal = request.auth
        async with services_of(request).db.acquire() as conn, conn.transaction():
            row = await campaigns.get(conn, principal.tenant, campaign_id, lock=True)
            if row is None:
                raise _not_found(campaign_id)
            now = datetime.now(UTC)
            current = campaign.status(row.starts_at, row.ends_at, row.cancelled_at, now)
            if current != "live":
                raise ApiError(409, "Conflict", f"campaign {campaign_id} is {current}, not live")
            row = await campaigns.end_now(
                conn, principal.tenant, campaign_id, actor=principal.actor
            )
        return _out(row)


def _check_changeable(row: campaigns.CampaignRow, changed: list[str], counted: bool) -> None:
    # Events may arrive up to 5 minutes early, so a campaign can have counted events just
    # before it starts: its rules are frozen from the first one, lest states folded under
    # the old rules meet the new ones.
    if datetime.now(UTC) < row.starts_at and not counted:
        return
    frozen = [name for name in changed if name not in campaign.MUTABLE_WHEN_LIVE]
    if frozen:
        raise ApiError(
            409,
            "Conflict",
            "rules can change only before the campaign starts and counts its first event",
            type=VALIDATION,
            errors=[FieldProblem(name, "cannot change after starts_at") for name in frozen],
        )
