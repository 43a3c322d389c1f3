"""The SQL of prize pools: the standings a pool is split by, the frozen allocation and its pages;
the claims and attempts of delivery."""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from gamify.campaigns.credits import POOL
from gamify.payouts.split import Standing
from gamify.platform.db import Conn

# Every player of the campaign in board order: more points first, then whoever reached them
# first (to the second, as the board encodes it), then the greater player id byte-wise (as
# Redis orders equal scores; hence COLLATE "C"). Badges held counted alongside.
STANDINGS = """
SELECT p.player_id, p.score, coalesce(a.badges, 0) AS badges,
       row_number() OVER (
           ORDER BY p.score DESC,
                    floor(extract(epoch FROM p.reached_at - c.starts_at)) ASC NULLS LAST,
                    p.player_id COLLATE "C" DESC
       ) AS rank
FROM progress p
JOIN campaigns c ON c.tenant_id = p.tenant_id AND c.id = p.campaign_id
LEFT JOIN (
    SELECT player_id, count(*) AS badges FROM awards
    WHERE tenant_id = $1 AND campaign_id = $2 GROUP BY player_id
) a ON a.player_id = p.player_id
WHERE p.tenant_id = $1 AND p.campaign_id = $2
ORDER BY rank
"""
# The clock's first step, in a transaction of its own so that `settling` shows at once.
MARK_SETTLING = """
UPDATE campaigns SET settling_since = coalesce(settling_since, now())
WHERE tenant_id = $1 AND id = $2 AND settled_at IS NULL AND cancelled_at IS NULL
  AND ends_at < now() AND ($3 OR closes_at <= now())
"""
# How long a settling session may sit idle inside its transaction before Postgres ends it.
BOUND_IDLE = "SELECT set_config('idle_in_transaction_session_timeout', $1, true)"
# The row lock that makes one instance settle: the others skip the campaign.
CLAIM = """
SELECT document FROM campaigns
WHERE tenant_id = $1 AND id = $2 AND settled_at IS NULL AND cancelled_at IS NULL
  AND ends_at < now() AND ($3 OR closes_at <= now())
FOR UPDATE SKIP LOCKED
"""
FROZEN_COLUMNS = [
    "id",
    "tenant_id",
    "campaign_id",
    "player_id",
    "reason",
    "amount",
    "unit",
    "rank",
    "score",
    "badges",
]
SETTLED = """
UPDATE campaigns
SET settled_at = now(), settling_since = coalesce(settling_since, now()), pool_eligible = $3,
    pool_allocated = $4, updated_at = now()
WHERE tenant_id = $1 AND id = $2
"""
PAGE = """
SELECT player_id, amount, status, attempts, last_error FROM payouts
WHERE tenant_id = $1 AND campaign_id = $2 AND reason = 'pool' AND player_id > $3
ORDER BY player_id LIMIT $4
"""
SUMS = """
SELECT coalesce(sum(amount) FILTER (WHERE status = 'delivered'), 0) AS delivered,
       coalesce(sum(amount) FILTER (WHERE status = 'failed'), 0) AS failed
FROM payouts WHERE tenant_id = $1 AND campaign_id = $2 AND reason = 'pool'
"""


class FrozenCredit(msgspec.Struct, frozen=True):
    player: str
    id: str  # the credit's identity toward the loyalty system (webhook-id)
    amount: int
    rank: int
    score: int
    badges: int


class PayoutRow(msgspec.Struct, frozen=True):
    player: str
    amount: int
    status: str
    attempts: int
    last_error: str | None


# The pool's own statements read and write a row per player: a million-player pool takes
# longer than the 30 s the pool allows an ordinary statement.
SETTLEMENT_TIMEOUT = 600.0


async def standings(conn: Conn, tenant: str, campaign: str) -> list[Standing]:
    rows = await conn.fetch(STANDINGS, tenant, campaign, timeout=SETTLEMENT_TIMEOUT)
    return [Standing(r["player_id"], r["score"], r["badges"], r["rank"]) for r in rows]


async def mark_settling(conn: Conn, tenant: str, campaign: str, *, early: bool) -> None:
    await conn.execute(MARK_SETTLING, tenant, campaign, early)


async def bound_idle(conn: Conn, seconds: float) -> None:
    """End this transaction's session if it sits idle longer than `seconds` (SET LOCAL)."""
    await conn.execute(BOUND_IDLE, f"{int(seconds * 1000)}ms")


async def claim(conn: Conn, tenant: str, campaign: str, *, early: bool) -> dict[str, Any] | None:
    """Lock a campaign that is due to settle; its document, or None (settled, cancelled, not
    due, or another instance is settling it)."""
    document: dict[str, Any] | None = await conn.fetchval(CLAIM, tenant, campaign, early)
    return document


async def freeze(
    conn: Conn, tenant: str, campaign: str, unit: str, credits: list[FrozenCredit], eligible: int
) -> None:
    if credits:
        # COPY: a million-player pool's rows in one stream, an order of magnitude faster than
        # an INSERT of a JSON array. Nothing can conflict: the campaign's row lock is held and
        # a settlement that failed wrote nothing.
        await conn.copy_records_to_table(
            "payouts",
            columns=FROZEN_COLUMNS,
            records=[
                (c.id, tenant, campaign, c.player, POOL, c.amount, unit, c.rank, c.score, c.badges)
                for c in credits
            ],
            timeout=SETTLEMENT_TIMEOUT,
        )
    await conn.execute(SETTLED, tenant, campaign, eligible, sum(c.amount for c in credits))


async def page(conn: Conn, tenant: str, campaign: str, after: str, limit: int) -> list[PayoutRow]:
    rows = await conn.fetch(PAGE, tenant, campaign, after, limit)
    return [
        PayoutRow(r["player_id"], r["amount"], r["status"], r["attempts"], r["last_error"])
        for r in rows
    ]


async def sums(conn: Conn, tenant: str, campaign: str) -> tuple[int, int]:
    """Delivered and failed amounts."""
    row = await conn.fetchrow(SUMS, tenant, campaign)
    assert row is not None
    return int(row["delivered"]), int(row["failed"])


# Delivery. A claim leases the due credits (their next attempt moves LEASE ahead) so that no
# other dispatcher takes them while they are in flight; a dispatcher that dies mid-delivery
# leaves them to be claimed again when the lease runs out.
CLAIM_DUE = """
WITH candidates AS (
    -- Each campaign's due credits, oldest first, numbered: the claim takes every campaign's
    -- first, then every campaign's second, and so on. One index probe per campaign.
    SELECT p.id, p.next_attempt_at,
           row_number() OVER (PARTITION BY c.tenant_id, c.id ORDER BY p.next_attempt_at) AS turn
    FROM campaigns c
    CROSS JOIN LATERAL (
        SELECT id, next_attempt_at FROM payouts p
        WHERE p.tenant_id = c.tenant_id AND p.campaign_id = c.id
          AND p.status = 'pending' AND p.next_attempt_at <= now()
        ORDER BY p.next_attempt_at LIMIT $1
        FOR UPDATE SKIP LOCKED
    ) p
), due AS (
    SELECT id FROM candidates ORDER BY turn, next_attempt_at LIMIT $1
)
UPDATE payouts p SET next_attempt_at = now() + make_interval(secs => $2)
FROM due, campaigns c
WHERE p.id = due.id AND c.tenant_id = p.tenant_id AND c.id = p.campaign_id
RETURNING p.id, p.tenant_id, p.campaign_id, p.player_id, p.reason, p.amount, p.unit,
          p.attempts, p.round, c.document -> 'loyalty' AS loyalty
"""
# The attempts of many credits, in one statement (a round trip per attempt cost more than the
# rest of the dispatcher). Every attempt is logged and counted; it moves its credit on only if
# the credit still waits in the attempt's round (a success counts in any round): delivered;
# again after `wait` seconds, or failed once that would pass 24 hours; a 'gone' credit stays
# pending until FAIL_CAMPAIGN, in the same transaction, fails its whole campaign. An attempt
# that decides nothing any more (its credit moved on meanwhile) is still counted, apart, since
# one statement may not update a row twice. Returns the credits it made final.
RECORD = """
WITH o AS (
    SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::int[], $5::text[], $6::text[],
                         $7::float8[])
        AS o(id, round, outcome, status_code, error, excerpt, wait)
), attempt AS (
    INSERT INTO payout_attempts (payout_id, status_code, error, excerpt)
    SELECT id, status_code, nullif(error, ''), excerpt FROM o
), moved AS (
    UPDATE payouts p
    SET attempts = p.attempts + 1,
        last_error = nullif(o.error, ''),
        next_attempt_at = now() + make_interval(secs => o.wait),
        delivered_at = CASE WHEN o.outcome = 'delivered' THEN now() END,
        status = CASE
            WHEN o.outcome = 'delivered' THEN 'delivered'
            WHEN o.outcome = 'retry'
                 AND now() + make_interval(secs => o.wait) > p.created_at + interval '24 hours'
                 THEN 'failed'
            ELSE 'pending'
        END
    FROM o
    WHERE p.id = o.id AND p.status = 'pending' AND (o.outcome = 'delivered' OR p.round = o.round)
    RETURNING p.id, p.tenant_id, p.campaign_id, p.player_id, p.amount, p.unit, p.status
), stale AS (
    UPDATE payouts p SET attempts = p.attempts + 1
    FROM o
    WHERE p.id = o.id AND NOT EXISTS (SELECT FROM moved WHERE moved.id = o.id)
)
SELECT tenant_id, campaign_id, player_id, amount, unit, status FROM moved
WHERE status <> 'pending'
"""
# The endpoint is gone (410), or there is none: every pending credit of the campaign, up to the
# round that found it so, waits as failed until `loyalty` is fixed and they are retried.
FAIL_CAMPAIGN = """
UPDATE payouts SET status = 'failed', last_error = $3
WHERE tenant_id = $1 AND campaign_id = $2 AND status = 'pending' AND round <= $4
RETURNING tenant_id, campaign_id, player_id, amount, unit, status
"""
RETRY_FAILED = """
UPDATE payouts SET status = 'pending', next_attempt_at = now(), round = round + 1
WHERE tenant_id = $1 AND campaign_id = $2 AND status = 'failed'
"""


class Due(msgspec.Struct, frozen=True):
    """A credit claimed for delivery, with its campaign's loyalty endpoint (None: none set)."""

    id: str
    tenant: str
    campaign: str
    player: str
    reason: str
    amount: int
    unit: str
    attempts: int  # made so far
    round: int  # of retries by hand (see migrations/0006)
    loyalty: dict[str, Any] | None


class Attempted(msgspec.Struct, frozen=True):
    """What one attempt found. `outcome`: 'delivered', 'retry' (after `wait` seconds) or 'gone'
    (the campaign's endpoint is gone or missing; `error` says which)."""

    credit: Due
    outcome: str
    status_code: int | None
    error: str  # "" for none
    excerpt: str  # the start of the answer
    wait: float = 0.0


# A credit made final (delivered or failed): tenant, campaign, player, amount, unit, status.
FinalRow = tuple[str, str, str, int, str, str]


async def claim_due(conn: Conn, limit: int, lease_seconds: float) -> list[Due]:
    rows = await conn.fetch(CLAIM_DUE, limit, lease_seconds)
    return [
        Due(
            r["id"],
            r["tenant_id"],
            r["campaign_id"],
            r["player_id"],
            r["reason"],
            r["amount"],
            r["unit"],
            r["attempts"],
            r["round"],
            r["loyalty"],
        )
        for r in rows
    ]


async def record(conn: Conn, attempts: list[Attempted]) -> list[FinalRow]:
    """Record the attempts and their outcomes, in one transaction; returns the credits that it
    made final."""
    columns = (
        [a.credit.id for a in attempts],
        [a.credit.round for a in attempts],
        [a.outcome for a in attempts],
        [a.status_code for a in attempts],
        [a.error for a in attempts],
        [a.excerpt for a in attempts],
        [a.wait for a in attempts],
    )
    gone = _gone_campaigns(attempts)
    if not gone:  # one statement: a transaction of its own, without BEGIN and COMMIT
        return [_final(r) for r in await conn.fetch(RECORD, *columns)]
    async with conn.transaction():
        rows = list(await conn.fetch(RECORD, *columns))
        for (tenant, campaign), (reason, round_) in gone.items():
            rows += await conn.fetch(FAIL_CAMPAIGN, tenant, campaign, reason, round_)
    return [_final(r) for r in rows]


def _gone_campaigns(attempts: list[Attempted]) -> dict[tuple[str, str], tuple[str, int]]:
    """The campaigns to fail, with the reason and the latest round that found them gone."""
    gone: dict[tuple[str, str], tuple[str, int]] = {}
    for a in attempts:
        if a.outcome == "gone":
            key = (a.credit.tenant, a.credit.campaign)
            latest = gone.get(key, ("", -1))[1]
            gone[key] = (a.error, max(latest, a.credit.round))
    return gone


def _final(r: asyncpg.Record) -> FinalRow:
    return (r["tenant_id"], r["campaign_id"], r["player_id"], r["amount"], r["unit"], r["status"])


async def retry_failed(conn: Conn, tenant: str, campaign: str) -> int:
    """Send every failed credit of the campaign again (same ids); returns how many."""
    status: str = await conn.execute(RETRY_FAILED, tenant, campaign)
    return int(status.split()[-1])
