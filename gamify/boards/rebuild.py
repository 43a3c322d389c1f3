"""Rebuild a campaign's boards from Postgres, streamed in chunks, beside live writes.

ZADD GT (scores only grow) makes rebuilt and live scores commute: whichever lands last, each
member ends at the higher, newer score, so nothing has to stop while a board is rebuilt.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from redis.asyncio import Redis

from gamify.boards import encoding, keys
from gamify.engines import CompiledCampaign

log = logging.getLogger(__name__)

CHUNK = 10_000
LOCK_SECONDS = 300
CAMPAIGN_ROWS = """
SELECT player_id, score, reached_at FROM progress
WHERE tenant_id = $1 AND campaign_id = $2 AND score > 0
"""
WINDOW_ROWS = """
SELECT board, period, player_id, score, reached_at FROM window_scores
WHERE tenant_id = $1 AND campaign_id = $2 AND score > 0
"""


async def rebuild(
    pool: asyncpg.Pool, redis: Redis, tenant: str, compiled: CompiledCampaign
) -> int | None:
    """Rebuild every board of the campaign; returns members written, or None when another
    process holds the rebuild lock (it will set the ready marker)."""
    lock = keys.rebuilding(tenant, compiled.id)
    if not await redis.set(lock, "1", nx=True, ex=LOCK_SECONDS):
        return None
    try:
        written = await _stream(
            pool,
            redis,
            CAMPAIGN_ROWS,
            tenant,
            compiled,
            lambda row: keys.board(tenant, compiled.id),
        )
        written += await _stream(
            pool,
            redis,
            WINDOW_ROWS,
            tenant,
            compiled,
            lambda row: keys.board(tenant, compiled.id, row["board"], row["period"]),
        )
        await redis.set(keys.ready(tenant, compiled.id), "1")
    finally:
        await redis.delete(lock)
    log.info("rebuilt the boards of %s/%s: %d members", tenant, compiled.id, written)
    return written


async def _stream(
    pool: asyncpg.Pool,
    redis: Redis,
    query: str,
    tenant: str,
    compiled: CompiledCampaign,
    key_of: Any,
) -> int:
    written = 0
    async with pool.acquire() as conn, conn.transaction():
        cursor = await conn.cursor(query, tenant, compiled.id)
        while rows := await cursor.fetch(CHUNK):
            by_key: dict[str, dict[str, int]] = {}
            for row in rows:
                try:
                    encoded = encoding.encode(
                        row["score"], row["reached_at"], compiled.starts_at, compiled.bits
                    )
                except encoding.BoardOverflow:
                    log.error(
                        "%s: %s points cannot be ranked exactly; left unranked",
                        compiled.id,
                        row["score"],
                    )
                    continue
                by_key.setdefault(key_of(row), {})[row["player_id"]] = encoded
            async with redis.pipeline(transaction=False) as pipe:
                for key, members in by_key.items():
                    # Campaign scores only grow (GT commutes with live writes); a window's can
                    # drop, and the reconciler's replay corrects a rebuild that raced a drop.
                    pipe.zadd(key, members, gt=key == keys.board(tenant, compiled.id))
                await pipe.execute()
            written += len(rows)
    return written
