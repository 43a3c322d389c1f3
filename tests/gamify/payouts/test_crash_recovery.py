"""`gamify serve` killed outright in the middle of a settlement, then in the middle of delivery,
and started again on the same Postgres and Redis: it takes up where the dead one stopped, no
player is credited under two ids, and every unit of the pool arrives."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import random
import signal
import threading
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.gamify.support import ADMIN, Servers, Service, earn_your_wings, flight, hours_ago

pytestmark = pytest.mark.slow

SECRET = "whsec_" + base64.b64encode(b"the crash tests' shared secret!!").decode()
MILES = 10_000_000
PLAYERS = 600
CAMPAIGN = "/v1/campaigns/earn-your-wings"


class Receiver(ThreadingHTTPServer):
    """A loyalty system on loopback: checks each signature and keeps every credit it received
    (repeats too). It answers the first `answer_first` at once; later ones wait until `gate` is
    set, so that a test can kill the sender while requests are in flight."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received: list[tuple[str, dict[str, Any]]] = []  # (webhook-id, credit)
        self.held: set[str] = set()  # webhook-ids waiting for the gate
        self.answer_first = math.inf
        self.gate = threading.Event()
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/credits"

    def accepted(self) -> dict[str, dict[str, Any]]:
        """The credits as a loyalty system keeps them: one per webhook-id."""
        with self.lock:
            return dict(self.received)


class _Handler(BaseHTTPRequestHandler):
    server: Receiver
    protocol_version = "HTTP/1.1"  # kept-alive connections, as the dispatcher uses them

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        receiver = self.server
        try:
            Webhook(SECRET).verify(body, {k.lower(): v for k, v in self.headers.items()})
        except WebhookVerificationError:
            self._answer(400)
            return
        webhook_id = self.headers["webhook-id"]
        with receiver.lock:
            receiver.received.append((webhook_id, json.loads(body)))
            hold = len(receiver.received) > receiver.answer_first
            if hold:
                receiver.held.add(webhook_id)
        if hold:
            receiver.gate.wait()
        self._answer(200)

    def _answer(self, status: int) -> None:
        try:
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()
        except OSError:
            self.close_connection = True  # the sender died meanwhile

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.gate.set()
    server.shutdown()
    server.server_close()
    thread.join()


class Instances:
    """`gamify serve` instances started one after the other on the session's servers; every one
    still running is stopped at the end."""

    def __init__(self, servers: Servers, database_url: str, folder: Path) -> None:
        self.servers, self.database_url, self.folder = servers, database_url, folder
        self.started: list[Service] = []

    async def start(self) -> Service:
        folder = self.folder / f"instance-{len(self.started)}"
        folder.mkdir()
        service = Service(self.servers, self.database_url, folder)
        self.started.append(service)
        await asyncio.to_thread(service.wait_ready)
        return service

    def stop_all(self) -> None:
        for service in self.started:
            service.stop()


@pytest.fixture
def instances(servers: Servers, migrated: str, clean: None, tmp_path: Path) -> Iterator[Instances]:
    started = Instances(servers, migrated, tmp_path)
    yield started
    started.stop_all()


def crash(service: Service) -> None:
    """SIGKILL for `gamify serve` and its workers. Killed alone, it would have the kernel send
    its workers a SIGTERM, and they would shut down in order: so it is frozen first (it cannot
    start a worker in place of a dead one), its workers are killed, then it is."""
    parent = psutil.Process(service.process.pid)
    os.kill(parent.pid, signal.SIGSTOP)
    workers = parent.children(recursive=True)
    for worker in workers:
        worker.kill()
    psutil.wait_procs(workers, timeout=10)
    service.kill()


async def _partner(url: str) -> dict[str, str]:
    async with httpx.AsyncClient(base_url=url, headers=ADMIN) as admin:
        created = await admin.post("/v1/admin/tenants", json={"id": "acme", "name": "Acme"})
        assert created.status_code == 201, created.text
        scopes = ["events:write", "campaigns:write", "read"]
        issued = await admin.post("/v1/admin/tenants/acme/keys", json={"scopes": scopes})
        assert issued.status_code == 201, issued.text
    return {"Authorization": f"Bearer {issued.json()['key']}"}


async def _ended_campaign(api: httpx.AsyncClient, url: str) -> None:
    """A live campaign, flights of PLAYERS players with one to three badges each, then its end:
    the clock settles it at its next tick (no grace)."""
    campaign = earn_your_wings(starts_at=datetime.now(UTC) - timedelta(hours=2))
    campaign["grace"] = "PT0S"
    campaign["loyalty"] = {"url": url, "secret": SECRET}
    created = await api.post("/v1/campaigns", json=campaign)
    assert created.status_code == 201, created.text
    rng = random.Random(12)
    flights = [
        flight(f"f{p}-{i}", f"p{p:04}", code, hours_ago(1))
        for p in range(PLAYERS)
        for i, code in enumerate(rng.sample(["YVR", "YYC", "YUL", "YOW"], rng.randint(1, 3)))
    ]
    for start in range(0, len(flights), 500):
        sent = await api.post("/v1/events", json={"events": flights[start : start + 500]})
        assert sent.status_code == 200, sent.text


async def _end(api: httpx.AsyncClient) -> None:
    ended = await api.post(f"{CAMPAIGN}/end")
    assert ended.status_code == 200, ended.text


async def _until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(600):
        if await condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


async def _all_delivered(api: httpx.AsyncClient) -> dict[str, Any]:
    payouts: dict[str, Any] = {}

    async def delivered() -> bool:
        nonlocal payouts
        payouts = (await api.get(f"{CAMPAIGN}/payouts")).json()
        return bool(payouts.get("delivered") == MILES)

    await _until(delivered, "the whole pool delivered")
    return payouts


async def _each_credit_once(receiver: Receiver, db: asyncpg.Connection) -> None:
    """One webhook-id per player, the same amount whenever it came, and the pool in full."""
    ids_by_player: defaultdict[str, set[str]] = defaultdict(set)
    for webhook_id, credit in receiver.received:
        assert credit["id"] == webhook_id
        ids_by_player[credit["player"]].add(webhook_id)
    assert all(len(ids) == 1 for ids in ids_by_player.values()), "a player under two ids"
    accepted = receiver.accepted()
    for webhook_id, credit in receiver.received:
        assert credit == accepted[webhook_id]
    assert sum(c["amount"] for c in accepted.values()) == MILES
    stored = await db.fetch("SELECT id, player_id, amount, status FROM payouts")
    assert {r["id"]: (r["player_id"], r["amount"]) for r in stored} == {
        k: (c["player"], c["amount"]) for k, c in accepted.items()
    }
    assert {r["status"] for r in stored} == {"delivered"}


# The settlement's transaction writes every payouts row in one COPY, then marks the campaign
# settled. This trigger holds it between the two, while the test holds the advisory lock.
HOLD = 4242
HOLD_SETTLEMENT = f"""
CREATE FUNCTION crash_test_hold() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared({HOLD});
    RETURN NULL;
END $$;
CREATE TRIGGER crash_test_hold AFTER INSERT ON payouts
FOR EACH STATEMENT EXECUTE FUNCTION crash_test_hold();
"""
RELEASE_SETTLEMENT = """
DROP TRIGGER IF EXISTS crash_test_hold ON payouts;
DROP FUNCTION IF EXISTS crash_test_hold();
"""
HELD = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event = 'advisory'
  AND query LIKE 'COPY%payouts%'
"""
CAMPAIGN_ROW = """
SELECT settling_since IS NOT NULL AS settling, settled_at IS NOT NULL AS settled, pool_allocated
FROM campaigns WHERE id = 'earn-your-wings'
"""


async def test_a_crash_in_the_middle_of_a_settlement_leaves_nothing_half_written(
    instances: Instances, receiver: Receiver, db: asyncpg.Connection
) -> None:
    first = await instances.start()
    headers = await _partner(first.url)
    async with httpx.AsyncClient(base_url=first.url, headers=headers, timeout=10) as api:
        await _ended_campaign(api, receiver.url)
        # Held after its rows are written: events go first, since their statement writes to
        # payouts too (badge rewards).
        await db.execute(HOLD_SETTLEMENT)
        await db.execute("SELECT pg_advisory_lock($1)", HOLD)
        try:
            await _end(api)
            await _until(lambda: _is(db, HELD, 1), "the settlement held after its COPY")
            status = (await api.get(CAMPAIGN)).json()["status"]
            assert status == "settling"
            crash(first)
            # The dead instance's transaction is still open, its rows invisible.
            assert await db.fetchval("SELECT count(*) FROM payouts") == 0
        finally:
            await db.execute("SELECT pg_advisory_unlock($1)", HOLD)
            # Waits for the orphaned transaction to end (it holds a lock on payouts).
            await db.execute("SET lock_timeout = '20s'")
            await db.execute(RELEASE_SETTLEMENT)
    row = await db.fetchrow(CAMPAIGN_ROW)
    assert row is not None and (row["settling"], row["settled"], row["pool_allocated"]) == (
        True,
        False,
        None,
    )
    assert await db.fetchval("SELECT count(*) FROM payouts") == 0  # rolled back whole
    assert not receiver.received

    second = await instances.start()
    async with httpx.AsyncClient(base_url=second.url, headers=headers, timeout=10) as api:
        payouts = await _all_delivered(api)
        assert (payouts["amount"], payouts["allocated"], payouts["eligible"]) == (
            MILES,
            MILES,
            PLAYERS,
        )
    await _each_credit_once(receiver, db)
    assert len(receiver.received) == PLAYERS  # nothing was sent before the crash


LEASED = """
SELECT count(*) FILTER (WHERE status = 'delivered') AS delivered,
       count(*) FILTER (WHERE status = 'pending' AND next_attempt_at > now()) AS leased,
       count(*) FILTER (WHERE status = 'pending' AND next_attempt_at <= now()) AS due,
       count(*) FILTER (WHERE status = 'failed') AS failed
FROM payouts
"""


async def test_a_crash_in_the_middle_of_delivery_resends_under_the_same_ids_only(
    instances: Instances, receiver: Receiver, db: asyncpg.Connection
) -> None:
    receiver.answer_first = PLAYERS // 4
    first = await instances.start()
    headers = await _partner(first.url)
    async with httpx.AsyncClient(base_url=first.url, headers=headers, timeout=10) as api:
        await _ended_campaign(api, receiver.url)
        await _end(api)
        await _until(lambda: _held(receiver), "requests held by the receiver")
        delivered = "SELECT count(*) > 0 FROM payouts WHERE status = 'delivered'"
        await _until(lambda: _is(db, delivered, True), "credits recorded as delivered")
    crash(first)
    in_flight = set(receiver.held)
    receiver.answer_first = math.inf
    receiver.gate.set()  # their answers go nowhere: the sender is dead

    state = await db.fetchrow(LEASED)
    assert state is not None
    assert state["delivered"] > 0 and state["leased"] >= len(in_flight) > 0
    assert state["delivered"] + state["leased"] + state["due"] == PLAYERS
    assert state["failed"] == 0
    # What it had claimed waits for its lease to run out (a minute): as if it had.
    await db.execute("UPDATE payouts SET next_attempt_at = now() WHERE status = 'pending'")

    second = await instances.start()
    async with httpx.AsyncClient(base_url=second.url, headers=headers, timeout=10) as api:
        payouts = await _all_delivered(api)
        assert payouts["failed"] == 0
    await _each_credit_once(receiver, db)
    # The credits in flight at the crash went out again, under the same ids.
    times = Counter(webhook_id for webhook_id, _ in receiver.received)
    assert all(times[webhook_id] >= 2 for webhook_id in in_flight)
    assert len(receiver.accepted()) == PLAYERS


async def _is(db: asyncpg.Connection, query: str, wanted: Any) -> bool:
    return bool(await db.fetchval(query) == wanted)


async def _held(receiver: Receiver) -> bool:
    with receiver.lock:
        return bool(receiver.held)
