"""Simulation equals the live path, by Hypothesis against a running `gamify serve`.

Given a random campaign (value, count, sum, distinct, collection, streak and `badges` badges,
scoring points, a prize pool split one of four ways) and random events of a few players (some
before the campaign starts, many at the same instants), when the events go through the award
endpoint of the live campaign and the same document is then simulated over the same period,
then the simulation tells exactly what the service computed: the badges each player holds, the
scores and ranks of the board (ties included), and the prize pool's split as previewed.

Each example in a tenant of its own; one `gamify serve` for the module, on the session's servers.
"""

from __future__ import annotations

import functools
import logging
import os
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from tests.gamify.support import ADMIN, Servers, Service, bearer

pytestmark = pytest.mark.slow
EXAMPLES = int(os.environ.get("GAMIFY_PROPERTY_EXAMPLES", "30"))
SCOPES = ["events:write", "campaigns:write", "read"]
PLAYERS = [f"p{i}" for i in range(6)]
ZONES = ["America/Toronto", "Asia/Kathmandu", "Pacific/Chatham", "UTC"]
GRID = timedelta(minutes=30)  # event times fall on it, so that players tie


@pytest.fixture(scope="module")
def service(
    servers: Servers, migrated: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    running = Service(servers, migrated, tmp_path_factory.mktemp("simulate-properties"))
    quiet = logging.getLogger("httpx")  # a line per request otherwise
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        running.wait_ready()
        yield running
    finally:
        quiet.setLevel(level)
        running.stop()


@functools.cache
def session_now() -> datetime:
    """The clock of the first draw: replayed draws (shrinking) must give the same data."""
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class Scenario:
    document: dict[str, Any]
    starts_at: datetime
    closes_at: datetime
    batches: list[list[dict[str, Any]]]

    def in_period(self) -> list[dict[str, Any]]:
        return [
            event
            for batch in self.batches
            for event in batch
            if self.starts_at <= datetime.fromisoformat(event["occurred_at"]) <= self.closes_at
        ]


def _criteria() -> dict[str, dict[str, Any]]:
    return {
        "v-a": {"kind": "value", "event": "t", "attribute": "d", "values": ["a"]},
        "v-bc": {"kind": "value", "event": "t", "attribute": "d", "values": ["b", "c"]},
        "count": {"kind": "count", "event": "t", "threshold": 3},
        "count-day": {"kind": "count", "event": "t", "threshold": 2, "within": "P1D"},
        "sum": {"kind": "sum", "event": "u", "attribute": "n", "threshold": 12},
        "distinct": {"kind": "distinct", "event": "t", "attribute": "d", "threshold": 3},
        "collection": {
            "kind": "collection",
            "event": "t",
            "attribute": "d",
            "values": ["a", "b", "d"],
            "min": 2,
        },
        "streak": {"kind": "streak", "event": "t", "threshold": 2, "period": "day"},
    }


POOLS: list[dict[str, Any]] = [
    {"amount": 1000, "unit": "miles", "split": "equal"},
    {"amount": 1001, "unit": "miles", "split": "proportional", "basis": "score"},
    {
        "amount": 997,
        "unit": "miles",
        "split": "proportional",
        "basis": "badges",
        "eligibility": {"min_badges": 1},
    },
    {
        "amount": 1000,
        "unit": "miles",
        "split": "ranked",
        "tiers": [{"ranks": "1", "share": 0.5}, {"ranks": "2-3", "share": 0.5}],
        "max_per_player": 400,
    },
]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    now = session_now()
    starts_at = now - timedelta(days=draw(st.integers(2, 6)))
    criteria = _criteria()
    chosen = draw(st.lists(st.sampled_from(sorted(criteria)), min_size=1, unique=True))
    badges = [
        {"id": badge, "name": badge, "points": draw(st.integers(1, 5)), "criteria": criteria[badge]}
        for badge in chosen
    ]
    if len(chosen) >= 2 and draw(st.booleans()):
        meta = {"kind": "badges", "values": chosen[:3], "min": 2}
        badges.append({"id": "meta", "name": "meta", "points": 3, "criteria": meta})
    document: dict[str, Any] = {
        "id": "sim",
        "name": "Simulated",
        "starts_at": starts_at.isoformat(),
        "ends_at": (now + timedelta(days=10)).isoformat(),
        "timezone": draw(st.sampled_from(ZONES)),
        "grace": "PT1H",
        "badges": badges,
        "scoring": [{"event": "u", "points": draw(st.integers(0, 2))}],
        "leaderboards": ["campaign"],
    }
    pool = draw(st.none() | st.sampled_from(POOLS))
    if pool is not None:
        document["prize_pool"] = pool
    slots = int((now - starts_at) / GRID)
    events = [
        {
            "id": f"e{i}",
            "player": draw(st.sampled_from(PLAYERS)),
            "type": draw(st.sampled_from(["t", "u"])),
            # From two slots before the start (counted nowhere) to the last slot before now.
            "occurred_at": (starts_at + GRID * draw(st.integers(-2, slots - 1))).isoformat(),
            "attributes": {"d": draw(st.sampled_from("abcd")), "n": draw(st.integers(1, 9))},
        }
        for i in range(draw(st.integers(1, 40)))
    ]
    cuts = sorted(draw(st.lists(st.integers(1, len(events)), max_size=2)))
    batches = [events[a:b] for a, b in zip([0, *cuts], [*cuts, len(events)], strict=True)]
    closes_at = now + timedelta(days=10, hours=1)
    return Scenario(document, starts_at, closes_at, [b for b in batches if b])


@pytest.mark.timeout(900)
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios())
def test_a_simulation_equals_what_the_live_path_computed(
    service: Service, scenario: Scenario
) -> None:
    note(f"document: {scenario.document}")
    with httpx.Client(base_url=service.url, timeout=60) as http:
        headers = _tenant(service, http)
        created = http.post("/v1/campaigns", json=scenario.document, headers=headers)
        assert created.status_code == 201, service.explain(created)
        for batch in scenario.batches:
            sent = http.post("/v1/events", json={"events": batch}, headers=headers)
            assert sent.status_code == 200, service.explain(sent)
        live = _live(service, http, headers, scenario)
        simulated = _simulated(service, http, headers, scenario)

    counted = scenario.in_period()
    assert simulated["events"] == len(counted)
    assert simulated["players"] == len({event["player"] for event in counted})
    assert {b["badge"]: b["players"] for b in simulated["badges"]} == {
        badge["id"]: live.holders[badge["id"]] for badge in scenario.document["badges"]
    }
    assert [(e["rank"], e["player"], e["score"], set(e["badges"])) for e in simulated["top"]] == [
        (e["rank"], e["player"], e["score"], live.badges[e["player"]]) for e in live.board
    ]
    scores = [live.scores.get(player, 0) for player in {e["player"] for e in counted}]
    summary = simulated["scores"]
    assert (summary["ranked"], summary["max"], summary["min"]) == (
        sum(1 for s in scores if s > 0),
        max(scores, default=0),
        min(scores, default=0),
    )
    if live.preview is None:
        assert simulated["payouts"] is None
    else:
        payouts = simulated["payouts"]
        assert (payouts["allocated"], payouts["unallocated"], payouts["eligible"]) == (
            live.preview["allocated"],
            live.preview["unallocated"],
            live.preview["eligible"],
        )
        assert payouts["credited"] == len(live.preview["items"])
        assert payouts["items"] == live.preview["items"][:10]


@dataclass
class Live:
    board: list[dict[str, Any]]
    scores: dict[str, int]
    badges: dict[str, set[str]]
    holders: Counter[str]
    preview: dict[str, Any] | None


def _live(
    service: Service, http: httpx.Client, headers: dict[str, str], scenario: Scenario
) -> Live:
    read = http.get("/v1/campaigns/sim/leaderboard", params={"limit": 100}, headers=headers)
    assert read.status_code == 200, service.explain(read)
    scores: dict[str, int] = {}
    held: dict[str, set[str]] = {}
    for player in {e["player"] for batch in scenario.batches for e in batch}:
        profile = http.get(f"/v1/players/{player}", headers=headers)
        assert profile.status_code == 200, service.explain(profile)
        for campaign in profile.json()["campaigns"]:
            scores[player] = campaign["score"]
            held[player] = {b["badge"] for b in campaign["badges"]}
    preview = None
    if "prize_pool" in scenario.document:
        previewed = http.post("/v1/campaigns/sim/payouts/preview", headers=headers)
        assert previewed.status_code == 200, service.explain(previewed)
        preview = previewed.json()
    holders = Counter(badge for badges in held.values() for badge in badges)
    return Live(read.json()["entries"], scores, held, holders, preview)


def _simulated(
    service: Service, http: httpx.Client, headers: dict[str, str], scenario: Scenario
) -> dict[str, Any]:
    """The simulation over the campaign's own dates, the same as over them named as a period."""
    answers = []
    period = {"from": scenario.starts_at.isoformat(), "to": scenario.closes_at.isoformat()}
    for extra in ({}, period):
        body = {"campaign": scenario.document, **extra}
        answered = http.post("/v1/campaigns/simulate", json=body, headers=headers)
        assert answered.status_code == 200, service.explain(answered)
        answers.append(answered.json())
    assert answers[0] == answers[1]
    answer: dict[str, Any] = answers[0]
    return answer


def _tenant(service: Service, http: httpx.Client) -> dict[str, str]:
    tenant = "sim-" + uuid.uuid4().hex[:16]
    created = http.post("/v1/admin/tenants", json={"id": tenant, "name": "S"}, headers=ADMIN)
    assert created.status_code == 201, service.explain(created)
    issued = http.post(f"/v1/admin/tenants/{tenant}/keys", json={"scopes": SCOPES}, headers=ADMIN)
    assert issued.status_code == 201, service.explain(issued)
    return bearer(issued.json()["key"])
