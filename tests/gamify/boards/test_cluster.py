"""The same boards on a 3-master Valkey cluster, started from the embedded binary."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from gamify.app import create_app
from gamify.platform.settings import Settings
from tests.gamify.support import (
    bearer,
    earn_your_wings,
    expected_board,
    make_flights,
    post_batches,
    read_board,
    tenant_key,
)

pytestmark = pytest.mark.slow
PARTNER = ("events:write", "campaigns:write", "read")


async def test_boards_on_a_cluster_match_the_reference(
    settings: Settings,
    clean: None,
    cluster: str,
) -> None:
    app = create_app(msgspec.structs.replace(settings, redis_url=cluster))
    async with AsyncTestClient(app) as client:
        headers = bearer(await tenant_key(client, scopes=PARTNER))
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)
        await client.post("/v1/campaigns", json=earn_your_wings(starts_at=start), headers=headers)
        rng = random.Random(3)
        flights = make_flights(rng, players=300, most=12)
        rng.shuffle(flights)
        results = await post_batches(client, headers, flights, rng)
        assert all("rank" in r["scores"][0] for r in results if r["scores"])
        board = await read_board(client, headers)
        assert [(e["player"], e["score"]) for e in board] == expected_board(flights, start)
        player = board[17]["player"]
        mine = await client.get(
            f"/v1/campaigns/earn-your-wings/leaderboard/players/{player}", headers=headers
        )
        assert mine.json()["rank"] == 18
        assert (await client.get("/ready")).status_code == 200
