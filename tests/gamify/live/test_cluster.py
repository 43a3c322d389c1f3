"""Live fan-out on a 3-master Redis Cluster: sharded pub/sub, each channel on its slot's node."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis, RedisCluster

from gamify.live import streams
from tests.gamify.live.client import Tenant, receive_until, subscribed_me, twenty_destinations
from tests.gamify.support import Servers, Service

pytestmark = pytest.mark.slow
PLAYERS = [f"flyer-{n}" for n in range(12)]  # enough to land on every node


@pytest.fixture
async def instances(
    servers: Servers, migrated: str, cluster: str, tmp_path: Path
) -> AsyncIterator[tuple[Service, Service]]:
    folders = [tmp_path / "a", tmp_path / "b"]
    for folder in folders:
        folder.mkdir()
    started = [Service(servers, migrated, folder, GAMIFY_REDIS_URL=cluster) for folder in folders]
    try:
        for service in started:
            service.wait_ready()
        yield started[0], started[1]
    finally:
        for service in started:
            service.stop()


async def test_sockets_on_one_instance_hear_events_posted_to_the_other_across_nodes(
    instances: tuple[Service, Service], cluster: str
) -> None:
    a, b = instances
    async with httpx.AsyncClient(timeout=30) as http:
        tenant = await Tenant.create(a, http)
        await tenant.campaign(twenty_destinations())
        sockets = [tenant.socket(await tenant.token(p), service=b) for p in PLAYERS]
        opened = [await socket.__aenter__() for socket in sockets]
        try:
            for ws in opened:
                await subscribed_me(ws)
            await tenant.fly(*[(p, "D00") for p in PLAYERS])
            for ws in opened:
                heard = await receive_until(ws, lambda m: m["type"] == "badge_awarded")
                assert heard[-1]["badge"] == "d00"
            assert await _streams_on(cluster, tenant.id) == len(PLAYERS)  # the cluster's own

            for port in await _ports(cluster):  # every node drops its pub/sub clients
                node = Redis(host="127.0.0.1", port=port)
                try:
                    await node.client_kill_filter(_type="pubsub")
                finally:
                    await node.aclose()
            await tenant.fly(*[(p, "D01") for p in PLAYERS])
            for ws in opened:
                heard = await receive_until(ws, lambda m: m["type"] == "badge_awarded")
                assert heard[-1]["badge"] == "d01"
                await ws.send(json.dumps({"op": "ping"}))
        finally:
            for socket in sockets:
                await socket.__aexit__(None, None, None)


async def _ports(cluster: str) -> list[int]:
    client = RedisCluster.from_url(cluster.replace("+cluster", "", 1))
    try:
        await client.initialize()
        return [int(node.port) for node in client.get_primaries()]
    finally:
        await client.aclose()


async def _streams_on(cluster: str, tenant: str) -> int:
    client = RedisCluster.from_url(cluster.replace("+cluster", "", 1))
    try:
        return int(await client.exists(*[streams.stream(tenant, p) for p in PLAYERS]))
    finally:
        await client.aclose()
