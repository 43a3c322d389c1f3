"""The demo's "Earn your wings" campaign: the document, and making sure one is live.

Canadian destinations from the badge catalogue (10 points each), distinct-destination
milestones (50 points) that also credit miles (so the loyalty receiver sees deliveries while
the demo runs, long before the pool settles), a point a flight, a campaign board and a weekly
board, and a 10,000,000-mile pool split by badges.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import msgspec

from badges.catalog import destination_badges
from badges.rules import Badge, Reward

CAMPAIGN_ID = "earn-your-wings"
TIMEZONE = "America/Toronto"
# Busiest first: the simulated members pick them with falling weights, so the later ones are
# the rare badges of the funnel.
_CODES = (
    "YYZ YVR YUL YYC YEG YOW YWG YHZ YQB YYJ YXE YQR YYT YLW YXU "
    "YQM YSJ YFC YQX YXX YKA YQT YZF YXY YHM YKF YDF YCD YQG YXS"
)
DESTINATIONS = tuple(_CODES.split())
MILESTONES = (5, 10, 20)
MILESTONE_MILES = {5: 500, 10: 1_000, 20: 5_000}
FLIGHT_POINTS, DESTINATION_POINTS, MILESTONE_POINTS = 1, 10, 50
# Two weeks already flown when the demo starts, so the weekly board has a past week.
HISTORY_DAYS = 13
LENGTH = timedelta(weeks=13)
LIVE = ("scheduled", "live")


class Live(msgspec.Struct, frozen=True):
    """The campaign the flights go to."""

    id: str
    starts_at: datetime


class CampaignUnavailable(RuntimeError):
    """No demo campaign could be created or reused."""


def document(campaign_id: str, today: date, loyalty_url: str, secret: str) -> dict[str, Any]:
    starts_at = datetime.combine(today - timedelta(days=HISTORY_DAYS), time(), ZoneInfo(TIMEZONE))
    return {
        "id": campaign_id,
        "name": "Earn your wings",
        "description": "Fly to Canadian destinations: a badge per city, bonus miles at "
        f"{', '.join(map(str, MILESTONES))} destinations, and a share of 10,000,000 miles.",
        "starts_at": starts_at.isoformat(),
        "ends_at": (starts_at + LENGTH - timedelta(seconds=1)).isoformat(),
        "timezone": TIMEZONE,
        "grace": "PT12H",
        "badges": [_wire(badge) for badge in badges()],
        # A point a flight keeps the top of the boards moving once its members hold every
        # badge; the pool is split by badges all the same.
        "scoring": [{"event": "flight.completed", "points": FLIGHT_POINTS}],
        "leaderboards": ["campaign", "weekly"],
        "prize_pool": {
            "amount": 10_000_000,
            "unit": "miles",
            "split": "proportional",
            "basis": "badges",
            "eligibility": {"min_badges": 1},
        },
        "loyalty": {"url": loyalty_url, "secret": secret},
    }


def badges() -> list[Badge]:
    made = destination_badges(
        DESTINATIONS,
        milestones=MILESTONES,
        points=DESTINATION_POINTS,
        milestone_points=MILESTONE_POINTS,
    )
    return [_with_reward(badge) for badge in made]


def _with_reward(badge: Badge) -> Badge:
    for threshold, miles in MILESTONE_MILES.items():
        if badge.id == f"destinations-{threshold}":
            return msgspec.structs.replace(badge, reward=Reward(amount=miles, unit="miles"))
    return badge


def _wire(badge: Badge) -> dict[str, Any]:
    # The catalogue's Structs carry unset options as None; the API takes them absent.
    wire: dict[str, Any] = _without_none(msgspec.to_builtins(badge))
    return wire


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


async def ensure(client: httpx.AsyncClient, today: date, loyalty_url: str, secret: str) -> Live:
    """Create the campaign, or reuse the one an earlier run made, pointing its loyalty
    endpoint at this run's receiver. A campaign that is over (a run months later) is left as
    it is and a new one, named for today, takes its place."""
    for campaign_id in (CAMPAIGN_ID, f"{CAMPAIGN_ID}-{today:%Y%m%d}"):
        found = await client.get(f"/v1/campaigns/{campaign_id}")
        if found.status_code == 404:
            made = document(campaign_id, today, loyalty_url, secret)
            created = await client.post("/v1/campaigns", json=made)
            return _live(_checked(created, 201))
        body = _checked(found, 200)
        if body["status"] in LIVE:
            loyalty = {"loyalty": {"url": loyalty_url, "secret": secret}}
            patched = await client.patch(f"/v1/campaigns/{campaign_id}", json=loyalty)
            return _live(_checked(patched, 200))
    raise CampaignUnavailable(f"the demo campaigns {CAMPAIGN_ID}… are all over")


def _checked(response: httpx.Response, status: int) -> dict[str, Any]:
    if response.status_code != status:
        raise CampaignUnavailable(
            f"{response.request.method} {response.request.url.path}: "
            f"{response.status_code} {response.text[:2000]}"
        )
    body: dict[str, Any] = response.json()
    return body


def _live(body: dict[str, Any]) -> Live:
    return Live(body["id"], datetime.fromisoformat(body["starts_at"]))
