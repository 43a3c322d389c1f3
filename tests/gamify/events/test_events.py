"""The award endpoint: events in, badges and scores out, exactly once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.gamify.support import (
    assert_problem,
    bearer,
    earn_your_wings,
    flight,
    hours_ago,
    post_events,
    tenant_key,
)

PARTNER = ("events:write", "campaigns:write", "read")


@pytest.fixture
async def partner(client: AsyncTestClient[Litestar]) -> dict[str, str]:
    """A tenant with the live "Earn your wings" campaign; returns its key's headers."""
    key = await tenant_key(client, scopes=PARTNER)
    created = await client.post("/v1/campaigns", json=earn_your_wings(), headers=bearer(key))
    assert created.status_code == 201, created.text
    return bearer(key)


async def test_a_flight_earns_its_destination_badge(
    client: AsyncTestClient[Litestar], partner: dict[str, str]
) -> None:
    when = hours_ago(5)
    [result] = await post_events(client, partner, flight("pnr-1", "p-42", "YVR", when, miles=2300))
    assert result["status"] == "accepted"
    assert [(a["campaign"], a["badge"]) for a in result["awards"]] == [("earn-your-wings", "yvr")]
    assert datetime.fromisoformat(result["awards"][0]["awarded_at"]) == when
    toronto = when.astimezone(ZoneInfo("America/Toronto")).date()
    monday = toronto - timedelta(days=toronto.weekday())
    assert result["scores"] == [
        {"campaign": "earn-your-wings", "board": "campaign", "score": 1, "rank": 1},
        {
            "campaign": "earn-your-wings",
            "board": "weekly",
            "score": 1,
            "rank": 1,
            "period": monday.isoformat(),
        },
    ]


async def test_ten_destinations_earn_the_explorer_badge_on_the_tenth(
    client: AsyncTestClient[Litestar], partner: dict[str, str]
) -> None:
    codes = ["YVR", "YYC", "YEG", "YWG", "YUL", "YOW", "YHZ", "YQB", "YYJ", "YXE"]
    flights = [flight(f"f{i}", "p-7", code, hours_ago(100 - i)) for i, code in enumerate(codes)]
    results = await post_events(client, partner, *flights)
    assert [r["status"] for r in results] == ["accepted"] * 10
    assert sorted(a["badge"] for a in results[9]["awards"]) == ["explorer", "yxe"]
    assert results[9]["scores"][0]["score"] == 10 + 5


async def test_a_replay_is_a_duplicate_with_the_original_awards(
    client: AsyncTestClient[Litestar], partner: dict[str, str], db: asyncpg.Connection
) -> None:
    event = flight("pnr-2", "p-1", "YUL", hours_ago(3))
    [first] = await post_events(client, partner, event)
    counts = await _counts(db)
    [again] = await post_events(client, partner, event)
    assert again["status"] == "duplicate"
    assert again["awards"] == first["awards"]
    assert await _counts(db) == counts


async def test_an_id_reused_with_another_payload_is_rejected_alone(
    client: AsyncTestClient[Litestar], partner: dict[str, str]
) -> None:
    await post_events(client, partner, flight("pnr-3", "p-1", "YUL", hours_ago(3)))
    results = await post_events(
        client,
        partner,
        flight("pnr-3", "p-1", "YVR", hours_ago(3)),
        flight("pnr-4", "p-1", "YVR", hours_ago(2)),
    )
    assert results[0]["status"] == "rejected"
    assert "different payload" in results[0]["error"]
    assert results[1]["status"] == "accepted"


async def test_the_same_id_twice_in_one_request(
    client: AsyncTestClient[Litestar], partner: dict[str, str]
) -> None:
    event = flight("pnr-5", "p-1", "YYC", hours_ago(3))
    changed = flight("pnr-5", "p-1", "YEG", hours_ago(3))
    results = await post_events(client, partner, event, event, changed)
    assert [r["status"] for r in results] == ["accepted", "duplicate", "rejected"]
    assert results[1]["awards"] == results[0]["awards"]


async def test_an_event_from_the_future_is_rejected_alone(
    client: AsyncTestClient[Litestar], partner: dict[str, str]
) -> None:
    soon = datetime.now(UTC) + timedelta(minutes=4)
    later = datetime.now(UTC) + timedelta(minutes=6)
    results = await post_events(
        client, partner, flight("a", "p-1", "YVR", later), flight("b", "p-1", "YYC", soon)
    )
    assert results[0]["status"] == "rejected"
    assert "future" in results[0]["error"]
    assert results[1]["status"] == "accepted"


async def test_oversized_attributes_are_rejected_alone(
    client: AsyncTestClient[Litestar], partner: dict[str, str]
) -> None:
    results = await post_events(
        client,
        partner,
        flight("big", "p-1", "YVR", hours_ago(1), notes="x" * 5000),
        flight("small", "p-1", "YYC", hours_ago(1)),
    )
    assert [r["status"] for r in results] == ["rejected", "accepted"]


async def test_an_event_outside_the_campaign_changes_nothing_there(
    client: AsyncTestClient[Litestar], partner: dict[str, str]
) -> None:
    [result] = await post_events(client, partner, flight("old", "p-1", "YVR", hours_ago(24 * 40)))
    assert result == {"id": "old", "status": "accepted", "awards": [], "scores": []}


async def test_bad_input_names_every_bad_field_and_writes_nothing(
    client: AsyncTestClient[Litestar], partner: dict[str, str], db: asyncpg.Connection
) -> None:
    good = flight("ok", "p-1", "YVR", hours_ago(1))
    bad_type = {**good, "id": "t", "player": 42}
    missing = {k: v for k, v in good.items() if k != "type"}
    bad_time = {**good, "id": "bt", "occurred_at": "yesterday"}
    naive_time = {**good, "id": "nt", "occurred_at": "2026-01-01T10:00:00"}
    response = await client.post(
        "/v1/events",
        json={"events": [good, bad_type, missing, bad_time, naive_time]},
        headers=partner,
    )
    fields = [e["field"] for e in assert_problem(response, 400)["errors"]]
    assert fields == [
        "events[1].player",
        "events[2].type",
        "events[3].occurred_at",
        "events[4].occurred_at",
    ]
    assert await _counts(db) == (0, 0, 0)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"events": []}',
        b'{"events": {}}',
        b'{"events": [1]}',
        b"{}",
        b'{"events": [], "extra": 1}',
    ],
)
async def test_malformed_bodies_are_400(
    client: AsyncTestClient[Litestar], partner: dict[str, str], body: bytes
) -> None:
    response = await client.post("/v1/events", content=body, headers=partner)
    assert assert_problem(response, 400)["errors"]


async def test_more_than_1000_events_is_400_and_a_huge_body_is_413(
    client: AsyncTestClient[Litestar], partner: dict[str, str], db: asyncpg.Connection
) -> None:
    many = [flight(f"e{i}", "p-1", "YVR", hours_ago(1)) for i in range(1001)]
    too_many = await client.post("/v1/events", json={"events": many}, headers=partner)
    assert assert_problem(too_many, 400)["errors"][0]["field"] == "events"
    huge = flight("h", "p-1", "YVR", hours_ago(1), notes="x" * (1024 * 1024))
    assert_problem(await client.post("/v1/events", json={"events": [huge]}, headers=partner), 413)
    assert await _counts(db) == (0, 0, 0)


async def test_writing_events_needs_the_events_scope(client: AsyncTestClient[Litestar]) -> None:
    reader = await tenant_key(client, scopes=("read",))
    response = await client.post(
        "/v1/events",
        json={"events": [flight("x", "p-1", "YVR", hours_ago(1))]},
        headers=bearer(reader),
    )
    assert_problem(response, 403)


async def _counts(db: asyncpg.Connection) -> tuple[int, int, int]:
    row = await db.fetchrow(
        "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM awards),"
        " (SELECT count(*) FROM outbox)"
    )
    assert row is not None
    return (row[0], row[1], row[2])


async def test_a_nul_character_is_named_not_stored(
    client: AsyncTestClient[Litestar], partner: dict[str, str], db: asyncpg.Connection
) -> None:
    good = flight("ok", "p-1", "YVR", hours_ago(1))
    nul_player = {**good, "id": "n1", "player": "p\x00"}
    nul_attribute = {**good, "id": "n2", "attributes": {"destination": "YVR", "seat": ["1\x00A"]}}
    response = await client.post(
        "/v1/events", json={"events": [good, nul_player, nul_attribute]}, headers=partner
    )
    fields = [e["field"] for e in assert_problem(response, 400)["errors"]]
    assert fields == ["events[1].player", "events[2].attributes.seat[0]"]
    assert await _counts(db) == (0, 0, 0)
    named = await client.put("/v1/players/p-1", json={"display_name": "A\x00"}, headers=partner)
    assert_problem(named, 400)


async def test_any_iso_offset_is_taken_even_beyond_what_postgres_stores(
    client: AsyncTestClient[Litestar], partner: dict[str, str]
) -> None:
    when = hours_ago(30).astimezone(timezone(timedelta(hours=18, minutes=30)))
    [result] = await post_events(client, partner, flight("far-east", "p-1", "YVR", when))
    assert result["status"] == "accepted"
    assert datetime.fromisoformat(result["awards"][0]["awarded_at"]) == when


async def test_event_ids_and_campaigns_are_per_tenant(client: AsyncTestClient[Litestar]) -> None:
    acme = bearer(await tenant_key(client, "acme", PARTNER))
    rival = bearer(await tenant_key(client, "rival", ("events:write", "read")))
    await client.post("/v1/campaigns", json=earn_your_wings(), headers=acme)
    same_id = flight("pnr-1", "p-1", "YVR", hours_ago(2))
    [theirs] = await post_events(client, rival, same_id)
    assert theirs == {"id": "pnr-1", "status": "accepted", "awards": [], "scores": []}
    [ours] = await post_events(client, acme, same_id)
    assert ours["status"] == "accepted" and ours["awards"]
    profile = (await client.get("/v1/players/p-1", headers=rival)).json()
    assert profile["campaigns"] == []


async def test_one_event_counts_for_every_live_campaign_it_falls_in(
    client: AsyncTestClient[Litestar], partner: dict[str, str]
) -> None:
    summer = earn_your_wings(campaign_id="summer", starts_at=hours_ago(10), days=10)
    summer["scoring"] = [
        {"event": "flight.completed", "points": 2, "where": {"destination": ["YVR", "YUL"]}}
    ]
    assert (await client.post("/v1/campaigns", json=summer, headers=partner)).status_code == 201
    [both] = await post_events(client, partner, flight("f1", "p-1", "YVR", hours_ago(5)))
    assert sorted((a["campaign"], a["badge"]) for a in both["awards"]) == [
        ("earn-your-wings", "yvr"),
        ("summer", "yvr"),
    ]
    assert sorted(
        (s["campaign"], s["score"]) for s in both["scores"] if s["board"] == "campaign"
    ) == [
        ("earn-your-wings", 1),
        ("summer", 3),
    ]
    [before_summer] = await post_events(client, partner, flight("f0", "p-1", "YUL", hours_ago(20)))
    assert {s["campaign"] for s in before_summer["scores"]} == {"earn-your-wings"}


async def test_a_campaign_created_late_takes_the_events_already_reported(
    client: AsyncTestClient[Litestar], partner: dict[str, str]
) -> None:
    first = flight("old-1", "p-1", "YVR", hours_ago(48))
    await post_events(
        client,
        partner,
        first,
        flight("old-2", "p-1", "YUL", hours_ago(30)),
        flight("old-3", "p-2", "YVR", hours_ago(20)),
    )
    retro = earn_your_wings(campaign_id="retro", starts_at=hours_ago(72), days=10)
    assert (await client.post("/v1/campaigns", json=retro, headers=partner)).status_code == 201
    for _ in range(100):  # the backfill runs in the background
        board = await client.get("/v1/campaigns/retro/leaderboard", headers=partner)
        if board.status_code == 200 and board.json()["total"] == 2:
            break
        await asyncio.sleep(0.1)
    assert [(e["player"], e["score"]) for e in board.json()["entries"]] == [("p-1", 2), ("p-2", 1)]
    profile = (await client.get("/v1/players/p-1", headers=partner)).json()
    retro_standing = next(c for c in profile["campaigns"] if c["campaign"] == "retro")
    assert [b["badge"] for b in retro_standing["badges"]] == ["yvr", "yul"]
    # and a replay afterwards changes nothing there
    [again] = await post_events(client, partner, first)
    assert again["status"] == "duplicate"


async def test_a_request_spread_over_many_players_answers_in_order_and_settles_reused_ids(
    client: AsyncTestClient[Litestar], partner: dict[str, str]
) -> None:
    """Events are folded in lanes by player: the answer still follows the request's order,
    and an id sent twice for different players counts once, the first time."""
    when = hours_ago(3)
    events = [flight(f"pnr-{n}", f"p-{n}", "YVR", when) for n in range(40)]
    events.insert(10, flight("pnr-3", "p-39", "YYC", when))  # pnr-3 again, another player
    results = await post_events(client, partner, *events)
    assert [r["id"] for r in results] == [e["id"] for e in events]
    statuses = [r["status"] for r in results]
    assert statuses == ["accepted"] * 10 + ["rejected"] + ["accepted"] * 30
    assert results[10]["error"] == "this id was already used with a different payload"
    assert all(r["awards"][0]["badge"] == "yvr" for r in results if r["status"] == "accepted")
