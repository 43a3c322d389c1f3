"""Abuse limits: a key's request rate, shared by every instance through Redis."""

from __future__ import annotations

import time

from litestar import Litestar
from litestar.testing import AsyncTestClient

from gamify.app import create_app
from gamify.platform.settings import Settings
from tests.gamify.support import ADMIN, assert_problem, bearer


async def test_a_limited_key_gets_429_with_retry_after_across_instances(
    client: AsyncTestClient[Litestar], settings: Settings
) -> None:
    await client.post("/v1/admin/tenants", json={"id": "acme", "name": "Acme"}, headers=ADMIN)
    issued = await client.post(
        "/v1/admin/tenants/acme/keys", json={"scopes": ["read"], "rate_limit": 3}, headers=ADMIN
    )
    key = issued.json()["key"]
    async with AsyncTestClient(create_app(settings)) as other:
        # Start at the beginning of a second so that all requests fall in one window.
        time.sleep(1 - time.time() % 1)
        started = time.time()
        responses = [
            await (client if i % 2 else other).get("/v1/me", headers=bearer(key)) for i in range(8)
        ]
        elapsed = time.time() - started
    assert elapsed < 1, "too slow to test a one-second window"
    assert [r.status_code for r in responses] == [200] * 3 + [429] * 5
    refused = assert_problem(responses[3], 429)
    assert "3 requests a second" in refused["detail"]
    assert int(responses[3].headers["retry-after"]) == 1


async def test_keys_have_no_limit_by_default(client: AsyncTestClient[Litestar]) -> None:
    await client.post("/v1/admin/tenants", json={"id": "acme", "name": "Acme"}, headers=ADMIN)
    key = (
        await client.post("/v1/admin/tenants/acme/keys", json={"scopes": ["read"]}, headers=ADMIN)
    ).json()["key"]
    for _ in range(20):
        assert (await client.get("/v1/me", headers=bearer(key))).status_code == 200
