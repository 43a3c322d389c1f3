"""The campaign clock: campaigns settle by themselves when their time comes.

scheduled, live and ended follow from the campaign's times and need no writes; when
`ends_at + grace` passes, the campaign is due to settle. Every instance's clock looks once a
second (one indexed query) and hands what is due to the settler registered in the hooks
(payouts), which acts under the campaign's row lock: whichever instance gets there first
settles it, the others find it settled or locked and move on, and a settlement cut short by a
crash is simply due again at the next look.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

import asyncpg

from gamify.campaigns import store
from gamify.campaigns.hooks import CampaignHooks
from gamify.platform.cancellation import stop_if_cancelled

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0
DUE_PER_TICK = 20


class Clock:
    def __init__(self, pool: asyncpg.Pool, hooks: CampaignHooks, tick: float = TICK_SECONDS):
        self.pool = pool
        self.hooks = hooks
        self.tick = tick
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def turn(self) -> int:
        """Settle what is due now; returns how many campaigns were handed to the settler."""
        async with self.pool.acquire() as conn:
            due = await store.due(conn, DUE_PER_TICK)
        for tenant, campaign in due:
            await self.hooks.settlement_due(tenant, campaign)
        return len(due)

    async def _run_forever(self) -> None:
        while True:
            try:
                await self.turn()
                stop_if_cancelled()
            except Exception:
                stop_if_cancelled()
                # A bug or an outage must not stop the clock: log it, look again next tick.
                log.exception("the campaign clock's turn failed")
            # Jittered, so that instances started together do not query in lockstep.
            await asyncio.sleep(self.tick * random.uniform(0.8, 1.2))
