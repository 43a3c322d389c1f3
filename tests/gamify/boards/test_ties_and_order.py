"""Ties page out exactly, and window writes that reach Redis out of order never let the older
one win."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from gamify.boards import functions, keys
from gamify.boards.updates import BoardScore, BoardUpdate
from gamify.boards.writer import BoardWriter
from tests.gamify.support import (
    Servers,
    bearer,
    boards_settled,
    earn_your_wings,
    flight,
    hours_ago,
    read_board,
    tenant_key,
)

PARTNER = ("events:write", "campaigns:write", "read")


@pytest.fixture
async def redis(servers: Servers, clean: None) -> AsyncIterator[Redis]:
    client = Redis.from_url(servers.redis_url)
    await functions.load(client)
    yield client
    await client.aclose()


async def test_150_players_tied_to_the_second_page_out_whole(
    client: AsyncTestClient[Litestar],
) -> None:
    headers = bearer(await tenant_key(client, scopes=PARTNER))
    await client.post("/v1/campaigns", json=earn_your_wings(), headers=headers)
    when = hours_ago(2).replace(microsecond=0)
    events = [flight(f"e{i}", f"p{i:03}", "YVR", when) for i in range(150)]
    sent = await client.post("/v1/events", json={"events": events}, headers=headers)
    assert sent.status_code == 200, sent.text

    for limit in (7, 64, 100):
        entries = await read_board(client, headers, limit=limit)
        assert [e["rank"] for e in entries] == list(range(1, 151)), limit
        # Equal scores: Redis's order, the greater player id first.
        assert [e["player"] for e in entries] == [f"p{i:03}" for i in reversed(range(150))]


async def test_a_cursor_whose_player_left_the_board_still_pages_exactly(
    client: AsyncTestClient[Litestar], redis: Redis
) -> None:
    headers = bearer(await tenant_key(client, scopes=PARTNER))
    await client.post("/v1/campaigns", json=earn_your_wings(), headers=headers)
    when = hours_ago(2).replace(microsecond=0)
    events = [flight(f"e{i}", f"p{i:03}", "YVR", when) for i in range(20)]
    await client.post("/v1/events", json={"events": events}, headers=headers)
    path = "/v1/campaigns/earn-your-wings/leaderboard"
    first = (await client.get(path, params={"limit": "5"}, headers=headers)).json()
    assert [e["player"] for e in first["entries"]] == ["p019", "p018", "p017", "p016", "p015"]

    await boards_settled(redis, "acme", "earn-your-wings")  # no rebuild to undo what follows
    await redis.zrem(keys.board("acme", "earn-your-wings"), "p015")  # the cursor's player
    rest = await client.get(path, params={"limit": "3", "after": first["next"]}, headers=headers)
    body = rest.json()
    assert [e["player"] for e in body["entries"]] == ["p014", "p013", "p012"]
    assert [e["rank"] for e in body["entries"]] == [5, 6, 7]


def _update(version: int, points: int | None) -> BoardUpdate:
    key = keys.board("acme", "c1", "daily", date(2026, 1, 5))
    encoded = None if points is None else points << 20
    score = BoardScore(key, "daily", date(2026, 1, 5), points or 0, encoded)
    return BoardUpdate("c1", "p1", [score], 2**40, version)


async def test_an_older_window_write_landing_last_does_not_win(redis: Redis) -> None:
    writer = BoardWriter(redis, lambda t, c: None, lambda: None, lambda written: None)
    board = keys.board("acme", "c1", "daily", date(2026, 1, 5))

    await writer.write("acme", [_update(version=3, points=5)], set())
    await writer.write("acme", [_update(version=2, points=9)], set())  # committed earlier
    assert await redis.zscore(board, "p1") == 5 << 20

    await writer.write("acme", [_update(version=1, points=None)], set())  # an old removal
    assert await redis.zscore(board, "p1") == 5 << 20
    await writer.write("acme", [_update(version=4, points=None)], set())  # a newer one
    assert await redis.zscore(board, "p1") is None


async def test_an_older_write_still_lands_on_a_window_the_newer_one_did_not_touch(
    redis: Redis,
) -> None:
    writer = BoardWriter(redis, lambda t, c: None, lambda: None, lambda written: None)
    monday, tuesday = date(2026, 1, 5), date(2026, 1, 6)

    def daily(day: date, points: int) -> BoardScore:
        key = keys.board("acme", "c1", "daily", day)
        return BoardScore(key, "daily", day, points, points << 20)

    newer = BoardUpdate("c1", "p1", [daily(tuesday, 2)], 2**40, version=5)
    older = BoardUpdate("c1", "p1", [daily(monday, 1), daily(tuesday, 1)], 2**40, version=4)
    await writer.write("acme", [newer], set())
    await writer.write("acme", [older], set())  # reached Redis last
    assert await redis.zscore(keys.board("acme", "c1", "daily", tuesday), "p1") == 2 << 20
    assert await redis.zscore(keys.board("acme", "c1", "daily", monday), "p1") == 1 << 20
