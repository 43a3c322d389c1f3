"""The storage floor of the award endpoint: what Postgres alone takes per second of the rows a
500-event batch must write (issue: write cost).

Each of 8 connections loops for the same seconds as the service's batched phase: in one
transaction, 500 new events (random players out of 10,000, the wrk script's shape) with their
idempotency key, inserted as one JSON array, then one progress row per distinct player of the
batch (a ~200-byte state and a score), upserted as one JSON array, as gamify sends them
(gamify/events/store.py). No engine, no HTTP: the batched phase's events/s divided by this
rate says how much of the storage's speed the service keeps.

The rows go into the real tables of the bench tenant, under player ids `floor-…` that no
other phase uses, in the bench campaign (their scores join its board at the reconciler's next
pass, as any player's would). Used by bench/award.py; not a test.
"""

from __future__ import annotations

import asyncio
import base64
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from bench.engine import AIRPORTS

PLAYERS = 10_000
STATE_BYTES = 200

# The events as gamify's INSERT writes them (without the guard and the players it adds): the
# batch as one JSON array, in id order, a replayed id skipped.
EVENTS = """
INSERT INTO events (tenant_id, id, player_id, type, occurred_at, attributes, payload_hash)
SELECT $1, e.id, e.player, e.type, e.occurred_at, e.attributes, decode(e.hash, 'base64')
FROM json_to_recordset($2::text::json)
     AS e (id text, player text, type text, occurred_at timestamptz, attributes jsonb, hash text)
ORDER BY e.id
ON CONFLICT (tenant_id, id) DO NOTHING
"""
# The progress rows as gamify's WRITE upserts them, in player order so that the 8 connections
# queue on a shared player instead of deadlocking.
PROGRESS = """
INSERT INTO progress AS p (tenant_id, campaign_id, player_id, state, score, reached_at, version)
SELECT $1, $2, s.player, decode(s.state, 'base64'), s.score, s.reached_at, 1
FROM json_to_recordset($3::text::json)
     AS s (player text, state text, score bigint, reached_at timestamptz)
ORDER BY s.player
ON CONFLICT (tenant_id, campaign_id, player_id) DO UPDATE
SET state = EXCLUDED.state, score = EXCLUDED.score, reached_at = EXCLUDED.reached_at,
    version = p.version + 1, updated_at = now()
"""


@dataclass(frozen=True)
class Floor:
    """What the floor run measured."""

    events: int  # committed
    seconds: float
    client_cpu: float  # seconds of this process's CPU: the share of the machine it took
    retries: int  # transactions retried after a deadlock (expected: none)

    @property
    def rate(self) -> float:
        return self.events / self.seconds


# One event and one progress row as JSON text, formatted as the wrk script formats its events:
# cheaper than encoding dicts, so that the client takes little of the machine from Postgres.
EVENT = (
    '{"id":"%s%d","player":"floor-%d","type":"flight.completed","occurred_at":"%s",'
    '"attributes":{"destination":"%s","miles":%d},"hash":"%s"}'
)
PROGRESS_ROW = '{"player":"floor-%d","state":"%s","score":%d,"reached_at":"%s"}'


class Batches:
    """The JSON arrays of one connection's batches."""

    def __init__(self, run: str, connection: int, size: int) -> None:
        self.prefix = f"{run}-f{connection}-"
        self.size = size
        self.counter = 0
        self.rng = random.Random(f"{run}-{connection}")
        # A few random values reused: random bytes do not compress, as an engine state hardly
        # does, and drawing fresh ones per row would cost the client more than the rows.
        self.states = [_base64(self.rng.randbytes(STATE_BYTES)) for _ in range(64)]
        self.hashes = [_base64(self.rng.randbytes(32)) for _ in range(64)]  # as SHA-256

    def next(self) -> tuple[str, str]:
        """(events, progress) of a new batch, each one JSON array."""
        now = datetime.now(UTC).isoformat()
        draw = self.rng.random
        players = [1 + int(draw() * PLAYERS) for _ in range(self.size)]
        events: list[str] = []
        for player in players:
            self.counter += 1
            destination = AIRPORTS[int(draw() * len(AIRPORTS))]
            miles = 200 + int(draw() * 8800)
            hashed = self.hashes[self.counter % len(self.hashes)]
            events.append(
                EVENT % (self.prefix, self.counter, player, now, destination, miles, hashed)
            )
        progress = [
            PROGRESS_ROW % (player, self.states[player % len(self.states)], 1 + player % 500, now)
            for player in sorted(set(players))
        ]
        return f"[{','.join(events)}]", f"[{','.join(progress)}]"


def _base64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def _loop(
    conn: asyncpg.Connection, tenant: str, campaign: str, batches: Batches, deadline: float
) -> tuple[int, int]:
    """Batches committed and deadlocks retried by one connection until `deadline`."""
    committed = retries = 0
    while time.monotonic() < deadline:
        events, progress = batches.next()
        while True:
            try:
                async with conn.transaction():
                    await conn.execute(EVENTS, tenant, events)
                    await conn.execute(PROGRESS, tenant, campaign, progress)
                break
            except asyncpg.DeadlockDetectedError:
                retries += 1
        committed += 1
    return committed, retries


async def _measure(
    url: str, tenant: str, campaign: str, seconds: float, connections: int, size: int
) -> Floor:
    run = f"floor{int(time.time())}"
    conns = await asyncio.gather(*(asyncpg.connect(url) for _ in range(connections)))
    sources = [Batches(run, n, size) for n in range(connections)]
    try:
        # The clock starts once every connection is open, as wrk's does.
        began, cpu = time.monotonic(), time.process_time()
        counts = await asyncio.gather(
            *(
                _loop(conn, tenant, campaign, batches, began + seconds)
                for conn, batches in zip(conns, sources, strict=True)
            )
        )
        elapsed, cpu = time.monotonic() - began, time.process_time() - cpu
    finally:
        await asyncio.gather(*(conn.close() for conn in conns))
    return Floor(
        events=sum(c for c, _ in counts) * size,
        seconds=elapsed,
        client_cpu=cpu,
        retries=sum(r for _, r in counts),
    )


def measure(
    url: str,
    tenant: str,
    campaign: str,
    seconds: float,
    connections: int = 8,
    size: int = 500,
) -> Floor:
    """Write `size`-event batches at `connections` connections for `seconds` seconds."""
    return asyncio.run(_measure(url, tenant, campaign, seconds, connections, size))
