"""What the dashboard's campaign page charts, as JSON (scope `read`, the caller's tenant only):

- `GET /v1/campaigns/{id}/players/badges?player=…` → the badges each player holds, oldest first;
- `GET /v1/campaigns/{id}/funnel` → players taking part, and per badge its holders and the
  awards of each local day (the campaign's time zone);
- `GET /v1/campaigns/{id}/participation?days=N` → active players and events per local day, the
  campaign's last N days up to today, idle days included.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from litestar import Litestar
from litestar.testing import AsyncTestClient

from gamify.campaigns.windows import period_of
from gamify.dashboard.insights import day_starts, local_days
from tests.gamify.support import (
    assert_problem,
    bearer,
    earn_your_wings,
    flight,
    post_events,
    tenant_key,
)

PARTNER = ("events:write", "campaigns:write", "read")
CAMPAIGN = "/v1/campaigns/earn-your-wings"
TORONTO = ZoneInfo("America/Toronto")
NOW = datetime.now(UTC)
# Past days at noon in Toronto: the same local day in UTC, whatever the season.
NOON = NOW.astimezone(TORONTO).replace(hour=12, minute=0, second=0, microsecond=0)
JUST_NOW = NOW - timedelta(seconds=5)


def days_ago(days: int) -> datetime:
    return NOON - timedelta(days=days)


def local_day(moment: datetime) -> date:
    return moment.astimezone(TORONTO).date()


@pytest.fixture
async def headers(client: AsyncTestClient[Litestar]) -> dict[str, str]:
    headers = bearer(await tenant_key(client, scopes=PARTNER))
    created = await client.post("/v1/campaigns", json=earn_your_wings(), headers=headers)
    assert created.status_code == 201, created.text
    return headers


async def fly(client: AsyncTestClient[Litestar], headers: dict[str, str]) -> None:
    """p1: Vancouver 9 days ago, Calgary 3 days ago; p2: Vancouver 3 days ago, and that day
    again to a place with no badge; p3: nowhere with a badge, just now."""
    await post_events(
        client,
        headers,
        flight("a1", "p1", "YVR", days_ago(9)),
        flight("a2", "p1", "YYC", days_ago(3)),
        flight("b1", "p2", "YVR", days_ago(3)),
        flight("b2", "p2", "XXX", days_ago(3) + timedelta(hours=1)),
        flight("c1", "p3", "XXX", JUST_NOW),
    )


async def read(
    client: AsyncTestClient[Litestar], headers: dict[str, str], path: str, **params: Any
) -> dict[str, Any]:
    response = await client.get(path, params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# The badges of the players on a board.


async def test_the_badges_of_players_are_listed_in_the_order_asked_oldest_first(
    client: AsyncTestClient[Litestar], headers: dict[str, str]
) -> None:
    await fly(client, headers)

    held = await read(
        client, headers, f"{CAMPAIGN}/players/badges", player=["p2", "p1", "nobody", "p2"]
    )

    assert held["campaign"] == "earn-your-wings"
    assert [(p["player"], [b["badge"] for b in p["badges"]]) for p in held["players"]] == [
        ("p2", ["yvr"]),
        ("p1", ["yvr", "yyc"]),  # Vancouver first: it was earned first
        ("nobody", []),
    ]
    awarded_at = datetime.fromisoformat(held["players"][1]["badges"][1]["awarded_at"])
    assert awarded_at == days_ago(3)


async def test_a_player_id_no_player_can_have_holds_no_badge(
    client: AsyncTestClient[Litestar], headers: dict[str, str]
) -> None:
    held = await read(client, headers, f"{CAMPAIGN}/players/badges", player=["a\x00b", "x" * 200])

    assert [p["badges"] for p in held["players"]] == [[], []]


async def test_badges_are_asked_for_one_to_a_hundred_players(
    client: AsyncTestClient[Litestar], headers: dict[str, str]
) -> None:
    path = f"{CAMPAIGN}/players/badges"
    none = await client.get(path, headers=headers)
    too_many = await client.get(
        path, params={"player": [f"p{i}" for i in range(101)]}, headers=headers
    )

    assert_problem(none, 400)
    assert_problem(too_many, 400)


# The badge funnel.


async def test_the_funnel_counts_holders_per_badge_and_awards_per_local_day(
    client: AsyncTestClient[Litestar], headers: dict[str, str]
) -> None:
    await fly(client, headers)

    funnel = await read(client, headers, f"{CAMPAIGN}/funnel")

    assert (funnel["campaign"], funnel["timezone"]) == ("earn-your-wings", "America/Toronto")
    assert funnel["participants"] == 3  # p3 flew in the campaign, and earned nothing
    badges = {b["badge"]: b for b in funnel["badges"]}
    assert list(badges)[:3] == ["yvr", "yyc", "yeg"]  # the campaign's order
    assert (badges["yvr"]["name"], badges["yvr"]["points"]) == ("YVR", 1)
    assert badges["yvr"]["holders"] == 2
    assert badges["yvr"]["days"] == [
        {"day": local_day(days_ago(9)).isoformat(), "awarded": 1, "holders": 1},
        {"day": local_day(days_ago(3)).isoformat(), "awarded": 1, "holders": 2},
    ]
    assert (badges["yyc"]["holders"], len(badges["yyc"]["days"])) == (1, 1)
    assert (badges["explorer"]["holders"], badges["explorer"]["days"]) == (0, [])


async def test_a_campaign_with_no_event_has_an_empty_funnel(
    client: AsyncTestClient[Litestar], headers: dict[str, str]
) -> None:
    funnel = await read(client, headers, f"{CAMPAIGN}/funnel")

    assert funnel["participants"] == 0
    assert {b["holders"] for b in funnel["badges"]} == {0}


# Participation.


async def test_participation_counts_active_players_and_events_per_local_day(
    client: AsyncTestClient[Litestar], headers: dict[str, str]
) -> None:
    await fly(client, headers)

    days = (await read(client, headers, f"{CAMPAIGN}/participation", days=10))["days"]

    today = local_day(JUST_NOW)
    assert [d["day"] for d in days] == [
        (today - timedelta(days=n)).isoformat() for n in range(9, -1, -1)
    ]
    active = {d["day"]: (d["players"], d["events"]) for d in days if d["events"]}
    assert active == {
        local_day(days_ago(9)).isoformat(): (1, 1),
        local_day(days_ago(3)).isoformat(): (2, 3),  # p2 flew twice
        local_day(JUST_NOW).isoformat(): (1, 1),
    }


async def test_participation_starts_with_the_campaign_and_leaves_other_tenants_out(
    client: AsyncTestClient[Litestar], headers: dict[str, str]
) -> None:
    await fly(client, headers)
    other = bearer(await tenant_key(client, "globex", scopes=PARTNER))
    await post_events(client, other, flight("g1", "p1", "YVR", days_ago(3)))
    starts_at = datetime.fromisoformat(earn_your_wings()["starts_at"])

    days = (await read(client, headers, f"{CAMPAIGN}/participation", days=366))["days"]

    assert days[0]["day"] == local_day(starts_at).isoformat()
    assert days[-1]["day"] == local_day(JUST_NOW).isoformat()
    assert sum(d["events"] for d in days) == 5


async def test_a_campaign_yet_to_start_has_no_participation_days(
    client: AsyncTestClient[Litestar], headers: dict[str, str]
) -> None:
    later = earn_your_wings(starts_at=datetime.now(UTC) + timedelta(days=3), campaign_id="later")
    created = await client.post("/v1/campaigns", json=later, headers=headers)
    assert created.status_code == 201, created.text

    participation = await read(client, headers, "/v1/campaigns/later/participation")

    assert participation["days"] == []


@pytest.mark.parametrize("days", ["0", "367", "many"])
async def test_participation_covers_1_to_366_days(
    client: AsyncTestClient[Litestar], headers: dict[str, str], days: str
) -> None:
    response = await client.get(f"{CAMPAIGN}/participation?days={days}", headers=headers)

    assert assert_problem(response, 400)["errors"]


# Who may read them.

READS = [
    f"{CAMPAIGN}/players/badges?player=p1",
    f"{CAMPAIGN}/funnel",
    f"{CAMPAIGN}/participation",
]


@pytest.mark.parametrize("path", READS)
async def test_another_tenants_campaign_is_not_found(
    client: AsyncTestClient[Litestar], headers: dict[str, str], path: str
) -> None:
    stranger = bearer(await tenant_key(client, "globex", scopes=("read",)))

    response = await client.get(path, headers=stranger)

    assert_problem(response, 404)


@pytest.mark.parametrize("path", READS)
async def test_reading_them_takes_the_read_scope(
    client: AsyncTestClient[Litestar], headers: dict[str, str], path: str
) -> None:
    writer = bearer(await tenant_key(client, scopes=("events:write", "campaigns:write")))

    forbidden = await client.get(path, headers=writer)
    anonymous = await client.get(path)

    assert "`read`" in assert_problem(forbidden, 403)["detail"]
    assert_problem(anonymous, 401)


async def test_they_are_in_the_openapi_document(client: AsyncTestClient[Litestar]) -> None:
    paths = (await client.get("/schema/openapi.json")).json()["paths"]

    for path in ("players/badges", "funnel", "participation"):
        assert "get" in paths[f"/v1/campaigns/{{campaign_id}}/{path}"]


# Local days, as the engine counts them.


@given(
    st.sampled_from(["America/Toronto", "America/Santiago", "Asia/Kathmandu", "Pacific/Chatham"]),
    st.dates(date(1971, 1, 1), date(2199, 1, 1)),
    st.integers(1, 40),
)
def test_each_day_starts_at_its_first_instant(zone_name: str, first: date, count: int) -> None:
    zone = ZoneInfo(zone_name)
    days = local_days(first, first + timedelta(days=count - 1))

    starts = day_starts(days, zone)

    assert len(starts) == count + 1
    tick = timedelta(microseconds=1)
    for day, start in zip([*days, days[-1] + timedelta(days=1)], starts, strict=True):
        assert period_of("daily", start, zone) == day
        assert period_of("daily", start - tick, zone) == day - timedelta(days=1)
