"""A member with a long history: kept as a small head and segments, and folded exactly.

Given a campaign where every flight scores a point, with daily and weekly boards, when a member
sends hundreds of flights in order, then late ones in between, then more in order, then the
score, the badges and every window total are those of one fold of all the flights in order;
the progress row stays small, and the history lives in segments.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from badges.storage import SEGMENT
from tests.gamify.support import (
    DESTINATIONS,
    bearer,
    earn_your_wings,
    post_batches,
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


async def test_a_long_history_is_folded_exactly_and_stored_in_segments(
    client: AsyncTestClient[Litestar], db: asyncpg.Connection
) -> None:
    rng = random.Random(14)
    headers = bearer(await tenant_key(client, scopes=PARTNER))
    campaign = earn_your_wings() | {
        "scoring": [{"event": "flight.completed", "points": 1}],
        "leaderboards": ["campaign", "daily", "weekly"],
    }
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

    [(score, badges)] = reference(flights).values()
    profile = (await client.get("/v1/players/frequent", headers=headers)).json()
    [standing] = profile["campaigns"]
    assert standing["score"] == score + len(flights)
    assert {
        b["badge"]: datetime.fromisoformat(b["awarded_at"]) for b in standing["badges"]
    } == badges

    rows = await db.fetch(
        "SELECT board, period, score FROM window_scores WHERE player_id = 'frequent'"
    )
    assert {(r["board"], r["period"]): r["score"] for r in rows if r["score"]} == (
        expected_windows(flights)
    )

    head = await db.fetchval("SELECT length(state) FROM progress WHERE player_id = 'frequent'")
    sealed = await db.fetchval(
        "SELECT sum(count) FROM progress_segments WHERE player_id = 'frequent'"
    )
    assert len(flights) - SEGMENT < sealed <= len(flights)
    assert head < 2_000  # the head carries fewer than SEGMENT facts
