"""A member with a long history: kept as a small head and segments, and folded exactly.

Given a campaign where every flight scores a point, with daily and weekly boards, when a member
sends hundreds of flights in order, then late ones in between, then more in order, then the
score, the badges and every window total are those of one fold of all the flights in order;
the progress row stays small, and the history lives in segments.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from badges import HISTORY_CAP
from badges.storage import SEGMENT
from gamify.app import create_app
from gamify.platform.settings import Settings
from tests.gamify.support import (
    DESTINATIONS,
    accepted_once,
    bearer,
    earn_your_wings,
    post_batches,
    racing,
    reference,
    tenant_key,
)

pytestmark = pytest.mark.slow
PARTNER = ("events:write", "campaigns:write", "read")
TORONTO = ZoneInfo("America/Toronto")


def flights_of(
    player: str, rng: random.Random, count: int, start: datetime
) -> list[dict[str, Any]]:
    """`count` flights in order, a few hours apart, the first at `start`."""
    out = []
    when = start
    for i in range(count):
        when += timedelta(minutes=rng.randrange(20, 240))
        out.append(
            {
                "id": f"{player}-{i:04d}",
                "player": player,
                "type": "flight.completed",
                "occurred_at": when.isoformat(),
                "attributes": {"destination": rng.choice(DESTINATIONS)},
            }
        )
    return out


def expected_windows(flights: list[dict[str, Any]]) -> dict[tuple[str, date], int]:
    """Points per (board, period): a point per flight at its time, a badge's at its award."""
    [(score, badges)] = reference(flights).values()
    points: list[tuple[datetime, int]] = [
        (datetime.fromisoformat(f["occurred_at"]), 1) for f in flights
    ]
    points += [(when, 5 if badge == "explorer" else 1) for badge, when in badges.items()]
    totals: dict[tuple[str, date], int] = defaultdict(int)
    for when, earned in points:
        day = when.astimezone(TORONTO).date()
        totals["daily", day] += earned
        totals["weekly", day - timedelta(days=day.weekday())] += earned
    assert sum(totals[k] for k in totals if k[0] == "daily") == score + len(flights)
    return dict(totals)


def scoring_campaign(**fields: Any) -> dict[str, Any]:
    """Earn your wings, where every flight also scores a point (so every one is retained)."""
    return earn_your_wings(**fields) | {
        "scoring": [{"event": "flight.completed", "points": 1}],
        "leaderboards": ["campaign", "daily", "weekly"],
    }


async def assert_folded_exactly(
    client: AsyncTestClient[Litestar],
    headers: dict[str, str],
    db: asyncpg.Connection,
    flights: list[dict[str, Any]],
    campaign: str = "earn-your-wings",
) -> None:
    """Score, badges and window totals of each player are those of the reference fold."""
    by_player: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for flight in flights:
        by_player[flight["player"]].append(flight)
    for player, theirs in by_player.items():
        [(score, badges)] = reference(theirs).values()
        profile = (await client.get(f"/v1/players/{player}", headers=headers)).json()
        standing = next(c for c in profile["campaigns"] if c["campaign"] == campaign)
        assert standing["score"] == score + len(theirs), player
        held = {b["badge"]: datetime.fromisoformat(b["awarded_at"]) for b in standing["badges"]}
        assert held == badges, player
        rows = await db.fetch(
            "SELECT board, period, score FROM window_scores"
            " WHERE campaign_id = $1 AND player_id = $2",
            campaign,
            player,
        )
        totals = {(r["board"], r["period"]): r["score"] for r in rows if r["score"]}
        assert totals == expected_windows(theirs), player


async def test_a_long_history_is_folded_exactly_and_stored_in_segments(
    client: AsyncTestClient[Litestar], db: asyncpg.Connection
) -> None:
    rng = random.Random(14)
    headers = bearer(await tenant_key(client, scopes=PARTNER))
    campaign = scoring_campaign()
    assert (await client.post("/v1/campaigns", json=campaign, headers=headers)).status_code == 201
    start = datetime.now(UTC) - timedelta(days=28)
    flights = flights_of("frequent", rng, 180, start)
    in_order, late = flights[:150], rng.sample(flights[:150], 30)
    for flight in late:
        in_order.remove(flight)
    rest = flights[150:]

    sent = await post_batches(client, headers, in_order, rng)
    sent += await post_batches(client, headers, late, rng)  # each before the newest
    for flight in rest:  # one at a time, as an app reports them
        sent += await post_batches(client, headers, [flight], rng)
    assert Counter(r["status"] for r in sent) == {"accepted": len(flights)}

    await assert_folded_exactly(client, headers, db, flights)

    head = await db.fetchval("SELECT length(state) FROM progress WHERE player_id = 'frequent'")
    sealed = await db.fetchval(
        "SELECT sum(count) FROM progress_segments WHERE player_id = 'frequent'"
    )
    assert len(flights) - SEGMENT < sealed <= len(flights)
    assert head < 2_000  # the head carries fewer than SEGMENT facts


async def test_two_instances_racing_with_long_shuffled_histories_fold_each_flight_once(
    client: AsyncTestClient[Litestar], db: asyncpg.Connection, settings: Settings
) -> None:
    """Late events on both sides of a race: eight clients, four on each of two instances,
    each send every flight of six members (120 each, in their own shuffled order and
    batching), so segments are fetched, rewritten and sealed under contention for the same
    rows; each flight is accepted once and folded once."""
    rng = random.Random(8)
    headers = bearer(await tenant_key(client, scopes=PARTNER))
    campaign = scoring_campaign()
    assert (await client.post("/v1/campaigns", json=campaign, headers=headers)).status_code == 201
    start = datetime.now(UTC) - timedelta(days=28)
    flights = [f for n in range(6) for f in flights_of(f"m-{n}", rng, 120, start)]

    async with AsyncTestClient(create_app(settings)) as other:
        outcomes = await asyncio.gather(
            racing(client, headers, flights, clients=4),
            racing(other, headers, flights, clients=4, first_seed=4),
        )
    assert accepted_once([results for each in outcomes for results in each], flights)
    await assert_folded_exactly(client, headers, db, flights)


async def test_a_campaign_created_after_a_long_history_takes_it_in(
    client: AsyncTestClient[Litestar], db: asyncpg.Connection
) -> None:
    """The backfill folds a member's 150 stored flights into segments like the live path,
    and the flights that arrive while it runs count once."""
    rng = random.Random(3)
    headers = bearer(await tenant_key(client, scopes=PARTNER))
    start = datetime.now(UTC) - timedelta(days=28)
    flights = flights_of("loyal", rng, 170, start)
    await post_batches(client, headers, flights[:150], rng)
    retro = scoring_campaign(campaign_id="retro", starts_at=start - timedelta(days=1), days=60)
    assert (await client.post("/v1/campaigns", json=retro, headers=headers)).status_code == 201
    await post_batches(client, headers, flights[150:], rng)
    for _ in range(100):  # the backfill runs in the background
        pending = await db.fetchval("SELECT backfill_pending FROM campaigns WHERE id = 'retro'")
        if not pending:
            break
        await asyncio.sleep(0.1)
    assert not pending
    await assert_folded_exactly(client, headers, db, flights, campaign="retro")
    assert (
        await db.fetchval("SELECT sum(count) FROM progress_segments WHERE campaign_id = 'retro'")
        > len(flights) - SEGMENT
    )


async def test_past_the_history_cap_late_events_newer_than_the_checkpoint_stay_exact(
    client: AsyncTestClient[Litestar], db: asyncpg.Connection
) -> None:
    """A member past the 10,000-event cap: the oldest events are folded into the checkpoint
    (their window points kept apart from the head, in the ledger), the head stays small, and
    late events newer than the checkpoint still give exactly the reference's windows."""
    rng = random.Random(10_000)
    headers = bearer(await tenant_key(client, scopes=PARTNER))
    start = datetime.now(UTC) - timedelta(days=25)
    campaign = scoring_campaign(starts_at=start - timedelta(days=1))
    assert (await client.post("/v1/campaigns", json=campaign, headers=headers)).status_code == 201
    flights = [
        {
            "id": f"s-{i:05d}",
            "player": "regular",
            "type": "flight.completed",
            "occurred_at": (start + timedelta(minutes=3 * i)).isoformat(),
            "attributes": {"destination": DESTINATIONS[i % 7]},
        }
        for i in range(HISTORY_CAP + 400)
    ]
    late = rng.sample(flights[-300:], 12)
    in_order = [f for f in flights if f not in late]
    for at in range(0, len(in_order), 500):
        await post_batches(client, headers, in_order[at : at + 500], rng)
    await post_batches(client, headers, late, rng)

    await assert_folded_exactly(client, headers, db, flights)
    head = await db.fetchval("SELECT length(state) FROM progress WHERE player_id = 'regular'")
    chunks = await db.fetchval("SELECT count(*) FROM progress_ledgers WHERE player_id = 'regular'")
    assert head < 2_000 and chunks >= 1
