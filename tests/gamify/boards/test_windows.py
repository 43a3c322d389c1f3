"""Window boards (daily, weekly) in the campaign's time zone: midnight, DST, late events."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from gamify.boards import keys
from gamify.campaigns.windows import WINDOW_RETENTION
from tests.gamify.support import (
    Servers,
    bearer,
    boards_settled,
    earn_your_wings,
    flight,
    tenant_key,
)

BOARD = "/v1/campaigns/earn-your-wings/leaderboard"
TORONTO = ZoneInfo("America/Toronto")


def last_fall_back() -> date:
    """The latest day, at least two weeks ago, on which Toronto left daylight time (the first
    Sunday of November, at 02:00 EDT, -04:00, for EST, -05:00): that local day lasted 25
    hours. Computed from the clock, so that the campaign around it is always live."""
    today = datetime.now(TORONTO).date()
    for year in (today.year, today.year - 1):
        first = date(year, 11, 1)
        sunday = first + timedelta(days=(6 - first.weekday()) % 7)
        if sunday <= today - timedelta(days=14):
            return sunday
    raise AssertionError("unreachable: last year's November is always two weeks past")


FALL_BACK = last_fall_back()
START = datetime.combine(FALL_BACK - timedelta(days=8), time(), TORONTO)


def local(day: int, clock: str = "09:00:00") -> str:
    """RFC 3339 of a Toronto wall-clock time `day` days after the fall-back day."""
    moment = datetime.combine(FALL_BACK + timedelta(days=day), time.fromisoformat(clock))
    return moment.replace(tzinfo=TORONTO).isoformat()


def day(offset: int) -> str:
    return (FALL_BACK + timedelta(days=offset)).isoformat()


@pytest.fixture
async def headers(client: AsyncTestClient[Litestar]) -> dict[str, str]:
    key = await tenant_key(client, scopes=("events:write", "campaigns:write", "read"))
    campaign = earn_your_wings(starts_at=START, days=(datetime.now(TORONTO) - START).days + 30)
    campaign["leaderboards"] = ["campaign", "daily", "weekly"]
    created = await client.post("/v1/campaigns", json=campaign, headers=bearer(key))
    assert created.status_code == 201, created.text
    return bearer(key)


async def fly(
    client: AsyncTestClient[Litestar],
    headers: dict[str, str],
    event_id: str,
    player: str,
    destination: str,
    when: str,
) -> dict[str, Any]:
    event = {
        "id": event_id,
        "player": player,
        "type": "flight.completed",
        "occurred_at": when,
        "attributes": {"destination": destination},
    }
    response = await client.post("/v1/events", json={"events": [event]}, headers=headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["results"][0]
    return result


async def board(
    client: AsyncTestClient[Litestar], headers: dict[str, str], name: str, period: str
) -> list[tuple[str, int]]:
    response = await client.get(BOARD, params={"board": name, "period": period}, headers=headers)
    assert response.status_code == 200, response.text
    return [(e["player"], e["score"]) for e in response.json()["entries"]]


async def test_midnight_and_the_25_hour_day_fall_in_the_right_windows(
    client: AsyncTestClient[Litestar],
    headers: dict[str, str],
) -> None:
    await fly(client, headers, "e1", "p1", "YVR", local(-1, "23:59:59"))  # -04:00
    await fly(client, headers, "e2", "p2", "YYC", local(0, "00:00:00"))  # -04:00
    await fly(client, headers, "e3", "p3", "YUL", local(0, "23:30:00"))  # -05:00
    result = await fly(client, headers, "e4", "p4", "YEG", local(1, "00:00:00"))
    assert {(s["board"], s.get("period")) for s in result["scores"]} == {
        ("campaign", None),
        ("daily", day(1)),
        ("weekly", day(1)),  # the Monday after
    }

    assert await board(client, headers, "daily", day(-1)) == [("p1", 1)]
    assert await board(client, headers, "daily", day(0)) == [("p2", 1), ("p3", 1)]
    assert await board(client, headers, "daily", day(1)) == [("p4", 1)]
    assert await board(client, headers, "weekly", day(-6)) == [("p1", 1), ("p2", 1), ("p3", 1)]
    assert await board(client, headers, "weekly", day(1)) == [("p4", 1)]


async def test_a_late_event_moves_points_to_its_own_window_only(
    client: AsyncTestClient[Litestar],
    headers: dict[str, str],
) -> None:
    await fly(client, headers, "e1", "p4", "YEG", local(1))  # a Monday
    await fly(client, headers, "e2", "p4", "YVR", local(9))  # the Tuesday a week later
    assert await board(client, headers, "daily", day(9)) == [("p4", 1)]
    assert await board(client, headers, "weekly", day(8)) == [("p4", 1)]

    # reported late: a YVR flight on the Thursday before takes the badge (and its point) there
    late = await fly(client, headers, "e0", "p4", "YVR", local(4))
    weekly = next(s for s in late["scores"] if s["board"] == "weekly")
    assert (weekly["period"], weekly["score"], weekly["rank"]) == (day(1), 2, 1)
    assert await board(client, headers, "daily", day(4)) == [("p4", 1)]
    assert await board(client, headers, "daily", day(9)) == []
    assert await board(client, headers, "weekly", day(8)) == []
    assert await board(client, headers, "weekly", day(1)) == [("p4", 2)]
    assert await board(client, headers, "daily", day(1)) == [("p4", 1)]
    campaign = await client.get(BOARD, headers=headers)
    assert [(e["player"], e["score"]) for e in campaign.json()["entries"]] == [("p4", 2)]


async def test_the_current_window_is_the_default_period(
    client: AsyncTestClient[Litestar],
    headers: dict[str, str],
) -> None:
    toronto = TORONTO
    when = datetime.now(toronto) - timedelta(minutes=1)
    await fly(client, headers, "now", "p1", "YVR", when.isoformat())
    daily = (await client.get(BOARD, params={"board": "daily"}, headers=headers)).json()
    today = datetime.now(toronto).date()
    assert daily["period"] == today.isoformat()
    expected = ["p1"] if when.date() == today else []  # unless midnight just passed
    assert [e["player"] for e in daily["entries"]] == expected


async def test_window_boards_expire_a_retention_after_the_campaign_closes(
    client: AsyncTestClient[Litestar], headers: dict[str, str], servers: Servers
) -> None:
    # A campaign of its own that starts in a minute: no backfill runs beside the test.
    starts = datetime.now(ZoneInfo("America/Toronto")) + timedelta(minutes=1)
    soon = earn_your_wings(campaign_id="soon", starts_at=starts, days=10)
    soon["leaderboards"] = ["campaign", "daily"]
    assert (await client.post("/v1/campaigns", json=soon, headers=headers)).status_code == 201
    flown = starts + timedelta(minutes=1)  # events may arrive up to 5 minutes early
    sent = await client.post(
        "/v1/events", json={"events": [flight("e1", "p1", "YVR", flown)]}, headers=headers
    )
    assert sent.status_code == 200, sent.text
    closes = starts + timedelta(days=10, hours=12)  # ends_at + grace
    expected = int((closes + WINDOW_RETENTION).timestamp())
    daily = keys.board("acme", "soon", "daily", flown.date())
    redis = Redis.from_url(servers.redis_url)
    try:
        await boards_settled(redis, "acme", "soon")
        assert await redis.expiretime(daily) == expected
        assert await redis.expiretime(keys.board("acme", "soon")) == -1

        await redis.flushdb()  # Redis restarted empty: the rebuild sets the expiry again
        shown = await client.get(
            "/v1/campaigns/soon/leaderboard",
            params={"board": "daily", "period": flown.date().isoformat()},
            headers=headers,
        )
        assert [(e["player"], e["score"]) for e in shown.json()["entries"]] == [("p1", 1)]
        assert await redis.expiretime(daily) == expected
    finally:
        await redis.aclose()


async def test_a_campaign_closed_longer_than_the_retention_keeps_no_window_boards(
    client: AsyncTestClient[Litestar], headers: dict[str, str], servers: Servers
) -> None:
    now = datetime.now(ZoneInfo("America/Toronto"))
    flown = now - timedelta(days=80)
    await fly(client, headers, "old-1", "p1", "YVR", flown.isoformat())
    old = earn_your_wings(campaign_id="long-ago", starts_at=now - timedelta(days=100), days=40)
    old["leaderboards"] = ["campaign", "daily"]
    created = await client.post("/v1/campaigns", json=old, headers=headers)
    assert created.status_code == 201, created.text

    campaign_board = "/v1/campaigns/long-ago/leaderboard"
    for _ in range(100):  # the backfill runs in the background
        shown = await client.get(campaign_board, headers=headers)
        if shown.status_code == 200 and shown.json()["total"] == 1:
            break
        await asyncio.sleep(0.1)
    assert [e["player"] for e in shown.json()["entries"]] == ["p1"]
    day = flown.date().isoformat()
    daily = await client.get(
        campaign_board, params={"board": "daily", "period": day}, headers=headers
    )
    assert daily.json()["total"] == 0  # gone from Redis; Postgres keeps the scores
    redis = Redis.from_url(servers.redis_url)
    try:
        assert not await redis.exists(keys.board("acme", "long-ago", "daily", flown.date()))
    finally:
        await redis.aclose()
