"""Races between the write path and campaign changes, and failures after a commit: no event is
missed, no rule changes under a fold, and every answer is what the first arrival earned."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from gamify.campaigns.compiled import EngineCache
from gamify.events import coalesce, store
from gamify.events.ingest import ingest
from gamify.events.wire import EventIn
from gamify.platform import db
from tests.gamify.support import bearer, earn_your_wings, flight, hours_ago, tenant_key

PARTNER = ("events:write", "campaigns:write", "read")
WAITERS = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"


@pytest.fixture
async def headers(client: AsyncTestClient[Litestar]) -> dict[str, str]:
    return bearer(await tenant_key(client, scopes=PARTNER))


async def _eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(150):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(what)


async def _badges(client: AsyncTestClient[Litestar], headers: dict[str, str]) -> set[str]:
    profile = await client.get("/v1/players/p1", headers=headers)
    if profile.status_code != 200:
        return set()
    return {b["badge"] for c in profile.json()["campaigns"] for b in c["badges"]}


async def _has(client: AsyncTestClient[Litestar], headers: dict[str, str], badge: str) -> bool:
    return badge in await _badges(client, headers)


class InFlight(threading.Thread):
    """A write transaction held open in a thread of its own (the test client runs each request
    to its end, blocking this loop): it does `work`, then waits until another session queues
    behind an advisory lock (the tenant's campaign guard), and only then commits."""

    def __init__(self, url: str, work: Callable[[asyncpg.Connection], Awaitable[None]]):
        super().__init__(daemon=True)
        self.url = url
        self.work = work
        self.ready = threading.Event()
        self.saw_a_waiter = False
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._hold())
        except BaseException as exc:
            self.error = exc
            self.ready.set()

    async def _hold(self) -> None:
        conn = await db.connect_one(self.url)  # with the service's jsonb codec
        try:
            async with conn.transaction():
                await self.work(conn)
                self.ready.set()
                for _ in range(100):
                    if await conn.fetchval(WAITERS):
                        self.saw_a_waiter = True
                        break
                    await asyncio.sleep(0.1)
        finally:
            await conn.close()

    async def begin(self) -> None:
        self.start()
        await asyncio.to_thread(self.ready.wait, 30)
        assert self.error is None, self.error

    async def end(self) -> None:
        await asyncio.to_thread(self.join, 30)
        assert self.error is None, self.error


async def test_an_event_committed_while_a_campaign_is_created_is_not_missed(
    client: AsyncTestClient[Litestar], headers: dict[str, str], migrated: str
) -> None:
    async def store_the_event(conn: asyncpg.Connection) -> None:
        # The write path stored the event before the campaign existed.
        event = store.NewEvent(
            "e1", "p1", "flight.completed", hours_ago(1), {"destination": "YVR"}, b"x"
        )
        assert await store.insert(conn, "acme", [event]) == {"e1"}

    write = InFlight(migrated, store_the_event)
    await write.begin()
    campaign = earn_your_wings(starts_at=datetime.now(UTC) - timedelta(days=1))
    created = await client.post("/v1/campaigns", json=campaign, headers=headers)
    await write.end()
    assert created.status_code == 201, created.text
    assert write.saw_a_waiter, "the campaign did not wait for the write in flight"
    await _eventually(lambda: _has(client, headers, "yvr"), "the backfill missed the event")


async def test_events_up_to_5_minutes_early_count_for_a_campaign_starting_within_them(
    client: AsyncTestClient[Litestar], headers: dict[str, str]
) -> None:
    soon = datetime.now(UTC) + timedelta(minutes=3)
    sent = await client.post(
        "/v1/events", json={"events": [flight("e1", "p1", "YVR", soon)]}, headers=headers
    )
    assert sent.json()["results"][0]["status"] == "accepted"
    campaign = earn_your_wings(starts_at=datetime.now(UTC) + timedelta(minutes=1))
    assert (await client.post("/v1/campaigns", json=campaign, headers=headers)).status_code == 201
    await _eventually(lambda: _has(client, headers, "yvr"), "the early event was missed")


async def test_a_rules_change_waits_for_a_fold_in_flight_and_then_sees_it_counted(
    client: AsyncTestClient[Litestar], headers: dict[str, str], migrated: str
) -> None:
    start = datetime.now(UTC) + timedelta(minutes=2)
    campaign = earn_your_wings(starts_at=start)
    assert (await client.post("/v1/campaigns", json=campaign, headers=headers)).status_code == 201

    async def fold_an_early_event(conn: asyncpg.Connection) -> None:
        when = start + timedelta(minutes=1)
        early = EventIn("e1", "p1", "flight.completed", when, {"destination": "YVR"})
        outcome = await ingest(conn, "acme", [early], EngineCache(), datetime.now(UTC))
        assert outcome.results[0].awards, "folded under the current rules"

    write = InFlight(migrated, fold_an_early_event)
    await write.begin()
    change = {"badges": campaign["badges"][:3]}
    patched = await client.patch("/v1/campaigns/earn-your-wings", json=change, headers=headers)
    await write.end()
    assert write.saw_a_waiter, "the change did not wait for the fold in flight"
    assert patched.status_code == 409, patched.text


async def test_a_failure_after_the_commit_answers_accepted_with_the_awards(
    client: AsyncTestClient[Litestar], headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    await client.post("/v1/campaigns", json=earn_your_wings(), headers=headers)

    async def broken(*args: Any) -> Any:
        raise RuntimeError("the step after the commit failed")

    monkeypatch.setattr(coalesce, "ranked", broken)
    sent = await client.post(
        "/v1/events", json={"events": [flight("e1", "p1", "YVR", hours_ago(1))]}, headers=headers
    )
    assert sent.status_code == 200, sent.text
    result = sent.json()["results"][0]
    assert result["status"] == "accepted"
    assert [a["badge"] for a in result["awards"]] == ["yvr"]


async def test_a_replay_answers_what_the_first_arrival_did_not_what_a_backfill_added(
    client: AsyncTestClient[Litestar], headers: dict[str, str]
) -> None:
    event = flight("e1", "p1", "YVR", hours_ago(1))
    first = await client.post("/v1/events", json={"events": [event]}, headers=headers)
    assert first.json()["results"][0]["awards"] == []  # no campaign yet
    campaign = earn_your_wings(starts_at=datetime.now(UTC) - timedelta(days=1))
    assert (await client.post("/v1/campaigns", json=campaign, headers=headers)).status_code == 201
    await _eventually(lambda: _has(client, headers, "yvr"), "the backfill did not credit it")

    replay = await client.post("/v1/events", json={"events": [event]}, headers=headers)
    assert replay.json()["results"][0] == {
        "id": "e1",
        "status": "duplicate",
        "awards": [],
        "scores": [],
    }
