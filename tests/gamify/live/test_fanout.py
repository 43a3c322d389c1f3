"""Two `gamify serve` instances on one Postgres and one Redis: a socket on one hears what an
event posted to the other caused, even across a pub/sub connection killed under it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from redis.asyncio import Redis

from tests.gamify.live.client import (
    DESTINATIONS,
    Tenant,
    quiet,
    receive_until,
    subscribed_me,
    twenty_destinations,
)
from tests.gamify.support import Servers, Service

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def other(
    servers: Servers, migrated: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    running = Service(servers, migrated, tmp_path_factory.mktemp("live-b"))
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


@pytest.fixture
async def tenant(service: Service) -> AsyncIterator[Tenant]:
    async with httpx.AsyncClient(timeout=30) as http:
        created = await Tenant.create(service, http)
        await created.campaign(twenty_destinations())
        yield created


async def test_a_socket_on_one_instance_hears_events_posted_to_the_other(
    tenant: Tenant, other: Service
) -> None:
    async with tenant.socket(await tenant.token("roamer"), service=other) as ws:
        await subscribed_me(ws)
        await tenant.fly(("roamer", "D00"))  # to the first instance
        heard = await receive_until(ws, lambda m: m["type"] == "badge_awarded")
    assert [m["type"] for m in heard] == ["rank_changed", "badge_awarded"]


async def test_a_killed_pubsub_connection_loses_nothing(
    tenant: Tenant, other: Service, servers: Servers
) -> None:
    async with tenant.socket(await tenant.token("survivor"), service=other) as ws:
        await subscribed_me(ws)
        await tenant.fly(("survivor", "D00"))
        heard = await receive_until(ws, lambda m: m["type"] == "badge_awarded")
        for round_ in range(3):
            redis = Redis.from_url(servers.redis_url)
            try:
                killed = await redis.client_kill_filter(_type="pubsub")
            finally:
                await redis.aclose()
            assert killed >= 1
            # Posted while the instances connect again: recovered from the stream.
            for code in DESTINATIONS[1 + 3 * round_ : 4 + 3 * round_]:
                await tenant.fly(("survivor", code))
            heard += await receive_until(ws, lambda m, c=code: m.get("badge") == c.lower())
        heard += await quiet(ws)
        await ws.send(json.dumps({"op": "ping"}))

    badges = [m["badge"] for m in heard if m["type"] == "badge_awarded"]
    assert badges == [code.lower() for code in DESTINATIONS[:10]]
    seqs = [m["seq"] for m in heard]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
