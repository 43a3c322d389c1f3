"""Settlement: a campaign's prize pool split once and frozen, in one transaction.

The clock (campaigns.clock) hands every instance the campaigns due to settle; `settle` marks
one `settling` (committed at once, so that it shows), then under the campaign's row lock
(SKIP LOCKED: one instance acts, the others move on) reads the standings, splits the pool
(payouts.split), writes one payouts row per credit with the rank, score and badges it used,
and marks the campaign settled. A crash before the commit leaves the campaign due again; the
credit ids are derived from (tenant, campaign, player), so a settlement done twice could not
credit a player under two ids even if it were not prevented.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg

from gamify.campaigns.credits import credit_id
from gamify.payouts import store
from gamify.payouts.split import Allocation, Pool, Standing, allocate, parse_pool

log = logging.getLogger(__name__)


def pool_of(document: dict[str, Any]) -> Pool | None:
    prize_pool = document.get("prize_pool")
    return parse_pool(prize_pool) if prize_pool else None


# A settlement whose instance stalls or vanishes mid-way (a frozen VM, a lost network) would
# hold the campaign's row lock, which the other instances skip, until Postgres noticed the
# connection was gone (hours, with default TCP keepalives). Its session is ended after this
# long idle in the transaction instead: well above the longest pause a settlement makes between
# statements (splitting the pool of a million players takes seconds).
IDLE_IN_SETTLEMENT = 300.0


async def settle(pool: asyncpg.Pool, tenant: str, campaign: str, *, early: bool = False) -> bool:
    """Settle the campaign if it is due (with `early`, once it ended, before its grace is over);
    returns whether this call settled it."""
    async with pool.acquire() as conn:
        await store.mark_settling(conn, tenant, campaign, early=early)
        async with conn.transaction():
            await store.bound_idle(conn, IDLE_IN_SETTLEMENT)
            document = await store.claim(conn, tenant, campaign, early=early)
            if document is None:
                return False
            prize = pool_of(document)
            standings = await store.standings(conn, tenant, campaign) if prize else []
            allocation = allocate(prize, standings) if prize else None
            credits = _credits(tenant, campaign, standings, allocation)
            unit = document["prize_pool"]["unit"] if prize else ""
            eligible = allocation.eligible if allocation else 0
            await store.freeze(conn, tenant, campaign, unit, credits, eligible)
    log.info(
        "settled %s/%s: %d credits, %d allocated",
        tenant,
        campaign,
        len(credits),
        sum(c.amount for c in credits),
    )
    return True


def _credits(
    tenant: str,
    campaign: str,
    standings: list[Standing],
    allocation: Allocation | None,
) -> list[store.FrozenCredit]:
    if allocation is None:
        return []
    by_player = {s.player: s for s in standings}
    return [
        store.FrozenCredit(
            item.player,
            credit_id(tenant, campaign, item.player),
            item.amount,
            by_player[item.player].rank,
            by_player[item.player].score,
            by_player[item.player].badges,
        )
        for item in allocation.items
    ]
