"""The award endpoint under realistic load: shuffled, batched, replayed and concurrent events.

Every outcome is checked against a plain reference fold written here, independent of the engine.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.gamify.support import (
    accepted_once,
    bearer,
    earn_your_wings,
    make_flights,
    post_batches,
    racing,
    reference,
    tenant_key,
)

pytestmark = pytest.mark.slow
PARTNER = ("events:write", "campaigns:write", "read")


async def test_shuffled_batches_give_every_player_the_reference_result(
    client: AsyncTestClient[Litestar],
) -> None:
    rng = random.Random(2013)
    headers = bearer(await tenant_key(client, scopes=PARTNER))
    await client.post("/v1/campaigns", json=earn_your_wings(), headers=headers)
    flights = make_flights(rng, players=500, most=16)
    rng.shuffle(flights)
    results = await post_batches(client, headers, flights, rng)
    assert Counter(r["status"] for r in results) == {"accepted": len(flights)}

    expected = reference(flights)
    for player, (score, badges) in expected.items():
        profile = (await client.get(f"/v1/players/{player}", headers=headers)).json()
        [standing] = profile["campaigns"]
        assert standing["score"] == score, player
        assert {
            b["badge"]: datetime.fromisoformat(b["awarded_at"]) for b in standing["badges"]
        } == badges, player

    first = {r["id"]: r["awards"] for r in results}
    replay = rng.sample(flights, 300)
    again = await post_batches(client, headers, replay, rng)
    assert [r["status"] for r in again] == ["duplicate"] * 300
    for r in again:
        assert r["awards"] == first[r["id"]], r["id"]


async def test_eight_clients_racing_with_the_same_events_award_once(
    client: AsyncTestClient[Litestar],
    db: asyncpg.Connection,
) -> None:
    rng = random.Random(8)
    headers = bearer(await tenant_key(client, scopes=PARTNER))
    await client.post("/v1/campaigns", json=earn_your_wings(), headers=headers)
    flights = make_flights(rng, players=150, most=26)[:2000]

    outcomes = await racing(client, headers, flights)
    assert accepted_once(outcomes, flights)
    statuses = Counter(r["status"] for results in outcomes for r in results)
    assert statuses == {"accepted": len(flights), "duplicate": 7 * len(flights)}

    expected = reference(flights)
    awarded_in_responses = [
        (a["badge"], r["id"])
        for results in outcomes
        for r in results
        if r["status"] == "accepted"
        for a in r["awards"]
    ]
    total = sum(len(badges) for _, badges in expected.values())
    assert len(awarded_in_responses) == total
    assert await db.fetchval("SELECT count(*) FROM awards") == total
    rows = await db.fetch("SELECT player_id, score FROM progress")
    scores = {row["player_id"]: row["score"] for row in rows}
    assert scores == {player: score for player, (score, _) in expected.items()}
