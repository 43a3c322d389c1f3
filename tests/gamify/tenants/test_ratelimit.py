"""Abuse limits: a key's request rate, shared by every instance through Redis."""

from __future__ import annotations

import secrets
import time

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from gamify.app import create_app
from gamify.platform import metrics
from gamify.platform.embedded.ports import free_port
from gamify.platform.settings import Settings
from gamify.tenants import ratelimit
from tests.gamify.support import ADMIN, Servers, assert_problem, bearer


async def test_a_window_admits_the_limit_then_says_how_long_to_wait(servers: Servers) -> None:
    redis = Redis.from_url(servers.redis_url)
    try:
        second = 4_000_000_000 + secrets.randbelow(1_000_000)  # a window of this test's own
        waits = [await ratelimit.allow(redis, 7, 3, now=second + i / 10) for i in range(8)]
        assert waits[:3] == [0.0] * 3
        assert waits[3:] == pytest.approx([0.7, 0.6, 0.5, 0.4, 0.3])
        assert await ratelimit.allow(redis, 7, 3, now=second + 1) == 0.0  # the next window
    finally:
        await redis.aclose()


async def test_a_limited_key_gets_429_with_retry_after_across_instances(
    client: AsyncTestClient[Litestar], settings: Settings, servers: Servers
) -> None:
    await client.post("/v1/admin/tenants", json={"id": "acme", "name": "Acme"}, headers=ADMIN)
    issued = await client.post(
        "/v1/admin/tenants/acme/keys", json={"scopes": ["read"], "rate_limit": 3}, headers=ADMIN
    )
    key, key_id = issued.json()["key"], issued.json()["id"]
    # Another instance used up this key's windows for the next minute: whichever instance
    # takes the request, and whenever, the count is shared through Redis.
    redis = Redis.from_url(servers.redis_url)
    now = int(time.time())
    for second in range(now, now + 60):
        await redis.set(f"rl:{key_id}:{second}", 3, ex=120)
    await redis.aclose()
    async with AsyncTestClient(create_app(settings)) as other:
        responses = [await c.get("/v1/me", headers=bearer(key)) for c in (client, other)]
    for response in responses:
        refused = assert_problem(response, 429)
        assert "3 requests a second" in refused["detail"]
        assert int(response.headers["retry-after"]) == 1


async def test_keys_have_no_limit_by_default(client: AsyncTestClient[Litestar]) -> None:
    await client.post("/v1/admin/tenants", json={"id": "acme", "name": "Acme"}, headers=ADMIN)
    key = (
        await client.post("/v1/admin/tenants/acme/keys", json={"scopes": ["read"]}, headers=ADMIN)
    ).json()["key"]
    for _ in range(20):
        assert (await client.get("/v1/me", headers=bearer(key))).status_code == 200


async def test_without_redis_requests_go_on_and_redis_is_reported_degraded(
    servers: Servers,
) -> None:
    unreachable = Redis(port=free_port(), retry=Retry(NoBackoff(), 0))
    reachable = Redis.from_url(servers.redis_url)
    try:
        assert await ratelimit.allow(unreachable, 7, 3) == 0.0
        assert degraded() == 1
        assert await ratelimit.allow(reachable, 8, 3) == 0.0
        assert degraded() == 0
    finally:
        await unreachable.aclose()
        await reachable.aclose()


def degraded() -> float:
    [family] = metrics.REDIS_DEGRADED.collect()
    return family.samples[0].value
