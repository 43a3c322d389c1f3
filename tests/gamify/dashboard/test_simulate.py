"""POST /v1/campaigns/simulate: a campaign document replayed over stored events, nothing written.

Given events already stored (no campaign counted them), when a campaign manager simulates a
campaign over a period, then the answer says how many players would earn each badge, how the
scores spread, the top 10 and the prize pool's split, as the live path would have made them.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from gamify.dashboard.simulate import Simulations
from tests.gamify.support import (
    Servers,
    assert_problem,
    bearer,
    boards_settled,
    earn_your_wings,
    flight,
    post_events,
    tenant_key,
)

PARTNER = ("events:write", "campaigns:write", "read")
SIMULATE = "/v1/campaigns/simulate"
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
async def headers(client: AsyncTestClient[Litestar]) -> dict[str, str]:
    return bearer(await tenant_key(client, scopes=PARTNER))


def next_month() -> dict[str, Any]:
    """The campaign being designed: it starts in a month, so no event counted for it yet."""
    return earn_your_wings(starts_at=NOW + timedelta(days=30))


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


async def fly(client: AsyncTestClient[Litestar], headers: dict[str, str]) -> None:
    """p1 3 badges; p4 2; p5 and p2 1 each, p5 first; p3 flew where no badge is."""
    await post_events(
        client,
        headers,
        flight("a1", "p1", "YVR", days_ago(9)),
        flight("a2", "p1", "YYC", days_ago(8)),
        flight("a3", "p1", "YUL", days_ago(7)),
        flight("b1", "p2", "YVR", days_ago(3)),
        flight("c1", "p3", "XXX", days_ago(6)),
        flight("d1", "p4", "YVR", days_ago(5)),
        flight("d2", "p4", "YYC", days_ago(4)),
        flight("e1", "p5", "YVR", days_ago(6)),
        flight("old", "p1", "YOW", days_ago(40)),  # before the period
    )


def period(start: datetime, end: datetime) -> dict[str, str]:
    return {"from": start.isoformat(), "to": end.isoformat()}


def period_of(answer: dict[str, Any]) -> tuple[datetime, datetime]:
    return (
        datetime.fromisoformat(answer["period"]["from"]),
        datetime.fromisoformat(answer["period"]["to"]),
    )


async def simulate(
    client: AsyncTestClient[Litestar], headers: dict[str, str], body: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post(SIMULATE, json=body, headers=headers)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def test_a_simulation_answers_badges_scores_top_and_payouts_of_the_period(
    client: AsyncTestClient[Litestar], headers: dict[str, str]
) -> None:
    await fly(client, headers)
    named = await client.put("/v1/players/p1", json={"display_name": "Ada"}, headers=headers)
    assert named.is_success, named.text

    answer = await simulate(
        client, headers, {"campaign": next_month(), **period(days_ago(10), NOW)}
    )

    assert period_of(answer) == (days_ago(10), NOW)
    assert (answer["events"], answer["players"]) == (8, 5)
    earned = {b["badge"]: b["players"] for b in answer["badges"]}
    assert earned == {"yvr": 4, "yyc": 2, "yul": 1} | {
        badge: 0 for badge in ("yeg", "ywg", "yow", "yhz", "yqb", "yyj", "yxe", "lhr", "cdg")
    } | {"explorer": 0}
    assert [b["badge"] for b in answer["badges"]][:3] == ["yvr", "yyc", "yeg"]  # campaign order
    assert [(e["rank"], e["player"], e["display_name"], e["score"]) for e in answer["top"]] == [
        (1, "p1", "Ada", 3),
        (2, "p4", None, 2),
        (3, "p5", None, 1),  # reached 1 point before p2
        (4, "p2", None, 1),
    ]
    assert answer["top"][0]["badges"] == ["yvr", "yyc", "yul"]  # oldest first
    assert answer["scores"] == {
        "ranked": 4,  # p3 scored nothing
        "min": 0,
        "max": 3,
        "mean": 1.4,
        "percentiles": {"p50": 1, "p75": 2, "p90": 3, "p99": 3},
        "buckets": [
            {"min": 0, "max": 0, "players": 1},
            {"min": 1, "max": 1, "players": 2},
            {"min": 2, "max": 2, "players": 1},
            {"min": 3, "max": 3, "players": 1},
        ],
    }
    # 10,000,000 miles in proportion to badges (3, 2, 1, 1 of 7), largest remainders.
    assert answer["payouts"] == {
        "amount": 10_000_000,
        "unit": "miles",
        "split": "proportional",
        "allocated": 10_000_000,
        "unallocated": 0,
        "eligible": 4,
        "credited": 4,
        "items": [
            {"rank": 1, "player": "p1", "amount": 4_285_714},
            {"rank": 2, "player": "p4", "amount": 2_857_143},
            {"rank": 3, "player": "p5", "amount": 1_428_572},
            {"rank": 4, "player": "p2", "amount": 1_428_571},
        ],
    }


async def test_days_replays_the_last_days_up_to_now(
    client: AsyncTestClient[Litestar], headers: dict[str, str]
) -> None:
    await fly(client, headers)
    before = datetime.now(UTC)

    answer = await simulate(client, headers, {"campaign": next_month(), "days": 5})

    start, end = period_of(answer)
    assert before <= end <= datetime.now(UTC)
    assert end - start == timedelta(days=5)
    # b1 (3 days ago) and d2 (4 days ago); d1 was 5 days ago, a moment before the period.
    assert (answer["events"], answer["players"]) == (2, 2)


async def test_without_a_period_the_campaign_runs_over_its_own_dates(
    client: AsyncTestClient[Litestar], headers: dict[str, str]
) -> None:
    await fly(client, headers)
    campaign = earn_your_wings(starts_at=days_ago(6.5), days=2)
    campaign["grace"] = "P1D"  # so to ends_at + grace: 3.5 days ago

    answer = await simulate(client, headers, {"campaign": campaign})

    assert period_of(answer) == (days_ago(6.5), days_ago(3.5))
    # c1, e1 (6 days ago), d1 (5), d2 (4); not a3 (7) nor b1 (3).
    assert (answer["events"], answer["players"]) == (4, 3)
    assert answer["payouts"]["eligible"] == 2  # p4 and p5; p3 earned no badge


async def test_a_campaign_without_a_prize_pool_has_no_payouts(
    client: AsyncTestClient[Litestar], headers: dict[str, str]
) -> None:
    campaign = next_month()
    del campaign["prize_pool"]

    answer = await simulate(client, headers, {"campaign": campaign, "days": 30})

    assert answer["payouts"] is None
    assert (answer["events"], answer["players"], answer["top"]) == (0, 0, [])
    assert answer["scores"]["buckets"] == []


async def test_a_bad_document_or_period_is_a_400_naming_every_field(
    client: AsyncTestClient[Litestar], headers: dict[str, str]
) -> None:
    campaign = next_month()
    campaign["timezone"] = "Mars/Olympus_Mons"
    campaign["badges"][0]["criteria"]["kind"] = "nope"
    del campaign["name"]

    body = {"campaign": campaign, "days": 0, "colour": "blue"}
    problem = assert_problem(await client.post(SIMULATE, json=body, headers=headers), 400)

    fields = {e["field"] for e in problem["errors"]}
    assert fields == {
        "campaign.timezone",
        "campaign.badges[0].criteria.kind",
        "campaign.name",
        "days",
        "colour",
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"from": NOW.isoformat()}, "to"),
        ({"to": NOW.isoformat()}, "from"),
        ({**period(NOW, NOW - timedelta(days=1))}, "to"),
        ({**period(NOW - timedelta(days=4000), NOW)}, "to"),
        ({**period(NOW - timedelta(days=1), NOW), "days": 3}, "days"),
        ({"from": "2026-01-01T00:00:00", "to": NOW.isoformat()}, "from"),  # no offset
        ({"days": 3651}, "days"),
        ({"campaign": "a campaign"}, "campaign"),
        ({"campaign": None}, "campaign"),
    ],
)
async def test_a_bad_period_names_its_field(
    client: AsyncTestClient[Litestar], headers: dict[str, str], body: dict[str, Any], field: str
) -> None:
    response = await client.post(SIMULATE, json={"campaign": next_month(), **body}, headers=headers)
    problem = assert_problem(response, 400)
    assert [e["field"] for e in problem["errors"]] == [field]


async def test_a_simulation_needs_campaigns_write(client: AsyncTestClient[Litestar]) -> None:
    reader = bearer(await tenant_key(client, scopes=("read",)))
    body = {"campaign": next_month(), "days": 1}
    assert_problem(await client.post(SIMULATE, json=body, headers=reader), 403)
    assert_problem(await client.post(SIMULATE, json=body), 401)


async def test_a_simulation_writes_nothing(
    client: AsyncTestClient[Litestar],
    headers: dict[str, str],
    db: asyncpg.Connection,
    servers: Servers,
) -> None:
    # The same id as a stored campaign: a simulation neither conflicts with it nor changes it.
    stored = earn_your_wings(starts_at=days_ago(20))
    assert (await client.post("/v1/campaigns", json=stored, headers=headers)).is_success
    await fly(client, headers)
    redis = Redis.from_url(servers.redis_url)
    try:
        await settled(db, redis)
        rows_before, keys_before = await row_counts(db), await redis.dbsize()
        for body in ({"days": 10}, period(days_ago(10), NOW), {}):
            await simulate(client, headers, {"campaign": next_month(), **body})
        rows_after, keys_after = await row_counts(db), await redis.dbsize()
    finally:
        await redis.aclose()

    assert rows_after == rows_before
    assert keys_after == keys_before
    read = await client.get("/v1/campaigns/earn-your-wings", headers=headers)
    assert datetime.fromisoformat(read.json()["starts_at"]) == days_ago(20)


async def settled(db: asyncpg.Connection, redis: Redis) -> None:
    """Until the stored campaign's backfill (of nothing: it came first) and boards are done."""
    for _ in range(100):
        if not await db.fetchval("SELECT bool_or(backfill_pending) FROM campaigns"):
            break
        await asyncio.sleep(0.05)
    await boards_settled(redis, "acme", "earn-your-wings")


async def row_counts(db: asyncpg.Connection) -> dict[str, int]:
    tables = await db.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {
        t["tablename"]: await db.fetchval(f'SELECT count(*) FROM "{t["tablename"]}"')
        for t in tables
    }


async def test_a_period_over_the_limit_is_a_422_that_says_the_limit(
    client: AsyncTestClient[Litestar], app: Litestar, headers: dict[str, str]
) -> None:
    await fly(client, headers)  # 8 events in the last 10 days
    app.state.container.get(Simulations).limit = 8
    body = {"campaign": next_month(), **period(days_ago(10), NOW)}

    at_the_limit = await client.post(SIMULATE, json=body, headers=headers)
    assert at_the_limit.status_code == 200, at_the_limit.text
    app.state.container.get(Simulations).limit = 7
    problem = assert_problem(await client.post(SIMULATE, json=body, headers=headers), 422)

    assert "more than 7 stored events" in problem["detail"]


async def test_another_tenants_events_are_never_simulated(
    client: AsyncTestClient[Litestar], headers: dict[str, str]
) -> None:
    await fly(client, headers)
    other = bearer(await tenant_key(client, "globex", scopes=PARTNER))
    await post_events(client, other, flight("g1", "p1", "YVR", days_ago(1)))
    body = {"campaign": next_month(), **period(days_ago(10), NOW)}

    theirs = await simulate(client, other, body)
    ours = await simulate(client, headers, body)

    assert (theirs["events"], theirs["players"]) == (1, 1)
    assert [(e["player"], e["score"]) for e in theirs["top"]] == [("p1", 1)]
    assert (ours["events"], ours["players"]) == (8, 5)
    assert ours["top"][0]["score"] == 3  # not 4: globex's p1 is another player
