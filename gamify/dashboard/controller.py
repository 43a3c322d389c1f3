"""HTTP: the campaign manager's desk. Rules simulation: a campaign document replayed over the
stored events of a period, nothing written."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import Request, post

from gamify.campaigns.schema import campaign_schema
from gamify.dashboard.simulate import SimulationIn, SimulationOut, Simulations
from gamify.platform.container import part_of
from gamify.platform.openapi import inline_schema, schema_operation
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
