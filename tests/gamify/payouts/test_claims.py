"""Claims are fair across campaigns: a settled pool's million credits, all due, do not hold
back the badge reward another campaign owes a member now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec
from litestar.testing import AsyncTestClient

from gamify.app import create_app
from gamify.payouts import store
from gamify.platform.settings import Settings
from tests.gamify.support import bearer, earn_your_wings, tenant_key

PARTNER = ("events:write", "campaigns:write", "read")


async def owe(db: asyncpg.Connection, campaign: str, players: range, due: list[datetime]) -> None:
    await db.executemany(
        """INSERT INTO payouts (id, tenant_id, campaign_id, player_id, reason, amount, unit,
                                next_attempt_at)
           VALUES ($1, 'acme', $2, $3, 'pool', 10, 'miles', $4)""",
        [(f"{campaign}-{n}", campaign, f"p-{n}", at) for n, at in zip(players, due, strict=True)],
    )


async def test_a_claim_takes_each_campaigns_due_credits_in_turn(
    settings: Settings, db: asyncpg.Connection
) -> None:
    # No dispatcher of the app's own: this test is the only one claiming.
    quiet = msgspec.structs.replace(settings, delivery_in_process=False)
    async with AsyncTestClient(create_app(quiet)) as client:
        headers = bearer(await tenant_key(client, scopes=PARTNER))
        for campaign in ("pool", "rewards"):
            document = earn_your_wings(campaign_id=campaign)
            created = await client.post("/v1/campaigns", json=document, headers=headers)
            assert created.status_code == 201, created.text
    now = datetime.now(UTC)
    # The pool's 300 credits fell due over the last hour; the reward fell due just now.
    await owe(db, "pool", range(300), [now - timedelta(seconds=3600 - n) for n in range(300)])
    await owe(db, "rewards", range(1), [now - timedelta(seconds=1)])

    claimed = await store.claim_due(db, 10, 60)

    assert "rewards-0" in {c.id for c in claimed}
    assert sorted(c.id for c in claimed if c.campaign == "pool") == sorted(
        f"pool-{n}" for n in range(9)
    )  # the pool's oldest fill the rest

    again = await store.claim_due(db, 10, 60)  # the reward is leased; the pool goes on
    assert {c.campaign for c in again} == {"pool"} and len(again) == 10
