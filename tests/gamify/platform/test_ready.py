"""/ready tells which dependency is missing, and recovers when it is back."""

from __future__ import annotations

from pathlib import Path

import msgspec
from litestar.testing import AsyncTestClient

from gamify.app import create_app
from gamify.platform.embedded.valkey import EmbeddedValkey
from gamify.platform.settings import Settings
from tests.gamify.support import assert_problem


async def test_ready_stays_200_but_degraded_while_redis_is_down(
    settings: Settings, clean: None, tmp_path: Path
) -> None:
    valkey = EmbeddedValkey(tmp_path / "valkey", durable=False)
    valkey.start()
    try:
        app = create_app(msgspec.structs.replace(settings, redis_url=valkey.url))
        async with AsyncTestClient(app) as client:
            assert (await client.get("/ready")).status_code == 200

            valkey.stop()
            degraded = await client.get("/ready")
            assert degraded.status_code == 200, degraded.text  # events are still taken
            assert degraded.json()["status"] == "degraded"
            assert degraded.json()["checks"]["redis"].startswith("unreachable")

            valkey.start()
            back = await client.get("/ready")
            assert back.status_code == 200, back.text
            assert back.json() == {"status": "ready", "checks": {"postgres": "ok", "redis": "ok"}}
    finally:
        valkey.stop()


async def test_ready_is_503_when_migrations_are_pending(settings: Settings, clean: None) -> None:
    app = create_app(settings)
    async with AsyncTestClient(app) as client:
        app.state.container.schema_version += 1  # as if this code shipped a newer migration
        body = assert_problem(await client.get("/ready"), 503)
    assert body["errors"][0]["field"] == "postgres"
    assert "migrations pending" in body["errors"][0]["message"]
