"""The boards of a running instance: the writer, rebuilds on demand, the reconciler's loop and
the cached first pages."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg
from cachetools import TTLCache
from redis.asyncio import Redis
from redis.exceptions import RedisError

from gamify.boards import functions, keys, rebuild
from gamify.boards.reconciler import Reconciler
from gamify.boards.writer import BoardWriter
from gamify.campaigns import store as campaigns
from gamify.campaigns.compiled import CompiledCampaign, EngineCache
from gamify.platform import metrics
from gamify.platform.cancellation import stop_if_cancelled

log = logging.getLogger(__name__)

CAMPAIGN_TTL = 1.0
READY_WAIT = 5.0
TOP_PAGE_TTL = 0.25


class Boards:
    def __init__(self, pool: asyncpg.Pool, redis: Redis, engines: EngineCache) -> None:
        self.pool = pool
        self.redis = redis
        self.engines = engines
        self.reconciler = Reconciler(pool, redis, engines, self.schedule_rebuild)
        self.writer = BoardWriter(
            redis, self.schedule_rebuild, self.reconciler.mark_dirty, self._written
        )
        # The first pages of each board (board key -> limit -> page), for TOP_PAGE_TTL seconds:
        # the top of a popular board is read by every app at once. This instance's own writes
        # drop them at once; another instance's show within the TTL.
        self.top_pages: TTLCache[str, dict[int, Any]] = TTLCache(maxsize=10_000, ttl=TOP_PAGE_TTL)
        self._rebuilds: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._loop: asyncio.Task[None] | None = None
        self._campaigns: TTLCache[tuple[str, str], CompiledCampaign | None] = TTLCache(
            maxsize=10_000, ttl=CAMPAIGN_TTL
        )

    async def start(self) -> None:
        try:
            await functions.load(self.redis)
        except RedisError:
            metrics.redis_answered(False)
            log.warning("Redis unreachable at start; boards will be rebuilt when it is back")
        else:
            metrics.redis_answered(True)
        self._loop = asyncio.get_running_loop().create_task(self.reconciler.run_forever())

    async def stop(self) -> None:
        tasks = [t for t in (self._loop, *self._rebuilds.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _written(self, board_keys: list[str]) -> None:
        for key in board_keys:
            self.top_pages.pop(key, None)

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
        return self.engines.get(tenant, row.open())

    async def _rebuild(self, tenant: str, campaign: str) -> None:
        compiled = await self.compiled(tenant, campaign)
        if compiled is None:
            return
        # Unlike rebuild_here, a rebuild finished by another instance will do: readers and
        # writers only need the boards built.
        for _ in range(int(rebuild.LOCK_SECONDS)):
            if await rebuild.rebuild(self.pool, self.redis, tenant, compiled) is not None:
                return
            if await self.redis.exists(keys.ready(tenant, campaign)):
                return  # another instance finished it
            stop_if_cancelled()
            await asyncio.sleep(1)
