"""Helpers the service tests share."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from gamify.boards import keys
from gamify.platform.embedded import EmbeddedServers

ADMIN_TOKEN = "test-admin-token-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PROBLEM = "application/problem+json"


class Servers(msgspec.Struct):
    database_url: str
    redis_url: str
    embedded: EmbeddedServers | None


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def tenant_key(
    client: AsyncTestClient[Litestar], tenant: str = "acme", scopes: tuple[str, ...] = ("read",)
) -> str:
    """Create `tenant` (if new) and a key with `scopes`; returns the key."""
    created = await client.post(
        "/v1/admin/tenants", json={"id": tenant, "name": tenant.title()}, headers=ADMIN
    )
    assert created.status_code in (201, 409), created.text
    issued = await client.post(
        f"/v1/admin/tenants/{tenant}/keys", json={"scopes": list(scopes)}, headers=ADMIN
    )
    assert issued.status_code == 201, issued.text
    key: str = issued.json()["key"]
    return key


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    """The response is an RFC 9457 problem with `status`; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"]
    assert "Traceback" not in response.text
    return body


def flight(
    event_id: str, player: str, destination: str, when: datetime, **attributes: Any
) -> dict[str, Any]:
    """A `flight.completed` event as a partner posts it."""
    return {
        "id": event_id,
        "player": player,
        "type": "flight.completed",
        "occurred_at": when.isoformat(),
        "attributes": {"destination": destination, **attributes},
    }


async def boards_settled(redis: Redis, tenant: str, campaign: str) -> None:
    """Until the app's own rebuild of a campaign's boards is over (the first write to a new
    campaign starts one): a rebuild still running would undo what a test does to Redis."""
    for _ in range(200):
        ready = await redis.exists(keys.ready(tenant, campaign))
        busy = await redis.exists(keys.rebuilding(tenant, campaign), keys.RECONCILING)
        if ready and not busy:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the boards of {campaign} were not rebuilt")


def hours_ago(hours: float) -> datetime:
    return datetime.now(UTC) - timedelta(hours=hours)
