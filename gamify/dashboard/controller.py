"""HTTP: the campaign manager's desk. Rules simulation: a campaign document replayed over the
stored events of a period, nothing written. What the campaign pages chart (the badges of the
players on a board, the badge funnel, participation). The dashboard's pages and their assets,
left out of the OpenAPI document: they are for people, not for clients."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from litestar import Controller, MediaType, Request, Response, Router, get, post
from litestar.params import Parameter
from litestar.static_files import create_static_files_router

from gamify.campaigns.schema import CampaignId, campaign_schema
from gamify.dashboard import insights, pages
from gamify.dashboard.simulate import SimulationIn, SimulationOut, Simulations
from gamify.platform.container import container_of, part_of
from gamify.platform.openapi import ProblemOperation, inline_schema, schema_operation
from gamify.tenants.guards import Principal, requires


def _body_schema() -> dict[str, Any]:
    # SimulationIn takes the campaign as any object (it is checked as POST /v1/campaigns
    # checks it); the document shows the campaign's own schema there.
    schema = inline_schema(SimulationIn)
    schema["properties"]["campaign"] = {
        **campaign_schema(),
        "description": "A campaign, as POST /v1/campaigns takes it (and checks it)",
    }
    return schema


@post(
    "/v1/campaigns/simulate",
    status_code=200,
    guards=[requires("campaigns:write")],
    tags=["campaigns"],
    summary="Simulate a campaign over stored events: badges earned, scores, top 10, payouts; "
    "nothing is written (at most 1,000,000 events, else 422)",
    description="The rules are replayed over the period as if the campaign had run exactly "
    "then: `from` and `to` (both included), or the last `days` up to now, or without either "
    "the campaign's own starts_at to ends_at + grace. Its id need not be new.",
    # The body is decoded by hand, so that a 400 names every bad field (`campaign.badges[0]…`).
    operation_class=schema_operation(_body_schema),
)
async def simulate(request: Request[Any, Principal, Any]) -> SimulationOut:
    simulations = part_of(request, Simulations)
    return await simulations.run(request.auth.tenant, await request.body(), datetime.now(UTC))


class CampaignInsights(Controller):
    path = "/v1/campaigns/{campaign_id:str}"
    tags = ["dashboard"]
    guards = [requires("read")]

    @get(
        "/players/badges",
        summary="The badges some players hold in a campaign (those on a leaderboard snapshot)",
        operation_class=ProblemOperation,
    )
    async def badges_held(
        self,
        request: Request[Any, Principal, Any],
        campaign_id: CampaignId,
        player: Annotated[
            list[str],
            Parameter(
                min_items=1,
                max_items=insights.MAX_PLAYERS,
                description="a player id; repeat it for up to 100 players",
            ),
        ],
    ) -> insights.BadgesHeld:
        tenant = request.auth.tenant
        return await insights.badges_held(container_of(request).db, tenant, campaign_id, player)

    @get(
        "/funnel",
        summary="The badge funnel: players holding each badge, and awards per local day",
        operation_class=ProblemOperation,
    )
    async def funnel(
        self, request: Request[Any, Principal, Any], campaign_id: CampaignId
    ) -> insights.Funnel:
        return await insights.funnel(container_of(request).db, request.auth.tenant, campaign_id)

    @get(
        "/participation",
        summary="Active players per local day: those with an event in the campaign's period",
        operation_class=ProblemOperation,
    )
    async def participation(
        self,
        request: Request[Any, Principal, Any],
        campaign_id: CampaignId,
        days: Annotated[
            int,
            Parameter(
                ge=1,
                le=insights.MAX_DAYS,
                description="the campaign's last days, up to today (or to its last day)",
            ),
        ] = 30,
    ) -> insights.Participation:
        pool, tenant, now = container_of(request).db, request.auth.tenant, datetime.now(UTC)
        return await insights.participation(pool, tenant, campaign_id, days, now)


class DashboardPages(Controller):
    """The pages: markup only, filled in the browser from the API (see pages.py)."""

    path = "/dashboard"
    include_in_schema = False

    @get("/")
    async def overview(self) -> Response[str]:
        return _html(pages.overview())

    @get("/new")
    async def editor(self) -> Response[str]:
        return _html(pages.editor(datetime.now(UTC)))

    @get("/campaigns/{campaign_id:str}")
    async def campaign(self, campaign_id: CampaignId) -> Response[str]:
        return _html(pages.campaign(campaign_id))


def _html(page: str) -> Response[str]:
    return Response(page, media_type=MediaType.HTML, headers=pages.HEADERS)


def dashboard_assets() -> Router:
    """The pages' script and style sheet, served from the package (no build step, no CDN)."""
    return create_static_files_router(
        path=pages.ASSETS, directories=[pages.STATIC], include_in_schema=False
    )
