"""GET /metrics: Prometheus text that counts what the service did, summed over the workers of
`gamify serve`.

Counters live as long as the test process, so each test reads what moved between two scrapes;
and an app renders its answer at most once a second, so the tests of an app in this process
have it render every scrape (`every_scrape`), but the one about that cache.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from gamify.app import create_app
from gamify.boards import keys
from gamify.boards.service import Boards
from gamify.campaigns.compiled import EngineCache
from gamify.platform import db
from gamify.platform.embedded.ports import free_port
from gamify.platform.embedded.valkey import EmbeddedValkey
from gamify.platform.metrics import Exporter, ScrapedGauge
from gamify.platform.settings import Settings
from tests.gamify.support import (
    ADMIN,
    Servers,
    Service,
    bearer,
    boards_settled,
    earn_your_wings,
    flight,
    hours_ago,
    tenant_key,
)

PARTNER = ("events:write", "campaigns:write", "read")
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def every_scrape(client: AsyncTestClient[Litestar]) -> AsyncTestClient[Litestar]:
    """The client, its app rendering every scrape afresh."""
    client.app.state.container.get(Exporter).max_age = 0
    return client


async def scrape(client: AsyncTestClient[Litestar]) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


@pytest.fixture
async def undelivered(settings: Settings, clean: None) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """An app that delivers no credits itself: what it owes stays pending."""
    app = create_app(msgspec.structs.replace(settings, delivery_in_process=False))
    async with AsyncTestClient(app) as client:
        yield every_scrape(client)


async def test_metrics_count_the_events_and_awards_the_award_endpoint_answered(
    undelivered: AsyncTestClient[Litestar],
) -> None:
    client = undelivered
    headers = bearer(await tenant_key(client, scopes=PARTNER))
    campaign = earn_your_wings()
    campaign["badges"][0]["reward"] = {"amount": 500, "unit": "miles"}  # yvr owes a credit
    assert (await client.post("/v1/campaigns", json=campaign, headers=headers)).is_success
    before = await scrape(client)

    yvr = flight("e1", "p1", "YVR", hours_ago(3))
    first = [
        yvr,  # accepted, awards yvr
        flight("e2", "p1", "YYC", hours_ago(2)),  # accepted, awards yyc
        flight("e3", "p2", "XXX", hours_ago(1)),  # accepted, awards nothing
    ]
    second = [
        yvr,  # duplicate: its award is not counted again
        flight("e2", "p1", "YUL", hours_ago(2)),  # rejected: the id with another payload
        flight("e4", "p1", "YUL", datetime.now(UTC) + timedelta(hours=1)),  # rejected: future
    ]
    for events in (first, second):
        sent = await client.post("/v1/events", json={"events": events}, headers=headers)
        assert sent.status_code == 200, sent.text
    bad = await client.post("/v1/events", json={"events": []}, headers=headers)
    assert bad.status_code == 400
    after = await scrape(client)

    assert moved(before, after, "gamify_events_total", status="accepted") == 3
    assert moved(before, after, "gamify_events_total", status="duplicate") == 1
    assert moved(before, after, "gamify_events_total", status="rejected") == 2
    assert moved(before, after, "gamify_awards_total") == 2
    route = {"route": "/v1/events", "method": "POST"}
    assert moved(before, after, "gamify_request_duration_seconds_count", **route, status="2xx") == 2
    assert moved(before, after, "gamify_request_duration_seconds_count", **route, status="4xx") == 1
    assert value(after, "gamify_outbox_depth") == 1  # p1's yvr reward, undelivered


async def test_scrapes_within_a_second_share_one_rendering_and_one_query(
    client: AsyncTestClient[Litestar],
) -> None:
    exporter = client.app.state.container.get(Exporter)
    exporter.max_age = 3600  # as if every scrape below came within the second
    queries = 0
    outbox: ScrapedGauge = exporter.scraped[0]
    count = outbox.read

    async def counted() -> int | float:
        nonlocal queries
        queries += 1
        return await count()

    outbox.read = counted
    headers = bearer(await tenant_key(client))
    first = (await client.get("/metrics")).text
    await client.get("/v1/campaigns", headers=headers)
    answers = await asyncio.gather(*(client.get("/metrics") for _ in range(10)))

    assert {answer.text for answer in answers} == {first}  # the request not counted yet
    assert queries == 1
    exporter.max_age = 0
    moved_on = await scrape(client)
    assert queries == 2
    route = {"route": "/v1/campaigns", "method": "GET", "status": "2xx"}
    assert moved(parse(first), moved_on, "gamify_request_duration_seconds_count", **route) == 1


async def test_latency_is_kept_by_route_template_whatever_the_path(
    client: AsyncTestClient[Litestar],
) -> None:
    every_scrape(client)
    headers = bearer(await tenant_key(client))
    before = await scrape(client)
    for campaign in ("one", "two", "three"):
        missing = await client.get(f"/v1/campaigns/{campaign}", headers=headers)
        assert missing.status_code == 404
    after = await scrape(client)

    route = {"route": "/v1/campaigns/{campaign_id}", "method": "GET", "status": "4xx"}
    assert moved(before, after, "gamify_request_duration_seconds_count", **route) == 3
    assert moved(before, after, "gamify_request_duration_seconds_bucket", **route, le="+Inf") == 3
    assert not [labels for _, labels in after if ("route", "/v1/campaigns/one") in labels]


async def test_every_metric_is_exported_before_anything_counted_it(
    client: AsyncTestClient[Litestar],
) -> None:
    response = await client.get("/metrics")
    families = {family.name for family in text_string_to_metric_families(response.text)}
    assert {
        "gamify_websocket_connections",
        "gamify_websocket_messages",
        "gamify_delivery_attempts",
        "gamify_reconciler_repairs",
        "gamify_redis_degraded",
    } <= families


async def test_redis_degraded_is_1_while_redis_does_not_answer(
    settings: Settings, clean: None, tmp_path: Path
) -> None:
    valkey = EmbeddedValkey(tmp_path / "valkey", durable=False)
    valkey.start()
    try:
        app = create_app(msgspec.structs.replace(settings, redis_url=valkey.url))
        async with AsyncTestClient(app) as client:
            every_scrape(client)
            assert (await client.get("/ready")).status_code == 200
            assert value(await scrape(client), "gamify_redis_degraded") == 0

            valkey.stop()
            assert (await client.get("/ready")).json()["status"] == "degraded"
            assert value(await scrape(client), "gamify_redis_degraded") == 1

            valkey.start()
            assert (await client.get("/ready")).json()["status"] == "ready"
            assert value(await scrape(client), "gamify_redis_degraded") == 0
    finally:
        valkey.stop()


async def test_reconciler_repairs_count_the_entries_and_boards_it_put_back(
    client: AsyncTestClient[Litestar], settings: Settings, servers: Servers
) -> None:
    every_scrape(client)
    headers = bearer(await tenant_key(client, scopes=PARTNER))
    assert (await client.post("/v1/campaigns", json=earn_your_wings(), headers=headers)).is_success
    sent = await client.post(
        "/v1/events", json={"events": [flight("e1", "p1", "YVR", hours_ago(1))]}, headers=headers
    )
    assert sent.status_code == 200, sent.text
    redis = Redis.from_url(servers.redis_url)
    assert settings.database_url is not None
    pool = await db.connect(settings.database_url, 2)
    try:
        await boards_settled(redis, "acme", "earn-your-wings")
        reconciler = Boards(pool, redis, EngineCache()).reconciler  # another instance's
        before = await scrape(client)

        await redis.zrem(keys.board("acme", "earn-your-wings"), "p1")  # drift
        assert await reconciler.reconcile()
        repaired = await scrape(client)
        await redis.delete(keys.ready("acme", "earn-your-wings"))  # a board Redis lost
        assert await reconciler.reconcile()
        after = await scrape(client)
    finally:
        await pool.close()
        await redis.aclose()

    repairs = "gamify_reconciler_repairs_total"
    # The entry put back; then the board rebuilt first, so the replay after it finds all right.
    assert (
        moved(before, repaired, repairs, kind="entry"),
        moved(before, repaired, repairs, kind="board"),
        moved(repaired, after, repairs, kind="board"),
        moved(repaired, after, repairs, kind="entry"),
    ) == (1, 0, 1, 0)


@pytest.mark.slow
def test_a_scrape_of_any_worker_sums_what_every_worker_counted(
    servers: Servers, migrated: str, clean: None, tmp_path: Path
) -> None:
    service = Service(servers, migrated, tmp_path, workers=2)
    try:
        service.wait_ready()
        _metrics_of_two_workers(service, tmp_path / "data" / "metrics")
    finally:
        service.stop()


def _metrics_of_two_workers(service: Service, folder: Path) -> None:
    headers = _partner(service.url)
    posted = 24
    for i in range(posted):
        # A connection each, so that both workers take some.
        events = {"events": [flight(f"e{i}", f"p{i}", "YVR", hours_ago(1))]}
        sent = httpx.post(f"{service.url}/v1/events", json=events, headers=headers, timeout=10)
        assert sent.status_code == 200, service.explain(sent)
    for _ in range(8):  # whichever worker answers, once its answer is no older than the posts
        samples = _once_counted(service, posted)
        assert value(samples, "gamify_events_total", status="accepted") == posted
        assert value(samples, "gamify_awards_total") == posted
    # Each worker counts into files of its own (made when it loads the app): two sets.
    assert len({path.stem.rsplit("_", 1)[-1] for path in folder.glob("counter_*.db")}) == 2


def _once_counted(service: Service, posted: int) -> Samples:
    """A scrape that counts `posted` events, or the last one tried: a worker's answer may be
    a second old."""
    for _ in range(30):
        samples = parse(httpx.get(f"{service.url}/metrics", timeout=10).text)
        if value(samples, "gamify_events_total", status="accepted") >= posted:
            break
        time.sleep(0.1)
    return samples


def _partner(url: str) -> dict[str, str]:
    tenant = httpx.post(
        f"{url}/v1/admin/tenants", json={"id": "acme", "name": "Acme"}, headers=ADMIN
    )
    assert tenant.status_code == 201, tenant.text
    issued = httpx.post(
        f"{url}/v1/admin/tenants/acme/keys", json={"scopes": list(PARTNER)}, headers=ADMIN
    )
    headers = bearer(issued.json()["key"])
    created = httpx.post(f"{url}/v1/campaigns", json=earn_your_wings(), headers=headers)
    assert created.status_code == 201, created.text
    return headers


def test_a_delivery_worker_serves_its_metrics_on_a_port_of_its_own(
    migrated: str, tmp_path: Path
) -> None:
    """`gamify worker` has no API: `--metrics-port` gives its delivery attempts a scrape of
    their own."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAMIFY_")}
    env |= {"GAMIFY_DATABASE_URL": migrated, "GAMIFY_DATA_DIR": str(tmp_path)}
    command = [sys.executable, "-m", "gamify", "worker", "--metrics-port", str(port)]
    worker = subprocess.Popen(command, env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
                break
            except httpx.TransportError:
                assert worker.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        names = {family.name for family in text_string_to_metric_families(scraped.text)}
        assert "gamify_delivery_attempts" in names
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
