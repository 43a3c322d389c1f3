"""The reconciler: boards that drifted from Postgres are repaired, once a minute and at once
after a failed write.

A pass rebuilds the boards whose ready marker is gone and replays every score written since
the last pass of any instance, streamed in chunks: its cost follows what changed, not the size
of the tables. One instance at a time makes it, for all (a lock in Redis), so adding instances
does not multiply the replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from gamify.boards import encoding, keys, store
from gamify.campaigns import store as campaigns
from gamify.campaigns.compiled import CompiledCampaign, EngineCache
from gamify.platform import metrics
from gamify.platform.cancellation import stop_if_cancelled
from gamify.platform.db import Conn

log = logging.getLogger(__name__)

RECONCILE_EVERY = 60.0
RECONCILE_LOCK_SECONDS = 120  # outlives a pass; frees the pass if its instance died in it
# Rows committed just before a pass may carry an earlier updated_at than the pass's start.
REPLAY_MARGIN = timedelta(seconds=10)
CHUNK = 5000


class Reconciler:
    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: Redis,
        engines: EngineCache,
        rebuild: Callable[[str, str], asyncio.Task[None]],
    ) -> None:
        self.pool = pool
        self.redis = redis
        self.engines = engines
        self.rebuild = rebuild
        self._dirty = asyncio.Event()
        self._watermark = datetime.now(UTC)

    def mark_dirty(self) -> None:
        """A write did not reach Redis: make a pass soon."""
        self._dirty.set()

    async def run_forever(self) -> None:
        while True:
            try:
                await self.reconcile()
                metrics.redis_answered(True)
                # A library may swallow a cancellation it met mid-call (seen here in a pass
                # that returned normally while its task was being cancelled).
                stop_if_cancelled()
            except (RedisError, OSError, asyncpg.PostgresError) as exc:
                stop_if_cancelled()
                if isinstance(exc, RedisError):
                    metrics.redis_answered(False)
                log.warning("board reconciliation failed; retrying", exc_info=True)
                self._dirty.set()
            except Exception:
                stop_if_cancelled()
                # A bug must not end the loop that keeps boards true: log it, try next round.
                log.exception("board reconciliation failed unexpectedly")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), RECONCILE_EVERY)
            await asyncio.sleep(1)  # let a burst of failures settle into one pass

    async def reconcile(self) -> bool:
        """Repair drift: rebuild boards that are missing, replay recent changes.

        One instance at a time makes the pass, for all: the others' passes would read and
        replay the same rows. Returns False, leaving a failed write's replay request standing,
        when another instance holds the pass.
        """
        if not await self.redis.set(keys.RECONCILING, "1", nx=True, ex=RECONCILE_LOCK_SECONDS):
            return False
        try:
            await self._pass()
        finally:
            # Best effort: the lock expires anyway, and an error here must not take the place
            # of the one (or the cancellation) that ended the pass.
            with contextlib.suppress(RedisError, OSError):
                await self.redis.delete(keys.RECONCILING)
        return True

    async def _pass(self) -> None:
        self._dirty.clear()
        started = datetime.now(UTC)
        last = await self.redis.get(keys.RECONCILED)
        # Where the last pass of any instance started (this instance's own when Redis lost
        # the mark): everything committed since then is replayed.
        watermark = datetime.fromisoformat(_text(last)) if last else self._watermark
        await self._rebuild_missing()
        compiled: dict[tuple[str, str], CompiledCampaign | None] = {}
        async with self.pool.acquire() as conn, conn.transaction():
            # Streamed: memory stays bounded however much changed since the last pass.
            async for chunk in store.changed_since(conn, watermark - REPLAY_MARGIN, CHUNK):
                for tenant, campaign in {(r["tenant_id"], r["campaign_id"]) for r in chunk}:
                    if (tenant, campaign) not in compiled:
                        compiled[(tenant, campaign)] = await self._compiled(conn, tenant, campaign)
                repaired = await _replay(self.redis, compiled, chunk)
                metrics.RECONCILER_REPAIRS.labels("entry").inc(repaired)
        self._watermark = started
        await self.redis.set(keys.RECONCILED, started.isoformat())

    async def _rebuild_missing(self) -> None:
        """Rebuild the boards of campaigns whose ready marker is gone (Redis flushed or
        restarted empty): one pipelined round trip checks them all."""
        async with self.pool.acquire() as conn:
            found = await campaigns.ids(conn)
        if not found:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for tenant, campaign in found:
                pipe.exists(keys.ready(tenant, campaign))
            ready = await pipe.execute()
        for (tenant, campaign), built in zip(found, ready, strict=True):
            if not built:
                await self.rebuild(tenant, campaign)
                metrics.RECONCILER_REPAIRS.labels("board").inc()

    async def _compiled(self, conn: Conn, tenant: str, campaign: str) -> CompiledCampaign | None:
        matched = await campaigns.matching(conn, tenant, campaign)
        return self.engines.get(tenant, matched[0][1]) if matched else None


async def _replay(
    redis: Redis,
    compiled: dict[tuple[str, str], CompiledCampaign | None],
    rows: list[asyncpg.Record],
) -> int:
    """Write `rows` to their boards; how many entries Redis had wrong or missing."""
    repairs: list[bool] = []  # per pipelined command: whether its reply counts entries changed
    async with redis.pipeline(transaction=False) as pipe:
        for row in rows:
            campaign = compiled.get((row["tenant_id"], row["campaign_id"]))
            if campaign is None:
                continue  # cancelled, or gone
            board, period = row["board"], row["period"]
            key = keys.board(row["tenant_id"], row["campaign_id"], board, period)
            if row["score"] == 0:
                pipe.zrem(key, row["player_id"])
                repairs.append(True)
                continue
            try:
                encoded = encoding.encode(
                    row["score"], row["reached_at"], campaign.starts_at, campaign.bits
                )
            except encoding.BoardOverflow:
                continue  # left unranked, as the writer leaves it
            # CH: the reply counts an entry whose score changed, not only a new one.
            pipe.zadd(key, {row["player_id"]: encoded}, gt=period is None, ch=True)
            repairs.append(True)
            if period is not None:
                pipe.expireat(key, campaign.windows_expire_at)
                repairs.append(False)
        replies = await pipe.execute()
    return sum(int(reply) for reply, counts in zip(replies, repairs, strict=True) if counts)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
