"""The reconciler: boards that drifted from Postgres are repaired, once a minute and at once
after a failed write.

A pass rebuilds boards that are missing or short and replays every score written since the
last pass of any instance. One instance at a time makes it, for all (a lock in Redis), so
adding instances does not multiply the replay.
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
from gamify.platform.cancellation import stop_if_cancelled

log = logging.getLogger(__name__)

RECONCILE_EVERY = 60.0
RECONCILE_LOCK_SECONDS = 120  # outlives a pass; frees the pass if its instance died in it
# Rows committed just before a pass may carry an earlier updated_at than the pass's start.
REPLAY_MARGIN = timedelta(seconds=10)


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
            counts = await store.member_counts(conn)
            changed, changed_windows = await store.changed_since(conn, watermark - REPLAY_MARGIN)
        for tenant, campaign in found:
            ready = await self.redis.exists(keys.ready(tenant, campaign.id))
            members = await self.redis.zcard(keys.board(tenant, campaign.id))
            if not ready or members < counts.get((tenant, campaign.id), 0):
                await self.rebuild(tenant, campaign.id)
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
