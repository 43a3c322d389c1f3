"""Leaderboards: exact ranks against a reference sort, through pages, neighbours, windows,
and Redis losing everything."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from gamify.app import create_app
from gamify.boards import keys, rebuild
from gamify.boards.service import Boards
from gamify.campaigns.compiled import EngineCache
from gamify.platform import db
from gamify.platform.embedded.valkey import EmbeddedValkey
from gamify.platform.settings import Settings
from tests.gamify.support import (
    Servers,
    assert_problem,
    bearer,
    boards_settled,
    earn_your_wings,
    expected_board,
    flight,
    make_flights,
    post_batches,
    read_board,
    reference,
    tenant_key,
)

pytestmark = pytest.mark.slow
PARTNER = ("events:write", "campaigns:write", "read", "players:token")
BOARD = "/v1/campaigns/earn-your-wings/leaderboard"


@pytest.fixture
async def partner(client: AsyncTestClient[Litestar]) -> tuple[dict[str, str], datetime]:
    headers = bearer(await tenant_key(client, scopes=PARTNER))
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)
    created = await client.post(
        "/v1/campaigns", json=earn_your_wings(starts_at=start), headers=headers
    )
    assert created.status_code == 201
    return headers, start


async def test_the_paginated_board_equals_the_reference_sort(
    client: AsyncTestClient[Litestar],
    partner: tuple[dict[str, str], datetime],
) -> None:
    headers, start = partner
    rng = random.Random(480)
    flights = make_flights(rng, players=2000, most=14)
    rng.shuffle(flights)
    await post_batches(client, headers, flights, rng)

    expected = expected_board(flights, start)
    board = await read_board(client, headers)
    assert [(e["player"], e["score"]) for e in board] == expected
    assert [e["rank"] for e in board] == list(range(1, len(expected) + 1))

    for player, _ in rng.sample(expected, 50):
        rank = next(i for i, (p, _) in enumerate(expected, 1) if p == player)
        mine = await client.get(
            f"{BOARD}/players/{player}", params={"around": "3"}, headers=headers
        )
        body = mine.json()
        assert (body["rank"], body["total"]) == (rank, len(expected))
        assert [e["player"] for e in body["around"]] == [
            p for p, _ in expected[max(0, rank - 4) : rank + 3]
        ]
        assert body["percentile"] == round(100 * (len(expected) - rank) / len(expected), 2)


async def test_ties_on_points_rank_whoever_reached_them_first(
    client: AsyncTestClient[Litestar],
    partner: tuple[dict[str, str], datetime],
) -> None:
    headers, start = partner
    flights = [
        {
            "id": "a",
            "player": "late",
            "type": "flight.completed",
            "occurred_at": (start + timedelta(days=3)).isoformat(),
            "attributes": {"destination": "YVR"},
        },
        {
            "id": "b",
            "player": "early",
            "type": "flight.completed",
            "occurred_at": (start + timedelta(days=2)).isoformat(),
            "attributes": {"destination": "YUL"},
        },
    ]
    ranks = []
    for event in flights:  # one request each: each answer is the rank as it was then
        response = await client.post("/v1/events", json={"events": [event]}, headers=headers)
        ranks.append(response.json()["results"][0]["scores"][0]["rank"])
    assert ranks == [1, 1]
    assert [e["player"] for e in await read_board(client, headers)] == ["early", "late"]
    # a late report moves "late" ahead: same points, reached earlier
    [moved] = await post_batches(
        client,
        headers,
        [
            {
                "id": "c",
                "player": "late",
                "type": "flight.completed",
                "occurred_at": (start + timedelta(days=1)).isoformat(),
                "attributes": {"destination": "YVR"},
            }
        ],
        random.Random(1),
    )
    assert (moved["scores"][0]["rank"], moved["scores"][0]["previous_rank"]) == (1, 2)
    assert [e["player"] for e in await read_board(client, headers)] == ["late", "early"]


async def test_boards_survive_redis_losing_everything_mid_load(
    client: AsyncTestClient[Litestar],
    servers: Servers,
    partner: tuple[dict[str, str], datetime],
) -> None:
    headers, start = partner
    rng = random.Random(605)
    flights = make_flights(rng, players=300, most=14)
    rng.shuffle(flights)
    half = len(flights) // 2
    await post_batches(client, headers, flights[:half], rng)
    redis = Redis.from_url(servers.redis_url)
    await redis.flushall()
    await redis.aclose()
    results = await post_batches(client, headers, flights[half:], rng)
    assert {r["status"] for r in results} == {"accepted"}
    # The writes that found the boards gone started a rebuild; reads wait for it.
    board = await read_board(client, headers)
    assert [(e["player"], e["score"]) for e in board] == expected_board(flights, start)


async def test_unknown_board_period_and_cursor_are_named(
    client: AsyncTestClient[Litestar],
    partner: tuple[dict[str, str], datetime],
) -> None:
    headers, _ = partner
    daily = await client.get(BOARD, params={"board": "daily"}, headers=headers)
    assert assert_problem(daily, 400)["errors"][0]["field"] == "board"
    tuesday = await client.get(
        BOARD, params={"board": "weekly", "period": "2026-11-24"}, headers=headers
    )
    assert assert_problem(tuesday, 400)["errors"][0]["field"] == "period"
    cursor = await client.get(BOARD, params={"after": "not-a-cursor"}, headers=headers)
    assert assert_problem(cursor, 400)["errors"][0]["field"] == "after"
    assert_problem(await client.get("/v1/campaigns/nope/leaderboard", headers=headers), 404)
    assert_problem(await client.get(f"{BOARD}/players/ghost", headers=headers), 404)


async def test_a_player_token_reads_the_boards_of_its_tenant(
    client: AsyncTestClient[Litestar],
    partner: tuple[dict[str, str], datetime],
) -> None:
    headers, start = partner
    await post_batches(
        client,
        headers,
        [
            {
                "id": "x",
                "player": "p-1",
                "type": "flight.completed",
                "occurred_at": (start + timedelta(days=1)).isoformat(),
                "attributes": {"destination": "YVR"},
            }
        ],
        random.Random(1),
    )
    token = (await client.post("/v1/players/p-1/token", headers=headers)).json()["token"]
    board = await client.get(BOARD, headers=bearer(token))
    assert [e["player"] for e in board.json()["entries"]] == ["p-1"]
    profile = await client.get("/v1/players/p-1", headers=bearer(token))
    assert profile.json()["campaigns"][0]["rank"] == 1
    rival = bearer(await tenant_key(client, "rival", ("read",)))
    assert_problem(await client.get(BOARD, headers=rival), 404)


async def test_events_are_accepted_while_redis_is_down_and_ranks_come_back(
    settings: Settings,
    clean: None,
    tmp_path: Path,
) -> None:
    valkey = EmbeddedValkey(tmp_path / "valkey", durable=False)
    valkey.start()
    try:
        app = create_app(msgspec.structs.replace(settings, redis_url=valkey.url))
        async with AsyncTestClient(app) as client:
            headers = bearer(await tenant_key(client, scopes=PARTNER))
            start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)
            await client.post(
                "/v1/campaigns", json=earn_your_wings(starts_at=start), headers=headers
            )
            rng = random.Random(2353)
            flights = make_flights(rng, players=200, most=12)
            rng.shuffle(flights)
            third = len(flights) // 3
            await post_batches(client, headers, flights[:third], rng)

            valkey.stop()
            during = await post_batches(client, headers, flights[third : 2 * third], rng)
            assert {r["status"] for r in during} == {"accepted"}
            down = await client.get(BOARD, headers=headers)
            assert_problem(down, 503)
            assert down.headers["retry-after"] == "1"
            profile = await client.get(f"/v1/players/{flights[0]['player']}", headers=headers)
            assert profile.status_code == 200, "a profile shows, without ranks"
            assert all("rank" not in s for r in during for s in r["scores"])

            valkey.start()  # empty: no boards, no functions
            rest = flights[2 * third :]
            await post_batches(client, headers, rest[:10], rng)  # finds the boards gone
            await read_board(client, headers)  # waits for the rebuild they started
            after = await post_batches(client, headers, rest[10:], rng)
            assert all("rank" in r["scores"][0] for r in after if r["scores"])
            board = await read_board(client, headers)
            assert [(e["player"], e["score"]) for e in board] == expected_board(flights, start)
    finally:
        valkey.stop()


async def test_gamify_rebuild_restores_flushed_boards(
    client: AsyncTestClient[Litestar],
    servers: Servers,
    migrated: str,
    partner: tuple[dict[str, str], datetime],
    tmp_path: Path,
) -> None:
    headers, start = partner
    rng = random.Random(7)
    flights = make_flights(rng, players=100, most=12)
    await post_batches(client, headers, flights, rng)
    redis = Redis.from_url(servers.redis_url)
    await redis.flushall()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GAMIFY_")},
        "GAMIFY_DATABASE_URL": migrated,
        "GAMIFY_REDIS_URL": servers.redis_url,
        "GAMIFY_DATA_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "gamify", "rebuild", "--tenant", "acme"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "acme/earn-your-wings" in done.stdout
    assert await redis.zcard("lb:{acme:earn-your-wings}:campaign") == len(reference(flights))
    await redis.aclose()
    board = await read_board(client, headers)
    assert [(e["player"], e["score"]) for e in board] == expected_board(flights, start)


async def test_a_rebuild_that_redis_lost_halfway_leaves_the_boards_unready(
    client: AsyncTestClient[Litestar],
    servers: Servers,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    headers = bearer(await tenant_key(client, scopes=PARTNER))
    # Starting in a minute (events may come 5 minutes early): no backfill runs beside the test.
    starts = datetime.now(UTC) + timedelta(minutes=1)
    soon = earn_your_wings(campaign_id="soon", starts_at=starts)
    assert (await client.post("/v1/campaigns", json=soon, headers=headers)).status_code == 201
    events = [flight(f"e{i}", f"p{i}", "YVR", starts + timedelta(minutes=1)) for i in range(20)]
    sent = await client.post("/v1/events", json={"events": events}, headers=headers)
    assert sent.status_code == 200, sent.text
    redis = Redis.from_url(servers.redis_url)
    assert settings.database_url is not None
    pool = await db.connect(settings.database_url, 2)
    try:
        await boards_settled(redis, "acme", "soon")
        compiled = await Boards(pool, redis, EngineCache()).lookup("acme", "soon")
        assert compiled is not None
        stream = rebuild._stream

        async def then_redis_restarts_empty(*args: Any) -> int:
            written = await stream(*args)
            await redis.flushall()
            return written

        monkeypatch.setattr(rebuild, "_stream", then_redis_restarts_empty)
        assert await rebuild.rebuild(pool, redis, "acme", compiled) is None  # call again
        assert not await redis.exists(keys.ready("acme", "soon"), keys.rebuilding("acme", "soon"))

        monkeypatch.setattr(rebuild, "_stream", stream)
        assert await rebuild.rebuild(pool, redis, "acme", compiled) is not None
        assert await redis.exists(keys.ready("acme", "soon"))
        assert await redis.zcard(keys.board("acme", "soon")) == 20
    finally:
        await pool.close()
        await redis.aclose()
