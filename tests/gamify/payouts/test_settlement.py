"""The clock settles a campaign by itself, once, and the pool is split exactly; cancel, early
settlement and preview."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from gamify.app import create_app
from gamify.payouts import settlement, split
from gamify.platform import db
from gamify.platform.settings import Settings
from tests.gamify.support import (
    assert_problem,
    bearer,
    earn_your_wings,
    flight,
    hours_ago,
    tenant_key,
)

PARTNER = ("events:write", "campaigns:write", "read")
MILES = 10_000_000


@pytest.fixture
async def headers(client: AsyncTestClient[Litestar]) -> dict[str, str]:
    return bearer(await tenant_key(client, scopes=PARTNER))


def ending_soon(seconds: float, grace: str = "PT1S") -> dict[str, Any]:
    """A campaign that began an hour ago and ends `seconds` from now (no backfill: its start is
    set back only after creation would matter)."""
    start = datetime.now(UTC) - timedelta(hours=1)
    campaign = earn_your_wings(starts_at=start)
    campaign["ends_at"] = (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()
    campaign["grace"] = grace
    return campaign


async def _fly(client: AsyncTestClient[Litestar], headers: dict[str, str]) -> None:
    # p1: 3 badges, p2: 1 badge, p3: none (an unknown destination)
    events = [
        flight("a1", "p1", "YVR", hours_ago(0.5)),
        flight("a2", "p1", "YYC", hours_ago(0.4)),
        flight("a3", "p1", "YUL", hours_ago(0.3)),
        flight("b1", "p2", "YVR", hours_ago(0.2)),
        flight("c1", "p3", "XXX", hours_ago(0.1)),
    ]
    sent = await client.post("/v1/events", json={"events": events}, headers=headers)
    assert sent.status_code == 200, sent.text


async def _status(client: AsyncTestClient[Litestar], headers: dict[str, str]) -> str:
    status: str = (await client.get("/v1/campaigns/earn-your-wings", headers=headers)).json()[
        "status"
    ]
    return status


async def _until(client: AsyncTestClient[Litestar], headers: dict[str, str], wanted: str) -> None:
    for _ in range(200):
        if await _status(client, headers) == wanted:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the campaign never became {wanted}")


async def test_the_clock_settles_a_campaign_once_and_splits_the_pool_to_the_mile(
    client: AsyncTestClient[Litestar],
    headers: dict[str, str],
    settings: Settings,
    db: asyncpg.Connection,
) -> None:
    assert (await client.post("/v1/campaigns", json=ending_soon(3), headers=headers)).is_success
    await _fly(client, headers)
    assert await _status(client, headers) == "live"
    async with AsyncTestClient(create_app(settings)):  # a second instance, with its own clock
        await _until(client, headers, "settled")

    payouts = (await client.get("/v1/campaigns/earn-your-wings/payouts", headers=headers)).json()
    assert (payouts["amount"], payouts["allocated"], payouts["eligible"]) == (MILES, MILES, 2)
    # Proportional to badges: 3 and 1 of 4.
    assert [(i["player"], i["amount"], i["status"]) for i in payouts["items"]] == [
        ("p1", 7_500_000, "pending"),
        ("p2", 2_500_000, "pending"),
    ]
    assert await db.fetchval("SELECT count(*) FROM payouts") == 2
    settled = await db.fetchval("SELECT settled_at FROM campaigns WHERE id = 'earn-your-wings'")
    await asyncio.sleep(1.5)  # more clock ticks of both instances: nothing moves
    assert await db.fetchval("SELECT settled_at FROM campaigns") == settled
    board = (await client.get("/v1/campaigns/earn-your-wings/leaderboard", headers=headers)).json()
    assert [(e["player"], e["score"]) for e in board["entries"]] == [("p1", 3), ("p2", 1)]


async def test_preview_splits_the_pool_as_it_stands_and_writes_nothing(
    client: AsyncTestClient[Litestar], headers: dict[str, str], db: asyncpg.Connection
) -> None:
    await client.post("/v1/campaigns", json=earn_your_wings(), headers=headers)
    await _fly(client, headers)
    preview = await client.post("/v1/campaigns/earn-your-wings/payouts/preview", headers=headers)
    assert preview.status_code == 200, preview.text
    body = preview.json()
    assert (body["allocated"], body["unallocated"], body["eligible"]) == (MILES, 0, 2)
    assert [(i["player"], i["amount"], i["rank"]) for i in body["items"]] == [
        ("p1", 7_500_000, 1),
        ("p2", 2_500_000, 2),
    ]
    assert await db.fetchval("SELECT count(*) FROM payouts") == 0
    assert await _status(client, headers) == "live"


async def test_settle_now_settles_an_ended_campaign_before_its_grace_is_over(
    client: AsyncTestClient[Litestar], headers: dict[str, str]
) -> None:
    await client.post("/v1/campaigns", json=ending_soon(1, grace="P1D"), headers=headers)
    await _fly(client, headers)
    early = await client.post("/v1/campaigns/earn-your-wings/settle", headers=headers)
    assert_problem(early, 409)  # still live
    await _until(client, headers, "ended")

    settled = await client.post("/v1/campaigns/earn-your-wings/settle", headers=headers)
    assert settled.status_code == 200, settled.text
    assert settled.json()["allocated"] == MILES
    assert await _status(client, headers) == "settled"
    assert_problem(await client.post("/v1/campaigns/earn-your-wings/cancel", headers=headers), 409)


async def test_a_campaign_cancelled_before_its_end_pays_no_pool(
    client: AsyncTestClient[Litestar], headers: dict[str, str], db: asyncpg.Connection
) -> None:
    await client.post("/v1/campaigns", json=ending_soon(2), headers=headers)
    await _fly(client, headers)
    cancelled = await client.post("/v1/campaigns/earn-your-wings/cancel", headers=headers)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"

    await asyncio.sleep(3.5)  # past its end and grace: the clock leaves it alone
    assert await _status(client, headers) == "cancelled"
    assert await db.fetchval("SELECT count(*) FROM payouts") == 0
    assert_problem(await client.post("/v1/campaigns/earn-your-wings/settle", headers=headers), 409)
    # Its scores stay as they were.
    board = (await client.get("/v1/campaigns/earn-your-wings/leaderboard", headers=headers)).json()
    assert [(e["player"], e["score"]) for e in board["entries"]] == [("p1", 3), ("p2", 1)]


async def test_a_pool_with_nobody_eligible_settles_with_nothing_allocated(
    client: AsyncTestClient[Litestar], headers: dict[str, str]
) -> None:
    campaign = ending_soon(1)
    campaign["prize_pool"]["eligibility"] = {"min_badges": 5}
    await client.post("/v1/campaigns", json=campaign, headers=headers)
    await _fly(client, headers)
    await _until(client, headers, "settled")
    payouts = (await client.get("/v1/campaigns/earn-your-wings/payouts", headers=headers)).json()
    assert (payouts["allocated"], payouts["eligible"], payouts["items"]) == (0, 0, [])


async def test_a_settlement_stalled_in_its_transaction_lets_go_of_the_campaign(
    client: AsyncTestClient[Litestar],
    headers: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    migrated: str,
) -> None:
    """An instance that stalls mid-settlement (here: splitting the pool blocks for 2 s, beyond
    an idle bound of 1 s) loses its session and with it the campaign's lock, instead of holding
    it until Postgres finds the connection dead; the next settlement pays the pool once."""
    await client.post("/v1/campaigns", json=ending_soon(1, grace="P1D"), headers=headers)
    await _fly(client, headers)
    await _until(client, headers, "ended")
    tenant = (await client.get("/v1/me", headers=headers)).json()["tenant"]

    def stalled(*args: Any) -> Any:
        time.sleep(2)  # the event loop, and so the session, sits idle in the transaction
        return split.allocate(*args)

    monkeypatch.setattr(settlement, "IDLE_IN_SETTLEMENT", 1.0)
    monkeypatch.setattr(settlement, "allocate", stalled)
    pool = await db.connect(migrated, 2)
    try:
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError)):
            await settlement.settle(pool, tenant, "earn-your-wings", early=True)
        assert await _status(client, headers) != "settled"

        monkeypatch.setattr(settlement, "allocate", split.allocate)
        assert await settlement.settle(pool, tenant, "earn-your-wings", early=True)
    finally:
        await pool.close()
    assert await _status(client, headers) == "settled"
    paid = (await client.get("/v1/campaigns/earn-your-wings/payouts", headers=headers)).json()
    assert sum(p["amount"] for p in paid["items"]) == MILES
