"""Every metric gamify exports, defined here and nowhere else, and `GET /metrics`.

Prometheus text format, by prometheus-client. The package that owns a fact counts it with one
call on the metric defined here (the award endpoint its events and awards, the boards the
reconciler's repairs and whether Redis answers, live its sockets, delivery its attempts).

**Several workers.** `gamify serve --workers N` forks N Granian worker processes, each with
counters of its own, and a scrape reaches one of them. So `serve` sets PROMETHEUS_MULTIPROC_DIR
(the data folder's `metrics`, emptied at every start) before the first worker forks: each
worker then keeps its values in a memory-mapped file there, and a scrape adds up the files of
every worker (prometheus-client's multiprocess mode). Gauges say how workers combine: sockets
are summed over the living workers, the Redis flag is the latest word of any living worker. A
process started without the variable (the tests, an ASGI server run by hand) counts in memory,
for itself alone.

**Scrapes.** A worker renders its answer (with the outbox depth, a query) at most once a second,
one scrape at a time: concurrent scrapes wait for the one in flight and share its answer, later
ones within the second take it as it is. However often a scraper comes, it costs a worker one
rendering and one query a second, so it can neither pile queries onto the pool the write path
uses nor take the CPU the requests need; a scrape sees counts at most a second old.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from litestar import Request, Response, get
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
    values,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics import disable_created_metrics
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from gamify.platform.container import part_of
from gamify.platform.openapi import ProblemOperation

log = logging.getLogger(__name__)

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


def _check_storage() -> None:
    """prometheus-client picks where values live (memory or files) when first imported: a
    worker forked from a process that imported it before the folder was set would count where
    no scrape looks."""
    if os.environ.get(MULTIPROCESS_DIR) and values.ValueClass is values.MutexValue:
        raise RuntimeError(f"prometheus_client was imported before {MULTIPROCESS_DIR} was set")


_check_storage()
# Multiprocess mode cannot export `_created` series; one format whatever the mode.
disable_created_metrics()  # type: ignore[no-untyped-call]
_registry = CollectorRegistry()

EVENT_STATUSES = ("accepted", "duplicate", "rejected")
# From 1 ms (a cached read) to 10 s (a 1,000-event batch on a busy worker).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

EVENTS = Counter(
    "gamify_events",
    "Events the award endpoint answered, by status: accepted, duplicate or rejected",
    ["status"],
    registry=_registry,
)
AWARDS = Counter(
    "gamify_awards",
    "Badges awarded by the award endpoint (a duplicate's awards are not counted again)",
    registry=_registry,
)
REQUEST_SECONDS = Histogram(
    "gamify_request_duration_seconds",
    "HTTP requests by route template (not the raw path), method and status class (2xx, 4xx, "
    "5xx; none when the client left before an answer); 404s of unknown paths are not routed",
    ["route", "method", "status"],
    buckets=LATENCY_BUCKETS,
    registry=_registry,
)
WEBSOCKET_CONNECTIONS = Gauge(
    "gamify_websocket_connections",
    "Open WebSocket connections",
    multiprocess_mode="livesum",
    registry=_registry,
)
WEBSOCKET_MESSAGES = Counter(
    "gamify_websocket_messages",
    "WebSocket messages sent, by type (rank_changed, leaderboard, ...)",
    ["type"],
    registry=_registry,
)
DELIVERY_ATTEMPTS = Counter(
    "gamify_delivery_attempts",
    "Attempts to deliver a credit to a loyalty system, by outcome (delivered, retry, failed) "
    "and HTTP status (none for a timeout or a refused connection)",
    ["outcome", "status"],
    registry=_registry,
)
RECONCILER_REPAIRS = Counter(
    "gamify_reconciler_repairs",
    "Drift the reconciler repaired: boards rebuilt (kind=board), board entries that Redis "
    "had wrong or missing (kind=entry)",
    ["kind"],
    registry=_registry,
)
REDIS_DEGRADED = Gauge(
    "gamify_redis_degraded",
    "1 while Redis does not answer (events are still taken; boards catch up when it is back)",
    multiprocess_mode="livemostrecent",
    registry=_registry,
)

# Bound once: the award endpoint counts every request, and `labels()` takes a lock each call.
EVENTS_BY_STATUS = {status: EVENTS.labels(status) for status in EVENT_STATUSES}


# ---------------------------------------------------------------------------------------------
# Redis degraded: told by whoever just called Redis.

REDIS_REFRESH = 1.0  # seconds: how often an unchanged answer is written again
_redis: tuple[bool | None, float] = (None, 0.0)  # what was written, and when


def redis_answered(answered: bool) -> None:
    """What a Redis call just showed. Written when it changes, and again after REDIS_REFRESH
    so that this worker's word stays among the latest (workers combine by the most recent);
    the board writer tells this after every flush, where a file write each time would cost."""
    global _redis
    now = time.monotonic()
    last, written_at = _redis
    if answered is not last or now - written_at >= REDIS_REFRESH:
        _redis = (answered, now)
        REDIS_DEGRADED.set(0 if answered else 1)


# ---------------------------------------------------------------------------------------------
# Request latency.

_STATUS_CLASSES = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}


class LatencyMiddleware(ASGIMiddleware):
    """Times each HTTP request under its route template: Litestar runs middleware after
    routing, so `path_template` is there (`/v1/campaigns/{campaign_id}`), and the number of
    series stays that of the routes, whatever paths clients send."""

    def __init__(self) -> None:
        # Children by labels: `labels()` takes a lock and builds a key on every call.
        self._children: dict[tuple[str, str, str], Histogram] = {}

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if scope["type"] != ScopeType.HTTP:
            await next_app(scope, receive, send)
            return
        started = time.perf_counter()
        status = "none"

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = _STATUS_CLASSES.get(message["status"] // 100, "none")
            await send(message)

        try:
            await next_app(scope, receive, send_noting_status)
        finally:
            key = (scope.get("path_template", "unrouted"), scope["method"], status)
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = REQUEST_SECONDS.labels(*key)
            child.observe(time.perf_counter() - started)


# ---------------------------------------------------------------------------------------------
# Scrapes.


class ScrapedGauge:
    """A gauge whose value is read when scraped (`read`, an awaitable); absent while its read
    fails. How often it is read is the Exporter's business."""

    def __init__(
        self,
        name: str,
        documentation: str,
        read: Callable[[], Awaitable[int | float]],
        *,
        timeout: float = 2.0,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.read = read
        self.timeout = timeout

    async def metric(self) -> Metric | None:
        try:
            async with asyncio.timeout(self.timeout):
                value = float(await self.read())
        except Exception:
            log.warning("metric %s could not be read", self.name, exc_info=True)
            return None
        return GaugeMetricFamily(self.name, self.documentation, value=value)


def outbox_depth(read: Callable[[], Awaitable[int]]) -> ScrapedGauge:
    """The credits waiting for delivery, as `read` counts them."""
    return ScrapedGauge(
        "gamify_outbox_depth",
        "Credits waiting to be delivered to loyalty systems (pending), read when scraped",
        read,
    )


class Exporter:
    """What a scrape answers: every worker's metrics and the scrape-time gauges, rendered at
    most once every `max_age` seconds by one scrape at a time; the scrapes meanwhile share that
    answer. However often a scraper comes, this worker spends one rendering (milliseconds of
    CPU) and one round of scrape-time queries a second on it, no more."""

    def __init__(self, scraped: Iterable[ScrapedGauge] = (), *, max_age: float = 1.0) -> None:
        _check_storage()  # in each worker, after the fork
        self.scraped = list(scraped)
        self.max_age = max_age
        self._body = b""
        self._rendered_at = -float("inf")
        self._lock = asyncio.Lock()

    def _fresh(self) -> bool:
        return time.monotonic() - self._rendered_at < self.max_age

    async def render(self) -> bytes:
        if self._fresh():
            return self._body
        async with self._lock:
            if not self._fresh():  # else rendered by the scrape this one waited for
                extra = [m for m in [await g.metric() for g in self.scraped] if m is not None]
                # CPU alone (some 20 us a sample): in a thread, the event loop keeps its turns
                # meanwhile, so a scrape does not stall the requests in flight for that long.
                scrape = _Scrape(_sources(), extra)
                self._body = await asyncio.to_thread(generate_latest, scrape)
                self._rendered_at = time.monotonic()
        return self._body


def _sources() -> list[Collector]:
    folder = os.environ.get(MULTIPROCESS_DIR)
    if not folder:
        return [_registry]
    _forget_dead_workers(Path(folder))
    return [MultiProcessCollector(None, folder)]  # type: ignore[no-untyped-call]


def _forget_dead_workers(folder: Path) -> None:
    """Drop the live gauges of workers that died: their sockets are gone with them. (Their
    counters stay: what a dead worker counted still happened.)"""
    for path in folder.glob("gauge_live*_*.db"):
        pid = path.stem.rsplit("_", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            mark_process_dead(int(pid), str(folder))  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive all the same
        pass
    return True


def serve_alone(host: str, port: int) -> None:
    """This process's metrics on an HTTP port of their own (any path), for a process without
    the API: `gamify worker` and its delivery attempts. A thread of prometheus-client's serves
    them, off the event loop."""
    start_http_server(port, addr=host, registry=_registry)


class _Scrape(Collector):
    def __init__(self, sources: list[Collector], extra: list[Metric]) -> None:
        self.sources = sources
        self.extra = extra

    def collect(self) -> Iterator[Metric]:
        for source in self.sources:
            yield from source.collect()
        yield from self.extra


@get(
    "/metrics",
    tags=["operations"],
    summary="Metrics in the Prometheus text format, summed over the instance's workers",
    media_type=CONTENT_TYPE,
    operation_class=ProblemOperation,
)
async def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    body = await part_of(request, Exporter).render()
    return Response(body, media_type=CONTENT_TYPE)
