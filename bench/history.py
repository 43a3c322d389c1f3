"""The write cost of one event against the history a player already has (issue: write cost).

    .venv/bin/python -m bench.history [--repeat 200] [--workers 1] [--engine-only | --service-only]

For a player whose state retains N events (a scoring rule retains every event), in one run:

1. the engine's cost of one new in-order event as the service pays it: decode the stored state,
   apply, encode it again; printed per N with the state's size, in CPU time of this process;
2. the service's: `gamify serve` on embedded servers in a fresh temporary data folder, the
   bench tenant and campaign of bench/award.py; per N a fresh player is given N events of
   history (500-event batches), then `--repeat` single-event POSTs of that player, each later
   than everything before, are sent one after the other over one keep-alive connection and
   timed; printed per N: mean and p50 latency, and the WAL Postgres wrote per event (the
   whole server's, read before and after the POSTs).

The last lines give the ratios: cost at 9,000 retained events ÷ cost at 10 (goal: at most 2,
for the engine and for the service) and the most WAL per event over all N (goal: at most
1 KB). Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from badges import Event, apply, compile_rules, storage
from badges.state import Key
from bench.award import ADMIN_TOKEN, database_url, setup
from bench.engine import AIRPORTS, START, campaign
from bench.serve import start, stop
from gamify.platform.embedded.ports import free_port

SIZES = (10, 100, 1_000, 5_000, 9_000, 10_000)
HISTORY_BATCH = 500
WARM_UP = 50  # untimed POSTs first, so that N=10 (timed first) does not pay a cold start
# The bench campaign (bench/award.py) started a day ago: history and timed events must fit.
CAMPAIGN_AGE = timedelta(days=1)


# -- 1. the engine alone ------------------------------------------------------------------
# Kept apart from the service part: this is the code that follows the state's API
# (PlayerState.from_bytes / to_bytes).


class Shelf:
    """A player's stored state as the service keeps it: a head, segments by newest fact, the
    checkpoint's body and its ledger's chunks."""

    def __init__(self, stored: storage.Stored) -> None:
        self.head = b""
        self.segments: dict[Key, tuple[int, bytes]] = {}
        self.body: bytes | None = None
        self.ledger: dict[int, bytes] = {}
        self.keep(stored)

    def keep(self, stored: storage.Stored) -> None:
        self.head = stored.head
        for segment in stored.written:
            self.segments[segment.newest] = (segment.count, segment.data)
        for key in stored.deleted:
            del self.segments[key]
        if stored.body is not None:
            self.body = stored.body
        if stored.ledger_cut is not None:
            self.ledger = {n: c for n, c in self.ledger.items() if n < stored.ledger_cut}
        self.ledger |= stored.ledger

    def chunks(self, wanted: storage.Wanted) -> list[bytes]:
        return [self.ledger[n] for n in sorted(self.ledger)] if wanted.with_ledger else []

    def fetch(self, wanted: storage.Wanted) -> list[bytes]:
        """Oldest first, as many as hold the facts wanted (all when None)."""
        out: list[bytes] = []
        held = 0
        for key in sorted(self.segments):
            if wanted.facts is not None and held >= wanted.facts:
                break
            count, data = self.segments[key]
            out.append(data)
            held += count
        return out


def history(size: int) -> Shelf:
    """The stored state of a player with `size` flights, one a minute from the start."""
    engine = compile_rules(campaign())
    events = [
        Event(
            id=f"h{i}",
            type="flight.completed",
            occurred_at=START + timedelta(minutes=i),
            attributes={"destination": AIRPORTS[i % len(AIRPORTS)]},
        )
        for i in range(size)
    ]
    state, _ = apply(engine, None, events, progress=False)
    return Shelf(storage.store(state))


def cost(shelf: Shelf, size: int, repeat: int) -> list[float]:
    """Seconds of CPU for each of `repeat` new events in a row, as the service pays them: load
    the head, fetch and attach the segments it wants (past the cap, the oldest), apply, store."""
    engine = compile_rules(campaign())
    spent: list[float] = []
    for n in range(repeat):
        event = Event(
            id=f"new{n}",
            type="flight.completed",
            occurred_at=START + timedelta(minutes=size + n),
            attributes={"destination": "YVR"},
        )
        began = time.process_time()
        state = storage.load(shelf.head)
        wanted = storage.wanted(engine, state, [event])
        if wanted is not None:
            storage.attach(state, shelf.fetch(wanted), shelf.chunks(wanted), shelf.body)
        state, _ = apply(engine, state, [event], progress=False)
        shelf.keep(storage.store(state))
        spent.append(time.process_time() - began)
    return spent


def engine_part(repeat: int) -> None:
    """The engine's curve, printed per N, then its ratio."""
    print("engine: load the head, apply one in-order event, store (CPU time)")
    costs: dict[int, float] = {}
    print(f"{'events retained':>16}  {'head':>9}  {'per event':>10}  {'slowest':>10}")
    for size in SIZES:
        shelf = history(size)
        head = len(shelf.head)
        spent = cost(shelf, size, repeat)
        costs[size] = statistics.fmean(spent)
        print(
            f"{size:>16,}  {head:>7,} B  {costs[size] * 1e6:>7.0f} µs  {max(spent) * 1e6:>7.0f} µs"
        )
    print(f"engine cost at 9,000 ÷ cost at 10: {costs[9_000] / costs[10]:.1f} (goal <= 2)")


# -- 2. the service -----------------------------------------------------------------------


@dataclass(frozen=True)
class Timed:
    """The timed POSTs of one player."""

    latencies: list[float]  # seconds, one per POST
    wal_bytes: int  # written by the whole server during them

    @property
    def mean(self) -> float:
        return statistics.fmean(self.latencies)

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies)

    @property
    def wal_per_event(self) -> float:
        return self.wal_bytes / len(self.latencies)


class Api:
    """POST /v1/events over one keep-alive HTTP/1.1 connection: a new connection per request
    would time the handshake, not the write."""

    def __init__(self, port: int, key: str) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}

    def post(self, events: list[dict[str, Any]]) -> None:
        """Send `events`; stops the bench unless every one is accepted."""
        self.connection.request("POST", "/v1/events", json.dumps({"events": events}), self.headers)
        reply = self.connection.getresponse()
        body = reply.read()
        if reply.status != 200:
            raise SystemExit(f"POST /v1/events: {reply.status} {body[:500]!r}")
        refused = [r for r in json.loads(body)["results"] if r["status"] != "accepted"]
        if refused:
            raise SystemExit(f"POST /v1/events: not accepted: {refused[:3]}")

    def close(self) -> None:
        self.connection.close()


def flight(player: str, number: int, occurred_at: datetime, destination: str) -> dict[str, Any]:
    """The player's `number`th flight, as the API takes it."""
    return {
        "id": f"{player}-{number}",
        "player": player,
        "type": "flight.completed",
        "occurred_at": occurred_at.isoformat(),
        "attributes": {"destination": destination, "miles": 1000},
    }


def load_history(api: Api, player: str, size: int, end: datetime) -> None:
    """`size` flights of `player`, one a second, the last at `end`, sent 500 a request; the
    first is to YVR."""
    first = end - timedelta(seconds=size - 1)
    events = [
        flight(player, i, first + timedelta(seconds=i), AIRPORTS[i % len(AIRPORTS)])
        for i in range(size)
    ]
    for at in range(0, size, HISTORY_BATCH):
        api.post(events[at : at + HISTORY_BATCH])


async def _wal_position(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        lsn: str = await conn.fetchval("SELECT pg_current_wal_lsn()::text")
        return lsn
    finally:
        await conn.close()


async def _wal_since(url: str, before: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        written = await conn.fetchval(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::text::pg_lsn)", before
        )
        return int(written)
    finally:
        await conn.close()


def timed_posts(api: Api, url: str, player: str, size: int, after: datetime, repeat: int) -> Timed:
    """`repeat` single-event POSTs of `player`, one a second of occurred_at from `after` on
    (in order: later than all its history), sent one after the other. All to YVR, where its
    history went first: they earn no badge, whatever N, only the scoring rule's point. The WAL
    position is read around them, outside the timed requests."""
    events = [
        flight(player, size + n, after + timedelta(seconds=n + 1), "YVR") for n in range(repeat)
    ]
    before = asyncio.run(_wal_position(url))
    latencies: list[float] = []
    for event in events:
        began = time.perf_counter()
        api.post([event])
        latencies.append(time.perf_counter() - began)
    return Timed(latencies, asyncio.run(_wal_since(url, before)))


def measure(api: Api, url: str, player: str, size: int, repeat: int) -> Timed:
    """A fresh player with `size` events of history, then its timed POSTs. The history ends
    early enough that every timed event still lies in the past when it is sent."""
    end = datetime.now(UTC) - timedelta(seconds=repeat + 60)
    load_history(api, player, size, end)
    return timed_posts(api, url, player, size, end, repeat)


def service_part(repeat: int, workers: int) -> None:
    """The service's curve, printed per N, then its ratios."""
    print(f"service: one event a POST, {repeat} in a row per N, {workers} worker(s)")
    results: dict[int, Timed] = {}
    with tempfile.TemporaryDirectory(prefix="gamify-bench-") as folder:
        data_dir = Path(folder) / "data"
        port = free_port()
        process, _ = start(data_dir, port, workers, {"GAMIFY_ADMIN_TOKEN": ADMIN_TOKEN})
        try:
            api = Api(port, setup(f"http://127.0.0.1:{port}"))
            url = database_url(data_dir)
            measure(api, url, "warm-up", 10, WARM_UP)
            print(f"{'events retained':>16}  {'mean':>8}  {'p50':>8}  {'WAL/event':>10}")
            for size in SIZES:
                results[size] = timed = measure(api, url, f"h{size}", size, repeat)
                print(
                    f"{size:>16,}  {timed.mean * 1e3:>5.2f} ms  {timed.p50 * 1e3:>5.2f} ms"
                    f"  {timed.wal_per_event:>7,.0f} B"
                )
            api.close()
        finally:
            stop(process)
    low, high = results[10], results[9_000]
    print(
        f"service cost at 9,000 ÷ at 10: p50 {high.p50 / low.p50:.2f}, "
        f"mean {high.mean / low.mean:.2f} (goal <= 2)"
    )
    worst = max(SIZES, key=lambda size: results[size].wal_per_event)
    print(
        f"most WAL per event: {results[worst].wal_per_event:,.0f} B at N={worst:,}"
        " (goal <= 1 KB = 1,024 B)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--workers", type=int, default=1)
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--engine-only", action="store_true")
    only.add_argument("--service-only", action="store_true")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    # History, timed events and a margin, one a second, inside the campaign.
    if timedelta(seconds=max(SIZES) + args.repeat + 3_600) > CAMPAIGN_AGE:
        parser.error("--repeat is too large for the bench campaign's day of history")
    if not args.service_only:
        engine_part(args.repeat)
    if not args.engine_only:
        service_part(args.repeat, args.workers)


if __name__ == "__main__":
    main()
