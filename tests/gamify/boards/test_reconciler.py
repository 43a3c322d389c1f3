"""The reconciler: one instance at a time replays what changed since anyone's last pass."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from gamify.boards import keys
from gamify.boards.reconciler import Reconciler
from gamify.boards.service import Boards
from gamify.campaigns.compiled import EngineCache
from gamify.platform import db
from gamify.platform.settings import Settings
from tests.gamify.support import (
    Servers,
    bearer,
    boards_settled,
    earn_your_wings,
    flight,
    tenant_key,
)

BOARD = keys.board("acme", "earn-your-wings")


@pytest.fixture
async def redis(servers: Servers) -> AsyncIterator[Redis]:
    client = Redis.from_url(servers.redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def reconciler(
    client: AsyncTestClient[Litestar], settings: Settings, redis: Redis
) -> AsyncIterator[Reconciler]:
    """Another instance's reconciler, once the app of `client` put p1 on the board at 1 point."""
    headers = bearer(await tenant_key(client, scopes=("events:write", "campaigns:write", "read")))
    # Starting in a minute, so that no backfill runs; events may be up to 5 minutes early.
    now = datetime.now(UTC)
    campaign = earn_your_wings(starts_at=now + timedelta(minutes=1))
    created = await client.post("/v1/campaigns", json=campaign, headers=headers)
    assert created.status_code == 201, created.text
    event = flight("e1", "p1", "YVR", now + timedelta(minutes=2))
    sent = await client.post("/v1/events", json={"events": [event]}, headers=headers)
    assert sent.status_code == 200, sent.text
    assert settings.database_url is not None
    pool = await db.connect(settings.database_url, 2)
    await boards_settled(redis, "acme", "earn-your-wings")
    yield Boards(pool, redis, EngineCache()).reconciler
    await pool.close()


async def test_a_pass_repairs_a_score_that_drifted_since_the_last_pass(
    reconciler: Reconciler, redis: Redis
) -> None:
    right = await redis.zscore(BOARD, "p1")
    await redis.zadd(BOARD, {"p1": 1})  # a lost write: same members, a stale score
    await redis.set(keys.RECONCILED, (datetime.now(UTC) - timedelta(minutes=5)).isoformat())

    assert await reconciler.reconcile() is True
    assert await redis.zscore(BOARD, "p1") == right


async def test_the_last_pass_of_any_instance_bounds_what_is_replayed(
    reconciler: Reconciler, redis: Redis
) -> None:
    await redis.zadd(BOARD, {"p1": 1})
    # Another instance passed after the event was written: nothing left for this pass.
    await redis.set(keys.RECONCILED, (datetime.now(UTC) + timedelta(minutes=1)).isoformat())

    assert await reconciler.reconcile() is True
    assert await redis.zscore(BOARD, "p1") == 1


async def test_while_another_instance_makes_its_pass_this_one_waits_its_turn(
    reconciler: Reconciler, redis: Redis
) -> None:
    await redis.set(keys.RECONCILING, "1")
    reconciler.mark_dirty()  # a failed write asked for a replay

    assert await reconciler.reconcile() is False
    assert reconciler._dirty.is_set()  # still owed: the loop tries again shortly

    await redis.delete(keys.RECONCILING)
    assert await reconciler.reconcile() is True
    assert not reconciler._dirty.is_set()
    assert await redis.get(keys.RECONCILED) is not None


async def test_a_score_beyond_the_ceiling_does_not_rebuild_the_board_every_pass(
    reconciler: Reconciler, redis: Redis, db: asyncpg.Connection
) -> None:
    # A player the board cannot rank exactly: in Postgres, left off the board.
    await db.execute(
        "INSERT INTO progress (tenant_id, campaign_id, player_id, state, score)"
        " VALUES ('acme', 'earn-your-wings', 'whale', '\\x', $1)",
        2**50,
    )
    rebuilt: list[tuple[str, str]] = []

    async def rebuild(tenant: str, campaign: str) -> None:
        rebuilt.append((tenant, campaign))

    reconciler.rebuild = lambda tenant, campaign: asyncio.ensure_future(rebuild(tenant, campaign))
    for _ in range(2):
        assert await reconciler.reconcile() is True
    assert rebuilt == []
    assert await redis.zscore(BOARD, "whale") is None


async def test_a_pass_rebuilds_a_board_whose_ready_marker_is_gone(
    reconciler: Reconciler, redis: Redis
) -> None:
    await redis.delete(keys.ready("acme", "earn-your-wings"), BOARD)

    assert await reconciler.reconcile() is True
    assert await redis.exists(keys.ready("acme", "earn-your-wings"))
    assert await redis.zscore(BOARD, "p1") is not None
