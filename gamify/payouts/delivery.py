"""Delivery: every credit POSTed once into the partner's loyalty system, signed, retried until
it lands or 24 hours have passed.

A dispatcher (in every instance by default, or alone in `gamify worker`) claims due credits
with `FOR UPDATE SKIP LOCKED` and a lease, POSTs `{"id","type":"credit","campaign","player",
"amount","unit","reason"}` signed per Standard Webhooks (`webhook-id` is the credit's id, the
same on every attempt, so the loyalty system can drop a repeat), and records the attempt with
its outcome in one statement:
- any 2xx: delivered;
- a 410: the endpoint is gone; the campaign's pending credits wait as `failed` with the reason
  until `loyalty` is fixed and `POST …/payouts/retry` sends them again;
- anything else (a timeout, a refused connection, another status): again after a full-jitter
  exponential backoff (about 1 s first, doubling, capped at GAMIFY_DELIVERY_MAX_BACKOFF), or
  after `Retry-After` on a 429 or 503, until 24 hours have passed: then `failed`.
The schedule lives in the database, not in a retrying call (so not stamina): it must outlive
the process, and any instance may take the next attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import defaultdict
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import asyncpg
import httpx
import msgspec
from standardwebhooks.webhooks import Webhook

from gamify.payouts import store
from gamify.platform.cancellation import stop_if_cancelled
from gamify.platform.db import Conn

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 15.0
LEASE_SECONDS = 60.0  # outlives an attempt's timeout: a claimed credit is not claimed twice
CLAIM_BATCH = 200
PER_HOST = 16  # requests in flight per loyalty host: a slow partner cannot starve the others
IDLE_SECONDS = 0.5
EXCERPT = 200


class Credit(msgspec.Struct, frozen=True):
    """The body the loyalty system receives."""

    id: str
    type: str
    campaign: str
    player: str
    amount: int
    unit: str
    reason: str


class Dispatcher:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        max_backoff: float = 300.0,
        timeout: float = TIMEOUT_SECONDS,
        idle: float = IDLE_SECONDS,
    ) -> None:
        self.pool = pool
        self.max_backoff = max_backoff
        self.idle = idle
        self.client = httpx.AsyncClient(
            timeout=timeout, limits=httpx.Limits(max_connections=256, max_keepalive_connections=64)
        )
        self._hosts: defaultdict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(PER_HOST)
        )
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.client.aclose()

    async def run_forever(self) -> None:
        while True:
            try:
                sent = await self.dispatch()
                stop_if_cancelled()
            except Exception:
                stop_if_cancelled()
                log.exception("credit delivery failed; trying again shortly")
                sent = 0
            if not sent:
                await asyncio.sleep(self.idle)

    async def dispatch(self) -> int:
        """Claim the credits due now and attempt each once; returns how many."""
        async with self.pool.acquire() as conn:
            due = await store.claim_due(conn, CLAIM_BATCH, LEASE_SECONDS)
        await asyncio.gather(*(self._attempt(credit) for credit in due))
        return len(due)

    async def _attempt(self, credit: store.Due) -> None:
        loyalty = credit.loyalty or {}
        url, secret = loyalty.get("url"), loyalty.get("secret")
        if not url or not secret:
            async with self.pool.acquire() as conn:
                reason = "the campaign has no loyalty endpoint"
                await store.give_up(conn, credit, None, reason, "")
            return
        async with self._hosts[urlsplit(url).netloc]:
            outcome = await self._post(url, secret, credit)
        async with self.pool.acquire() as conn:
            await outcome.record(conn, credit, self.max_backoff)

    async def _post(self, url: str, secret: str, credit: store.Due) -> _Outcome:
        body = msgspec.json.encode(
            Credit(
                credit.id,
                "credit",
                credit.campaign,
                credit.player,
                credit.amount,
                credit.unit,
                credit.reason,
            )
        ).decode()
        now = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "webhook-id": credit.id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(secret).sign(credit.id, now, body),
        }
        try:
            response = await self.client.post(url, content=body, headers=headers)
        except httpx.TimeoutException:
            return _Outcome(None, "timed out", "")
        except httpx.HTTPError as exc:
            return _Outcome(None, f"{type(exc).__name__}: {exc}"[:EXCERPT], "")
        return _Outcome(
            response.status_code,
            "" if response.is_success else f"answered {response.status_code}",
            response.text[:EXCERPT],
            _retry_after(response),
        )


class _Outcome(msgspec.Struct, frozen=True):
    status: int | None
    error: str
    excerpt: str
    retry_after: float | None = None

    async def record(self, conn: Conn, credit: store.Due, cap: float) -> None:
        if self.status is not None and 200 <= self.status < 300:
            await store.delivered(conn, credit.id, self.status, self.excerpt)
        elif self.status == 410:
            reason = "the loyalty endpoint answered 410 Gone: fix loyalty, then retry"
            await store.give_up(conn, credit, self.status, reason, self.excerpt)
        else:
            honoured = self.status in (429, 503) and self.retry_after is not None
            wait = self.retry_after if honoured else backoff(credit.attempts, cap)
            await store.retry_later(
                conn, credit, self.status, self.error, wait or 0.0, self.excerpt
            )


def backoff(attempts: int, cap: float) -> float:
    """Full jitter ("exponential backoff and jitter"): uniform in [0, min(cap, 2^attempts)]
    seconds, so the first retry comes within about a second and a pool's worth of retries
    after an outage spreads out instead of arriving together."""
    return random.uniform(0.0, min(cap, 2.0 ** min(attempts, 30)))


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    if value.isdigit():
        return float(value)
    with contextlib.suppress(TypeError, ValueError):
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    return None
