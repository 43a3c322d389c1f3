"""A campaign created with a past start owes the events already reported: the backfill.

What it still owes is kept in the campaign row, so a backfill outlives the instance that began
it, and two instances working on the same campaign never fold a chunk twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from gamify.app import create_app
from gamify.campaigns import store as campaigns
from gamify.campaigns.compiled import CompiledCampaign, EngineCache
from gamify.campaigns.document import parse
from gamify.events import backfill
from gamify.platform import db
from gamify.platform.settings import Settings
from tests.gamify.support import bearer, earn_your_wings, flight, hours_ago, tenant_key

PARTNER = ("events:write", "campaigns:write", "read")
TENANT = "acme"


@pytest.fixture
async def partner(client: AsyncTestClient[Litestar]) -> dict[str, str]:
    return bearer(await tenant_key(client, TENANT, scopes=PARTNER))


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    assert settings.database_url is not None
    connected = await db.connect(settings.database_url, 4)
    yield connected
    await connected.close()


async def report(
    client: AsyncTestClient[Litestar], headers: dict[str, str], players: int, per_player: int
) -> None:
    """Flights of `players` players, reported before any campaign takes them."""
    codes = ["YVR", "YUL", "YYC", "YEG"]
    events = [
        flight(f"f-{p}-{i}", f"p-{p:03d}", codes[i % len(codes)], hours_ago(40 - i))
        for p in range(players)
        for i in range(per_player)
    ]
    for at in range(0, len(events), 1000):
        sent = await client.post(
            "/v1/events", json={"events": events[at : at + 1000]}, headers=headers
        )
        assert sent.status_code == 200, sent.text


async def owed_campaign(pool: asyncpg.Pool, campaign_id: str) -> CompiledCampaign:
    """A campaign stored with a past start whose backfill nobody has begun, as if the instance
    that created it stopped at once."""
    document = earn_your_wings(
        campaign_id=campaign_id, starts_at=datetime.now(UTC) - timedelta(hours=72), days=10
    )
    async with pool.acquire() as conn:
        row = await campaigns.create(conn, TENANT, parse(document), actor="test")
    assert row is not None and row.backfill_pending
    return EngineCache().get(TENANT, row.open())


async def board_total(client: AsyncTestClient[Litestar], headers: dict[str, str], cid: str) -> int:
    board = await client.get(f"/v1/campaigns/{cid}/leaderboard", headers=headers)
    return int(board.json()["total"]) if board.status_code == 200 else -1


async def test_a_backfill_left_owed_is_resumed_by_the_next_instance_to_start(
    client: AsyncTestClient[Litestar],
    partner: dict[str, str],
    db: asyncpg.Connection,
    pool: asyncpg.Pool,
    settings: Settings,
) -> None:
    await report(client, partner, players=3, per_player=2)
    await owed_campaign(pool, "retro")

    async with AsyncTestClient(create_app(settings)) as restarted:
        for _ in range(100):
            if await board_total(restarted, partner, "retro") == 3:
                break
            await asyncio.sleep(0.1)
        board = (await restarted.get("/v1/campaigns/retro/leaderboard", headers=partner)).json()
    assert sorted((e["player"], e["score"]) for e in board["entries"]) == [
        ("p-000", 2),
        ("p-001", 2),
        ("p-002", 2),
    ]
    assert await db.fetchval("SELECT backfill_pending FROM campaigns WHERE id = 'retro'") is False


async def test_a_backfill_goes_on_after_the_last_player_it_folded(
    client: AsyncTestClient[Litestar],
    partner: dict[str, str],
    db: asyncpg.Connection,
    pool: asyncpg.Pool,
) -> None:
    await report(client, partner, players=3, per_player=1)
    compiled = await owed_campaign(pool, "retro")
    # As if a chunk holding p-000 and p-001 had committed before the instance stopped.
    await db.execute("UPDATE campaigns SET backfill_after = 'p-001' WHERE id = 'retro'")

    assert await backfill.backfill(pool, TENANT, compiled) == 1
    counted = await db.fetch(
        "SELECT player_id FROM progress WHERE campaign_id = 'retro' ORDER BY player_id"
    )
    assert [r["player_id"] for r in counted] == ["p-002"]


async def test_two_instances_backfilling_one_campaign_fold_each_event_once(
    client: AsyncTestClient[Litestar],
    partner: dict[str, str],
    db: asyncpg.Connection,
    pool: asyncpg.Pool,
) -> None:
    players = backfill.PLAYERS_PER_TRANSACTION * 2 + 50
    await report(client, partner, players=players, per_player=2)
    compiled = await owed_campaign(pool, "retro")

    folded = await asyncio.gather(
        backfill.backfill(pool, TENANT, compiled), backfill.backfill(pool, TENANT, compiled)
    )

    assert sum(folded) == players * 2  # each chunk went to exactly one of them
    scores = await db.fetch("SELECT score FROM progress WHERE campaign_id = 'retro'")
    assert len(scores) == players and {r["score"] for r in scores} == {2}
    assert await db.fetchval("SELECT backfill_pending FROM campaigns WHERE id = 'retro'") is False


async def test_moving_an_unstarted_campaign_into_the_past_takes_the_reported_events(
    client: AsyncTestClient[Litestar], partner: dict[str, str]
) -> None:
    await report(client, partner, players=2, per_player=1)
    later = earn_your_wings(campaign_id="soon", starts_at=datetime.now(UTC) + timedelta(days=2))
    assert (await client.post("/v1/campaigns", json=later, headers=partner)).status_code == 201

    earlier = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    moved = await client.patch("/v1/campaigns/soon", json={"starts_at": earlier}, headers=partner)
    assert moved.status_code == 200, moved.text

    for _ in range(100):
        if await board_total(client, partner, "soon") == 2:
            break
        await asyncio.sleep(0.1)
    assert await board_total(client, partner, "soon") == 2
