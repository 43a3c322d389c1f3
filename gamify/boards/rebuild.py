"""Rebuild a campaign's boards from Postgres, streamed in chunks, beside live writes.

ZADD GT (campaign scores only grow) makes rebuilt and live scores commute: whichever lands
last, each member ends at the higher, newer score, so nothing has to stop while a board is
rebuilt. Window scores can drop (a late event moves a badge to an earlier window); the
reconciler's replay of recent changes corrects a rebuild that raced such a drop.

Postgres encodes the scores (see boards.encoding) so that Python only forwards them, and the
next chunk is fetched while the previous one is written to Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from gamify.boards import encoding, functions, keys, store
from gamify.campaigns.compiled import CompiledCampaign

log = logging.getLogger(__name__)

CHUNK = 20_000
LOCK_SECONDS = 300
LOCK_POLL_SECONDS = 0.25


async def rebuild(
    pool: asyncpg.Pool, redis: Redis, tenant: str, compiled: CompiledCampaign
) -> int | None:
    """Rebuild every board of the campaign; returns members written, or None when the boards
    were not completed here: another process holds the rebuild lock (it will set the ready
    marker), or Redis lost the lock halfway (call again)."""
    lock = keys.rebuilding(tenant, compiled.id)
    token = secrets.token_hex(8)
    if not await redis.set(lock, token, nx=True, ex=LOCK_SECONDS):
        return None
    campaign_key = keys.board(tenant, compiled.id)
    finished = False
    try:
        written = await _stream(
            pool, redis, store.CAMPAIGN_ROWS, tenant, compiled, lambda row: campaign_key
        )
        if time.time() < compiled.windows_expire_at:  # else their retention is over
            written += await _stream(
                pool,
                redis,
                store.WINDOW_ROWS,
                tenant,
                compiled,
                lambda row: keys.board(tenant, compiled.id, row["board"], row["period"]),
            )
        await _report_overflow(pool, tenant, compiled)
        finished = await _finish(redis, lock, keys.ready(tenant, compiled.id), token)
    finally:
        if not finished:
            with contextlib.suppress(RedisError, OSError):
                await redis.delete(lock)
    if not finished:
        # Redis lost the lock, and with it the rows written before.
        log.warning(
            "Redis lost the rebuild of %s/%s halfway; not marked ready", tenant, compiled.id
        )
        return None
    log.info("rebuilt the boards of %s/%s: %d members", tenant, compiled.id, written)
    return written


async def rebuild_here(
    pool: asyncpg.Pool, redis: Redis, tenant: str, compiled: CompiledCampaign
) -> int:
    """Rebuild the campaign's boards in this process, waiting out a rebuild that holds the
    lock elsewhere (it may have started before what the caller needs to see was committed).

    A loop rather than stamina: a held lock is an answer to wait on, not an error to retry.
    """
    while (written := await rebuild(pool, redis, tenant, compiled)) is None:
        await asyncio.sleep(LOCK_POLL_SECONDS)
    return written


async def _finish(redis: Redis, lock: str, ready: str, token: str) -> bool:
    """Mark the boards ready if the lock is still this rebuild's; releases it."""
    done = await functions.loading(
        redis, lambda: redis.fcall(functions.FINISH_REBUILD, 2, lock, ready, token)
    )
    return bool(done)


async def _stream(
    pool: asyncpg.Pool,
    redis: Redis,
    query: str,
    tenant: str,
    compiled: CompiledCampaign,
    key_of: Callable[[Any], str],
) -> int:
    written = 0
    pending: asyncio.Task[Any] | None = None
    campaign_key = keys.board(tenant, compiled.id)
    async with pool.acquire() as conn, conn.transaction():
        cursor = await conn.cursor(query, tenant, compiled.id, compiled.starts_at, compiled.bits)
        while rows := await cursor.fetch(CHUNK):
            by_key: dict[str, dict[str, int]] = {}
            for row in rows:
                by_key.setdefault(key_of(row), {})[row["player_id"]] = row["encoded"]
            if pending is not None:
                await pending
            pending = asyncio.ensure_future(
                _write(redis, by_key, campaign_key, compiled.windows_expire_at)
            )
            written += len(rows)
    if pending is not None:
        await pending
    return written


async def _write(
    redis: Redis, by_key: dict[str, dict[str, int]], campaign_key: str, windows_expire_at: int
) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        for key, members in by_key.items():
            if key == campaign_key:
                pipe.zadd(key, members, gt=True)
            else:
                pipe.zadd(key, members)
                pipe.expireat(key, windows_expire_at)
        await pipe.execute()


async def _report_overflow(pool: asyncpg.Pool, tenant: str, compiled: CompiledCampaign) -> None:
    over = await store.overflowing(pool, tenant, compiled.id, compiled.bits)
    if over:
        log.error(
            "%s/%s: %d players have more points than the board can rank exactly "
            "(ceiling %d); they are left unranked",
            tenant,
            compiled.id,
            over,
            encoding.ceiling(compiled.bits),
        )
