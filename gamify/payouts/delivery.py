"""Delivery: every credit POSTed once into the partner's loyalty system, signed, retried until
it lands or 24 hours have passed.

A dispatcher (in every instance by default, or alone in `gamify worker`) claims due credits
with `FOR UPDATE SKIP LOCKED` and a lease, POSTs `{"id","type":"credit","campaign","player",
"amount","unit","reason"}` signed per Standard Webhooks (`webhook-id` is the credit's id, the
same on every attempt, so the loyalty system can drop a repeat), and records every attempt with
its outcome:
- any 2xx: delivered;
- a 410: the endpoint is gone; the campaign's pending credits wait as `failed` with the reason
  until `loyalty` is fixed and `POST …/payouts/retry` sends them again;
- anything else (a timeout, a refused connection, another status): again after a full-jitter
  exponential backoff (about 1 s first, doubling, capped at GAMIFY_DELIVERY_MAX_BACKOFF), or
  after `Retry-After` on a 429 or 503, until 24 hours have passed: then `failed`.
The schedule lives in the database, not in a retrying call (so not stamina): it must outlive
the process, and any instance may take the next attempt.

Claims, requests and records overlap: the dispatcher claims more while earlier credits are in
flight (up to WINDOW held at once), each credit is a task of its own (a slow answer holds up no
other credit, and at most PER_HOST requests go to one host at a time), and one recorder writes
whatever outcomes piled up since its last write in one statement. Once that commits, the
listeners registered with `on_final` hear of each credit it delivered or failed. Claims take
credits in the order they are due, whatever their host: a slow partner with a long queue can
still fill the window, and then the credits it holds are left to the next claim once they
have waited START_WITHIN, rather than sent late.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache

import asyncpg
import httpx
import msgspec
from standardwebhooks.webhooks import Webhook

from gamify.payouts import store
from gamify.platform import metrics
from gamify.platform.cancellation import stop_if_cancelled

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 15.0  # for a whole attempt, from connecting to the end of the answer
LEASE_SECONDS = 60.0  # outlives an attempt's timeout: a claimed credit is not claimed twice
# A credit that waited this long for its host is not sent any more: its attempt could end after
# its lease, when another dispatcher may have claimed it. The next claim takes it up.
START_WITHIN = LEASE_SECONDS - TIMEOUT_SECONDS - 5.0
CLAIM_BATCH = 256
WINDOW = 1024  # credits claimed and not yet recorded, at most
PER_HOST = 16  # requests in flight per loyalty host: a slow partner cannot starve the others
IDLE_SECONDS = 0.5
EXCERPT = 200
MAX_ANSWER = 64 * 1024  # bytes of an answer read; a longer one closes its connection
KEEPALIVE_SECONDS = 5.0
MAX_IDLE_CONNECTIONS = 256
GONE = "the loyalty endpoint answered 410 Gone: fix loyalty, then retry"
NO_ENDPOINT = "the campaign has no loyalty endpoint"


class Credit(msgspec.Struct, frozen=True):
    """The body the loyalty system receives."""

    id: str
    type: str
    campaign: str
    player: str
    amount: int
    unit: str
    reason: str


class FinalCredit(msgspec.Struct, frozen=True):
    """A credit that reached its final state: `status` is 'delivered' or 'failed'."""

    tenant: str
    campaign: str
    player: str
    amount: int
    unit: str
    status: str


FinalListener = Callable[[FinalCredit], object]

_encode = msgspec.json.Encoder().encode


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
        self.timeout = timeout
        self.idle = idle
        # One client for every loyalty host: connections are kept alive per host, and the
        # dispatcher bounds requests per host and the time of a whole attempt itself.
        self._client = httpx.AsyncClient(
            timeout=None,
            limits=httpx.Limits(
                max_connections=None,
                max_keepalive_connections=MAX_IDLE_CONNECTIONS,
                keepalive_expiry=KEEPALIVE_SECONDS,
            ),
        )
        self._hosts: defaultdict[bytes, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(PER_HOST)
        )
        self._listeners: list[FinalListener] = []
        self._held = 0  # claimed and not yet recorded (or given up)
        self._outcomes: list[store.Attempted] = []  # waiting for the recorder
        self._outcomes_waiting = asyncio.Event()
        self._room = asyncio.Event()  # set when `_held` went down
        self._task: asyncio.Task[None] | None = None

    def on_final(self, listener: FinalListener) -> None:
        """`listener(credit)` hears of each credit delivered or failed (by a 410, a missing
        endpoint or after 24 hours), once the transaction that said so committed. It runs on the
        event loop and must be quick; an exception it raises is logged, never passed on."""
        self._listeners.append(listener)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._client.aclose()

    async def run_forever(self) -> None:
        try:
            while True:
                try:
                    async with asyncio.TaskGroup() as tasks:
                        tasks.create_task(self._record_forever())
                        await self._claim_forever(tasks)
                except Exception:
                    stop_if_cancelled()
                    # A bug must not stop delivery: log it, start again shortly.
                    log.exception("credit delivery failed; starting again shortly")
                    self._held = len(self._outcomes)  # the attempts cut short went with it
                    await asyncio.sleep(self.idle)
        finally:
            # Outcomes already known are written, so that a stop sends nothing twice; the
            # attempts cut short go out again once their lease runs out.
            await self._record()

    async def _claim_forever(self, tasks: asyncio.TaskGroup) -> None:
        while True:
            self._room.clear()
            wanted = min(WINDOW - self._held, CLAIM_BATCH)
            if wanted < CLAIM_BATCH // 4:
                await self._room.wait()
                continue
            if await self._claim(wanted, tasks) < wanted:
                await asyncio.sleep(self.idle)  # nothing more is due now

    async def _claim(self, limit: int, tasks: asyncio.TaskGroup) -> int:
        """Claim up to `limit` due credits and start an attempt for each; returns how many."""
        try:
            async with self.pool.acquire() as conn:
                due = await store.claim_due(conn, limit, LEASE_SECONDS)
        except Exception:
            stop_if_cancelled()
            log.exception("claiming credits failed; trying again shortly")
            return 0
        start_by = asyncio.get_running_loop().time() + START_WITHIN
        self._held += len(due)
        for credit in due:
            tasks.create_task(self._attempt(credit, start_by))
        return len(due)

    async def _attempt(self, credit: store.Due, start_by: float) -> None:
        try:
            outcome = await self._try(credit, start_by)
        except Exception:
            log.exception("credit %s: the attempt failed; it goes out again later", credit.id)
            outcome = None
        if outcome is None:  # not sent: the credit's lease runs out and it is claimed again
            self._release(1)
        else:
            _count(outcome)
            self._outcomes.append(outcome)
            self._outcomes_waiting.set()

    async def _try(self, credit: store.Due, start_by: float) -> store.Attempted | None:
        endpoint = _endpoint_of(credit)
        if isinstance(endpoint, str):
            return store.Attempted(credit, "gone", None, endpoint, "")
        url, signer = endpoint
        async with self._hosts[url.netloc]:
            if asyncio.get_running_loop().time() > start_by:
                return None
            return await self._post(url, signer, credit)

    async def _post(self, url: httpx.URL, signer: Webhook, credit: store.Due) -> store.Attempted:
        body = _encode(
            Credit(
                credit.id,
                "credit",
                credit.campaign,
                credit.player,
                credit.amount,
                credit.unit,
                credit.reason,
            )
        )
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": credit.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signer.sign(
                credit.id, datetime.fromtimestamp(timestamp, UTC), body.decode()
            ),
        }
        try:
            async with (
                asyncio.timeout(self.timeout),
                self._client.stream("POST", url, content=body, headers=headers) as response,
            ):
                content = await _read(response)
        except (TimeoutError, httpx.TimeoutException):
            return self._judge(credit, None, "timed out", "")
        except (httpx.HTTPError, OSError) as exc:
            return self._judge(credit, None, f"{type(exc).__name__}: {exc}"[:EXCERPT], "")
        excerpt = content[: EXCERPT * 4].decode(errors="replace")[:EXCERPT]
        return self._judge(credit, response.status_code, "", excerpt, _retry_after(response))

    def _judge(
        self,
        credit: store.Due,
        status: int | None,
        error: str,
        excerpt: str,
        retry_after: float | None = None,
    ) -> store.Attempted:
        if status is not None and 200 <= status < 300:
            return store.Attempted(credit, "delivered", status, "", excerpt)
        if status == 410:
            return store.Attempted(credit, "gone", status, GONE, excerpt)
        wait = backoff(credit.attempts, self.max_backoff)
        if status in (429, 503) and retry_after is not None:
            wait = retry_after
        error = error or f"answered {status}"
        return store.Attempted(credit, "retry", status, error, excerpt, wait)

    async def _record_forever(self) -> None:
        while True:
            await self._outcomes_waiting.wait()
            self._outcomes_waiting.clear()
            await self._record()

    async def _record(self) -> None:
        """Write the outcomes that piled up, in one transaction; then tell the listeners."""
        batch, self._outcomes = self._outcomes, []
        if not batch:
            return
        finals: list[store.FinalRow] = []
        try:
            async with self.pool.acquire() as conn:
                finals = await store.record(conn, batch)
        except Exception:
            stop_if_cancelled()
            log.exception(
                "recording %d attempts failed; their credits go out again when their lease ends",
                len(batch),
            )
        finally:
            self._release(len(batch))
        self._tell(finals)

    def _release(self, count: int) -> None:
        self._held -= count
        self._room.set()

    def _tell(self, finals: list[store.FinalRow]) -> None:
        for row in finals:
            credit = FinalCredit(*row)
            for listener in self._listeners:
                try:
                    listener(credit)
                except Exception:
                    log.exception("a listener to final credits failed on %s", credit)


async def _read(response: httpx.Response) -> bytes:
    """The answer's first MAX_ANSWER bytes: a longer one is cut short, and httpx closes its
    connection rather than keep a half-read one."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_ANSWER:
            break
    return b"".join(chunks)


def _endpoint_of(credit: store.Due) -> tuple[httpx.URL, Webhook] | str:
    """Where the credit goes and how it is signed, or why it cannot go anywhere."""
    loyalty = credit.loyalty or {}
    url, secret = loyalty.get("url"), loyalty.get("secret")
    if not isinstance(url, str) or not url or not isinstance(secret, str) or not secret:
        return NO_ENDPOINT
    try:
        return _endpoint(url), _signer(secret)
    except (httpx.InvalidURL, ValueError) as exc:
        return f"the loyalty endpoint is unusable ({exc}): fix loyalty, then retry"


@lru_cache(maxsize=1024)
def _endpoint(url: str) -> httpx.URL:
    # Parsed once: httpx parses a URL given as a string on every request.
    return httpx.URL(url)


@lru_cache(maxsize=1024)
def _signer(secret: str) -> Webhook:
    # The secret is base64: decoding it for every credit cost more than signing.
    return Webhook(secret)


_ATTEMPT_OUTCOMES = {"delivered": "delivered", "retry": "retry", "gone": "failed"}


def _count(outcome: store.Attempted) -> None:
    status = "none" if outcome.status_code is None else str(outcome.status_code)
    metrics.DELIVERY_ATTEMPTS.labels(_ATTEMPT_OUTCOMES[outcome.outcome], status).inc()


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
