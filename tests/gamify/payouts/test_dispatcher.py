"""The dispatcher's listeners and its HTTP: `on_final` listeners hear each credit once, after
the commit that made it delivered or failed (for a 410, a missing endpoint or after 24 hours),
and one that raises breaks nothing; connections are kept alive and reused, TLS is verified, a
refused connection is an attempt like any other."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import socket
import ssl
import subprocess
import threading
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from gamify.app import create_app
from gamify.payouts.delivery import PER_HOST, Dispatcher, FinalCredit, FinalListener
from gamify.platform import db, metrics
from gamify.platform.settings import Settings
from tests.gamify.support import bearer, earn_your_wings, flight, hours_ago, tenant_key

PARTNER = ("events:write", "campaigns:write", "read")
SECRET = "whsec_" + base64.b64encode(b"the dispatcher tests' shared key").decode()
MILES = 10_000_000


class Receiver(ThreadingHTTPServer):
    """A loyalty system on loopback (HTTP/1.1, kept-alive connections; TLS with `tls`): checks
    each signature and answers `status` with `answer` as body, except every `unavailable`-th
    request, which is a 503; counts the credits it accepted by webhook-id, and connections."""

    daemon_threads = True

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        if tls is not None:
            # The handshake happens in each connection's thread, on its first read: done in
            # accept, a client that never finished one would hold the whole server (and its
            # shutdown) up.
            self.socket = tls.wrap_socket(
                self.socket, server_side=True, do_handshake_on_connect=False
            )
        self.scheme = "https" if tls else "http"
        self.status = 200
        self.answer = b""
        self.unavailable = 0  # 0: never
        self.requests = 0
        self.connections = 0
        self.accepted: Counter[str] = Counter()
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server_address[1]}/credits"

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.lock:
            self.connections += 1
        super().process_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that closed the connection before the whole answer was written


class _Handler(BaseHTTPRequestHandler):
    server: Receiver
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        receiver = self.server
        try:
            Webhook(SECRET).verify(body, {k.lower(): v for k, v in self.headers.items()})
        except WebhookVerificationError:
            self._answer(400, b"")
            return
        with receiver.lock:
            receiver.requests += 1
            turn = receiver.requests
        if receiver.unavailable and turn % receiver.unavailable == 0:
            self._answer(503, b"")
            return
        if 200 <= receiver.status < 300:
            with receiver.lock:
                receiver.accepted[json.loads(body)["id"]] += 1
        self._answer(receiver.status, receiver.answer)

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@asynccontextmanager
async def serving(tls: ssl.SSLContext | None = None) -> AsyncIterator[Receiver]:
    server = Receiver(tls)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with serving() as server:
        yield server


@pytest.fixture
def app(settings: Settings, clean: None) -> Litestar:
    # Delivery by the test's own dispatcher, which the test listens to.
    return create_app(msgspec.structs.replace(settings, delivery_in_process=False))


class Heard:
    """A listener: every credit it was told of, in order."""

    def __init__(self) -> None:
        self.credits: list[FinalCredit] = []

    def __call__(self, credit: FinalCredit) -> None:
        self.credits.append(credit)


@pytest.fixture
def heard() -> Heard:
    return Heard()


@asynccontextmanager
async def dispatching(
    settings: Settings, *listeners: FinalListener, timeout: float = 0.5
) -> AsyncIterator[Dispatcher]:
    assert settings.database_url is not None
    pool = await db.connect(settings.database_url, 4)
    running = Dispatcher(pool, max_backoff=0.2, timeout=timeout, idle=0.05)
    for listener in listeners:
        running.on_final(listener)
    running.start()
    try:
        yield running
    finally:
        await running.stop()
        await pool.close()


@pytest.fixture
async def dispatcher(settings: Settings, heard: Heard) -> AsyncIterator[Dispatcher]:
    # The failing listener first: the others are told after it raised.
    async with dispatching(settings, _broken_listener, heard) as running:
        yield running


def _broken_listener(credit: FinalCredit) -> None:
    raise RuntimeError(f"a listener that fails on every credit ({credit.player})")


async def _settled_pool(
    client: AsyncTestClient[Litestar], headers: dict[str, str], url: str, players: int
) -> None:
    """A campaign that ended with `players` holding badges, settled: one credit each."""
    campaign = earn_your_wings(starts_at=datetime.now(UTC) - timedelta(hours=2))
    campaign["grace"] = "PT0S"
    campaign["loyalty"] = {"url": url, "secret": SECRET}
    assert (await client.post("/v1/campaigns", json=campaign, headers=headers)).is_success
    events = [flight(f"f{p}", f"p{p:03}", "YVR", hours_ago(1)) for p in range(players)]
    sent = await client.post("/v1/events", json={"events": events}, headers=headers)
    assert sent.status_code == 200, sent.text
    ended = await client.post("/v1/campaigns/earn-your-wings/end", headers=headers)
    assert ended.status_code == 200, ended.text
    for _ in range(100):  # `end` is now; settling wants it to be in the past
        settled = await client.post("/v1/campaigns/earn-your-wings/settle", headers=headers)
        assert settled.status_code in (200, 409), settled.text
        if settled.status_code == 200 and settled.json()["allocated"] == MILES:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the campaign did not settle")


async def _until(db: asyncpg.Connection, query: str, wanted: Any) -> None:
    for _ in range(300):
        if await db.fetchval(query) == wanted:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{query} never gave {wanted!r}: {await db.fetchval(query)!r}")


DELIVERED = "SELECT count(*) FROM payouts WHERE status = 'delivered'"


async def _quiet(dispatcher: Dispatcher) -> None:
    """Room for a second word about a credit, were one to come."""
    await asyncio.sleep(10 * dispatcher.idle)


async def test_a_listener_hears_each_delivered_credit_once_after_its_commit(
    client: AsyncTestClient[Litestar],
    receiver: Receiver,
    dispatcher: Dispatcher,
    heard: Heard,
    db: asyncpg.Connection,
) -> None:
    receiver.unavailable = 3  # a third of the requests fail: attempts that are not final
    delivered, retried = _attempts_counted("delivered", "200"), _attempts_counted("retry", "503")
    headers = bearer(await tenant_key(client, scopes=PARTNER))
    await _settled_pool(client, headers, receiver.url, players=120)
    await _until(db, DELIVERED, 120)
    await _quiet(dispatcher)
    assert _attempts_counted("delivered", "200") == delivered + 120
    failures = await db.fetchval("SELECT count(*) FROM payout_attempts WHERE status_code = 503")
    assert _attempts_counted("retry", "503") == retried + failures

    assert Counter(c.player for c in heard.credits) == {f"p{p:03}": 1 for p in range(120)}
    stored = {
        r["player_id"]: r["amount"]
        for r in await db.fetch("SELECT player_id, amount FROM payouts WHERE status = 'delivered'")
    }
    assert {c.player: c.amount for c in heard.credits} == stored
    assert {(c.tenant, c.campaign, c.unit, c.status) for c in heard.credits} == {
        ("acme", "earn-your-wings", "miles", "delivered")
    }
    assert await db.fetchval("SELECT max(attempts) FROM payouts") > 1  # some were retried
    assert sum(receiver.accepted.values()) == 120  # the failing listener held nothing up


async def test_a_lone_credit_answered_410_is_failed_and_heard_once(
    client: AsyncTestClient[Litestar],
    receiver: Receiver,
    dispatcher: Dispatcher,
    heard: Heard,
    db: asyncpg.Connection,
) -> None:
    # One credit alone, so that no other credit's 410 fails it.
    receiver.status = 410
    headers = bearer(await tenant_key(client, scopes=PARTNER))
    campaign = earn_your_wings()
    campaign["badges"][0]["reward"] = {"amount": 500, "unit": "miles"}  # yvr
    campaign["loyalty"] = {"url": receiver.url, "secret": SECRET}
    assert (await client.post("/v1/campaigns", json=campaign, headers=headers)).is_success
    event = flight("e1", "p1", "YVR", hours_ago(1))
    assert (await client.post("/v1/events", json={"events": [event]}, headers=headers)).is_success
    await _until(db, "SELECT status FROM payouts", "failed")
    await _quiet(dispatcher)

    assert heard.credits == [FinalCredit("acme", "earn-your-wings", "p1", 500, "miles", "failed")]
    row = await db.fetchrow("SELECT attempts, last_error FROM payouts")
    assert row is not None and row["attempts"] == 1 and "410" in row["last_error"]
    assert await db.fetchval("SELECT count(*) FROM payout_attempts") == 1


async def test_credits_failed_after_24_hours_or_without_an_endpoint_are_heard_once(
    client: AsyncTestClient[Litestar],
    receiver: Receiver,
    dispatcher: Dispatcher,
    heard: Heard,
    db: asyncpg.Connection,
) -> None:
    receiver.status = 503
    headers = bearer(await tenant_key(client, scopes=PARTNER))
    await _settled_pool(client, headers, receiver.url, players=30)
    # Owed for a day: the next failure is their last.
    await db.execute("UPDATE payouts SET created_at = now() - interval '24 hours'")
    await _until(db, "SELECT count(*) FROM payouts WHERE status = 'failed'", 30)
    # A campaign that lost its endpoint: its credits fail at once, without a request.
    patched = await client.patch(
        "/v1/campaigns/earn-your-wings", json={"loyalty": None}, headers=headers
    )
    assert patched.status_code == 200, patched.text
    retried = await client.post("/v1/campaigns/earn-your-wings/payouts/retry", headers=headers)
    assert retried.json() == {"retried": 30}
    await _until(db, "SELECT count(*) FROM payouts WHERE last_error LIKE '%no loyalty%'", 30)
    await _quiet(dispatcher)

    assert Counter((c.player, c.status) for c in heard.credits) == {
        (f"p{p:03}", "failed"): 2
        for p in range(30)  # once per round
    }
    assert not receiver.accepted


# The HTTP tests wait longer for an answer: the receiver's TLS handshakes and long answers
# take a while on a busy machine, and a timeout would count as one more attempt.
PATIENT = 10.0


async def test_connections_are_kept_alive_and_long_answers_cut_short(
    client: AsyncTestClient[Litestar],
    settings: Settings,
    receiver: Receiver,
    db: asyncpg.Connection,
) -> None:
    receiver.answer = b"ok " * 30_000  # more than the dispatcher reads
    headers = bearer(await tenant_key(client, scopes=PARTNER))
    await _settled_pool(client, headers, receiver.url, players=300)
    async with dispatching(settings, timeout=PATIENT):
        await _until(db, DELIVERED, 300)

    assert sum(receiver.accepted.values()) == 300
    # An answer cut short closes its connection; one read whole leaves it to the next request.
    assert receiver.connections == receiver.requests
    receiver.answer, before = b"fine", receiver.connections
    await db.execute("UPDATE payouts SET status = 'pending', next_attempt_at = now()")
    async with dispatching(settings, timeout=PATIENT):
        await _until(db, DELIVERED, 300)
    assert receiver.connections - before <= PER_HOST
    excerpts = await db.fetch("SELECT DISTINCT excerpt FROM payout_attempts")
    assert {r["excerpt"] for r in excerpts} == {("ok " * 100)[:200], "fine"}
    assert await db.fetchval("SELECT count(*) FROM payout_attempts") == 600


async def test_a_refused_connection_is_an_attempt_to_make_again(
    client: AsyncTestClient[Litestar],
    settings: Settings,
    receiver: Receiver,
    db: asyncpg.Connection,
) -> None:
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{closed.getsockname()[1]}/credits"
    headers = bearer(await tenant_key(client, scopes=PARTNER))
    await _settled_pool(client, headers, nowhere, players=5)
    async with dispatching(settings, timeout=PATIENT):
        await _until(db, "SELECT min(attempts) >= 2 FROM payouts", True)
        errors = await db.fetch("SELECT DISTINCT last_error, status FROM payouts")
        assert [(r["last_error"].split(":")[0], r["status"]) for r in errors] == [
            ("ConnectError", "pending")
        ]
        fixed = {"loyalty": {"url": receiver.url, "secret": SECRET}}
        patched = await client.patch("/v1/campaigns/earn-your-wings", json=fixed, headers=headers)
        assert patched.status_code == 200, patched.text
        await _until(db, DELIVERED, 5)


@pytest.fixture
def trusted_tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """A server context with a fresh self-signed certificate for 127.0.0.1, which the
    dispatchers made from now on trust (SSL_CERT_FILE, as httpx reads it)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    request = ["openssl", "req", "-x509", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
    request += ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
    request += ["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)]
    subprocess.run(request, check=True, capture_output=True)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def test_credits_go_out_over_tls_to_a_trusted_endpoint_only(
    client: AsyncTestClient[Litestar],
    settings: Settings,
    trusted_tls: ssl.SSLContext,
    db: asyncpg.Connection,
) -> None:
    headers = bearer(await tenant_key(client, scopes=PARTNER))
    async with serving(trusted_tls) as receiver:
        await _settled_pool(client, headers, receiver.url, players=40)
        async with dispatching(settings, timeout=PATIENT):
            await _until(db, DELIVERED, 40)
        assert sum(receiver.accepted.values()) == 40

        # A dispatcher that does not trust the certificate sends nothing.
        await db.execute("UPDATE payouts SET status = 'pending', next_attempt_at = now()")
        receiver.accepted.clear()
        with pytest.MonkeyPatch.context() as untrusting:
            untrusting.delenv("SSL_CERT_FILE")
            async with dispatching(settings, timeout=PATIENT):
                await _until(db, "SELECT min(attempts) >= 2 FROM payouts", True)
        assert not receiver.accepted
        errors = [r["last_error"] for r in await db.fetch("SELECT last_error FROM payouts")]
        assert all("CERTIFICATE_VERIFY_FAILED" in error for error in errors), errors


def _attempts_counted(outcome: str, status: str) -> float:
    """What /metrics counts of these attempts (this process counts in memory)."""
    value: float = metrics.DELIVERY_ATTEMPTS.labels(outcome, status)._value.get()
    return value
