"""Credits reach the loyalty system once each, signed, through failures, hangs and a 410."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import asyncpg
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from gamify.app import create_app
from gamify.payouts.delivery import Dispatcher
from gamify.platform import db
from gamify.platform.settings import Settings
from tests.gamify.support import bearer, earn_your_wings, hours_ago, tenant_key

PARTNER = ("events:write", "campaigns:write", "read")
SECRET = "whsec_" + base64.b64encode(b"a loyalty system's shared key!!!").decode()
MILES = 10_000_000


class Receiver(ThreadingHTTPServer):
    """A loyalty system on loopback: verifies each signature, answers as it is told (some 503s,
    some hangs, or 410), and keeps the credits it accepted by webhook-id."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.accepted: dict[str, dict[str, Any]] = {}
        self.unavailable = 0.0  # share of requests answered 503
        self.hanging = 0.0  # share of requests left unanswered past the client's timeout
        self.gone = False
        self.lock = threading.Lock()
        self.rng = random.Random(7)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/credits"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        receiver = self.server
        try:
            Webhook(SECRET).verify(body, {k.lower(): v for k, v in self.headers.items()})
        except WebhookVerificationError:
            self._answer(400)
            return
        with receiver.lock:
            roll = receiver.rng.random()
        if receiver.gone:
            self._answer(410)
        elif roll < receiver.hanging:
            time.sleep(1.5)  # past the dispatcher's timeout
            self._answer(200)
        elif roll < receiver.hanging + receiver.unavailable:
            self._answer(503, {"Retry-After": "0"})
        else:
            credit = json.loads(body)
            with receiver.lock:
                receiver.accepted[self.headers["webhook-id"]] = credit
            self._answer(200)

    def _answer(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def app(settings: Settings, clean: None) -> Litestar:
    # Delivery by the test's own dispatcher, with a short timeout and backoff.
    quiet = msgspec.structs.replace(settings, delivery_in_process=False)
    return create_app(quiet)


@pytest.fixture
async def dispatcher(settings: Settings) -> AsyncIterator[Dispatcher]:
    assert settings.database_url is not None
    pool = await db.connect(settings.database_url, 4)
    running = Dispatcher(pool, max_backoff=1.0, timeout=0.5, idle=0.05)
    running.start()
    yield running
    await running.stop()
    await pool.close()


async def _settled_campaign(
    client: AsyncTestClient[Litestar], headers: dict[str, str], url: str, players: int
) -> None:
    campaign = earn_your_wings(starts_at=datetime.now(UTC) - timedelta(hours=2))
    campaign["ends_at"] = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    campaign["grace"] = "PT0S"
    campaign["loyalty"] = {"url": url, "secret": SECRET}
    assert (await client.post("/v1/campaigns", json=campaign, headers=headers)).is_success
    rng = random.Random(3)
    events = [
        {
            "id": f"f{p}-{i}",
            "player": f"p{p:04}",
            "type": "flight.completed",
            "occurred_at": hours_ago(1).isoformat(),
            "attributes": {"destination": rng.choice(["YVR", "YYC", "YUL", "YOW"])},
        }
        for p in range(players)
        for i in range(rng.randint(1, 3))
    ]
    for start in range(0, len(events), 500):
        batch = {"events": events[start : start + 500]}
        assert (await client.post("/v1/events", json=batch, headers=headers)).is_success
    for _ in range(300):
        body = (await client.get("/v1/campaigns/earn-your-wings", headers=headers)).json()
        if body["status"] == "settled":
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the campaign did not settle")


async def _payouts(client: AsyncTestClient[Litestar], headers: dict[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = (
        await client.get("/v1/campaigns/earn-your-wings/payouts", headers=headers)
    ).json()
    return body


async def _until_delivered(client: AsyncTestClient[Litestar], headers: dict[str, str]) -> None:
    for _ in range(600):
        if (await _payouts(client, headers))["delivered"] == MILES:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not everything was delivered: {await _payouts(client, headers)}")


async def test_every_credit_arrives_once_through_503s_and_hangs(
    client: AsyncTestClient[Litestar],
    receiver: Receiver,
    dispatcher: Dispatcher,
    db: asyncpg.Connection,
) -> None:
    receiver.unavailable, receiver.hanging = 0.3, 0.02
    headers = bearer(await tenant_key(client, scopes=PARTNER))
    await _settled_campaign(client, headers, receiver.url, players=1500)
    await _until_delivered(client, headers)

    credits = list(receiver.accepted.values())
    assert sum(c["amount"] for c in credits) == MILES
    by_player = [c["player"] for c in credits]
    assert len(by_player) == len(set(by_player)), "a player credited under two ids"
    assert {c["type"] for c in credits} == {"credit"} and {c["unit"] for c in credits} == {"miles"}
    stored = await db.fetch("SELECT id, player_id, amount, attempts FROM payouts")
    assert {r["id"]: r["amount"] for r in stored} == {
        k: c["amount"] for k, c in receiver.accepted.items()
    }
    assert max(r["attempts"] for r in stored) > 1  # some were retried
    attempts = await db.fetchval("SELECT count(*) FROM payout_attempts")
    assert attempts == sum(r["attempts"] for r in stored)


async def test_a_410_holds_the_credits_until_the_endpoint_is_fixed_and_retried(
    client: AsyncTestClient[Litestar], receiver: Receiver, dispatcher: Dispatcher
) -> None:
    receiver.gone = True
    headers = bearer(await tenant_key(client, scopes=PARTNER))
    await _settled_campaign(client, headers, receiver.url, players=20)
    for _ in range(200):
        payouts = await _payouts(client, headers)
        if payouts["failed"] == MILES:
            break
        await asyncio.sleep(0.1)
    assert payouts["failed"] == MILES and payouts["delivered"] == 0
    assert all("410" in item["last_error"] for item in payouts["items"])

    receiver.gone = False
    fixed = {"loyalty": {"url": receiver.url, "secret": SECRET}}
    patched = await client.patch("/v1/campaigns/earn-your-wings", json=fixed, headers=headers)
    assert patched.status_code == 200, patched.text
    retried = await client.post("/v1/campaigns/earn-your-wings/payouts/retry", headers=headers)
    assert retried.status_code == 200, retried.text
    assert retried.json()["retried"] == len(payouts["items"])
    await _until_delivered(client, headers)
    assert sum(c["amount"] for c in receiver.accepted.values()) == MILES


async def test_a_badge_reward_is_credited_once_at_award_time_even_when_replayed(
    client: AsyncTestClient[Litestar],
    receiver: Receiver,
    dispatcher: Dispatcher,
    db: asyncpg.Connection,
) -> None:
    headers = bearer(await tenant_key(client, scopes=PARTNER))
    campaign = earn_your_wings()
    campaign["badges"][0]["reward"] = {"amount": 500, "unit": "miles"}  # yvr
    campaign["loyalty"] = {"url": receiver.url, "secret": SECRET}
    assert (await client.post("/v1/campaigns", json=campaign, headers=headers)).is_success
    event = {
        "id": "e1",
        "player": "p1",
        "type": "flight.completed",
        "occurred_at": hours_ago(1).isoformat(),
        "attributes": {"destination": "YVR"},
    }
    for _ in range(2):  # the event, then its replay
        sent = await client.post("/v1/events", json={"events": [event]}, headers=headers)
        assert sent.status_code == 200, sent.text
    for _ in range(100):
        if receiver.accepted:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)  # room for a second credit, were one owed
    assert [
        (c["player"], c["amount"], c["unit"], c["reason"]) for c in receiver.accepted.values()
    ] == [("p1", 500, "miles", "badge:yvr")]
    assert await db.fetchval("SELECT status FROM payouts WHERE reason = 'badge:yvr'") == "delivered"
