"""The boards of a running instance: the writer, rebuilds on demand, and the reconciler."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import asyncpg
from cachetools import TTLCache
from redis.asyncio import Redis
from redis.exceptions import RedisError

from gamify.boards import encoding, functions, keys, rebuild
from gamify.boards.writer import BoardWriter
from gamify.cancellation import stop_if_cancelled
from gamify.engines import CompiledCampaign, EngineCache
from gamify.store import campaigns
from gamify.store.campaigns import OpenCampaign

log = logging.getLogger(__name__)


RECONCILE_EVERY = 60.0
RECONCILE_LOCK_SECONDS = 120  # outlives a pass; frees the pass if its instance died in it
CAMPAIGN_TTL = 1.0
READY_WAIT = 5.0
# Rows committed just before a pass may carry an earlier updated_at than the pass's start.
REPLAY_MARGIN = timedelta(seconds=10)
COUNTS = """
SELECT tenant_id, campaign_id, count(*) AS members FROM progress WHERE score > 0
GROUP BY tenant_id, campaign_id
"""
CHANGED = """
SELECT tenant_id, campaign_id, player_id, score, reached_at FROM progress
WHERE updated_at > $1 AND score > 0
"""
CHANGED_WINDOWS = """
SELECT tenant_id, campaign_id, board, period, player_id, score, reached_at FROM window_scores
WHERE updated_at > $1
"""


class Boards:
    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: Redis,
        engines: EngineCache,
        on_written: Callable[[list[str]], None] = lambda keys: None,
    ) -> None:
        self.pool = pool
        self.redis = redis
        self.engines = engines
        self.writer = BoardWriter(redis, self.schedule_rebuild, self.mark_dirty, on_written)
        self._rebuilds: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._dirty = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None
        self._watermark = datetime.now(UTC)
        self._campaigns: TTLCache[tuple[str, str], CompiledCampaign | None] = TTLCache(
            maxsize=10_000, ttl=CAMPAIGN_TTL
        )

    async def start(self) -> None:
        try:
            await functions.load(self.redis)
        except RedisError:
            log.warning("Redis unreachable at start; boards will be rebuilt when it is back")
        self._loop = asyncio.get_running_loop().create_task(self._reconcile_forever())

    async def stop(self) -> None:
        tasks = [t for t in (self._loop, *self._rebuilds.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def mark_dirty(self) -> None:
        self._dirty.set()

    def schedule_rebuild(self, tenant: str, campaign: str) -> asyncio.Task[None]:
        running = self._rebuilds.get((tenant, campaign))
        if running is None or running.done():
            running = asyncio.get_running_loop().create_task(self._rebuild(tenant, campaign))
            self._rebuilds[(tenant, campaign)] = running
        return running

    async def ensure_ready(self, tenant: str, campaign: str) -> bool:
        """Whether the campaign's boards are built; starts a rebuild and waits a little if not."""
        if await self.redis.exists(keys.ready(tenant, campaign)):
            return True
        task = self.schedule_rebuild(tenant, campaign)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), READY_WAIT)
        return bool(await self.redis.exists(keys.ready(tenant, campaign)))

    async def compiled(self, tenant: str, campaign: str) -> CompiledCampaign | None:
        """The campaign's compiled rules, looked up at most once a second per instance: reads
        of a board ask for it on every request, and a campaign's rules barely change."""
        cached = self._campaigns.get((tenant, campaign))
        if cached is None:
            cached = self._campaigns[(tenant, campaign)] = await self.lookup(tenant, campaign)
        return cached

    async def lookup(self, tenant: str, campaign: str) -> CompiledCampaign | None:
        async with self.pool.acquire() as conn:
            row = await campaigns.get(conn, tenant, campaign)
        if row is None:
            return None
        return self.engines.get(tenant, OpenCampaign(row.id, row.version, row.document))

    async def _rebuild(self, tenant: str, campaign: str) -> None:
        compiled = await self.compiled(tenant, campaign)
        if compiled is None:
            return
        for _ in range(int(rebuild.LOCK_SECONDS)):
            if await rebuild.rebuild(self.pool, self.redis, tenant, compiled) is not None:
                return
            if await self.redis.exists(keys.ready(tenant, campaign)):
                return  # another instance finished it
            stop_if_cancelled()
            await asyncio.sleep(1)

    async def _reconcile_forever(self) -> None:
        while True:
            try:
                await self.reconcile()
                # A library may swallow a cancellation it met mid-call (seen here in a pass
                # that returned normally while its task was being cancelled).
                stop_if_cancelled()
            except (RedisError, OSError, asyncpg.PostgresError):
                stop_if_cancelled()
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
        """Repair drift: rebuild boards that are missing or short, replay recent changes.

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
        async with self.pool.acquire() as conn:
            found = await campaigns.matching(conn)
            counts = {
                (r["tenant_id"], r["campaign_id"]): r["members"] for r in await conn.fetch(COUNTS)
            }
            since = watermark - REPLAY_MARGIN
            changed = await conn.fetch(CHANGED, since)
            changed_windows = await conn.fetch(CHANGED_WINDOWS, since)
        for tenant, campaign in found:
            ready = await self.redis.exists(keys.ready(tenant, campaign.id))
            members = await self.redis.zcard(keys.board(tenant, campaign.id))
            if not ready or members < counts.get((tenant, campaign.id), 0):
                await self.schedule_rebuild(tenant, campaign.id)
        compiled = {(tenant, c.id): self.engines.get(tenant, c) for tenant, c in found}
        await _replay(self.redis, compiled, changed, changed_windows)
        self._watermark = started
        await self.redis.set(keys.RECONCILED, started.isoformat())


async def _replay(
    redis: Redis,
    compiled: dict[tuple[str, str], CompiledCampaign],
    changed: list[asyncpg.Record],
    windows: list[asyncpg.Record],
) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        for row in [*changed, *windows]:
            campaign = compiled.get((row["tenant_id"], row["campaign_id"]))
            if campaign is None:
                continue
            board = row.get("board", "campaign")
            period = row.get("period")
            key = keys.board(row["tenant_id"], row["campaign_id"], board, period)
            if row["score"] == 0:
                pipe.zrem(key, row["player_id"])
                continue
            try:
                encoded = encoding.encode(
                    row["score"], row["reached_at"], campaign.starts_at, campaign.bits
                )
            except encoding.BoardOverflow:
                continue
            pipe.zadd(key, {row["player_id"]: encoded}, gt=period is None)
            if period is not None:
                pipe.expireat(key, campaign.windows_expire_at)
        await pipe.execute()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
