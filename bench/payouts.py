"""Settlement and delivery speed, measured in one run on embedded servers.

    .venv/bin/python -m bench.payouts [--players 1000000] [--seconds 10] [--connections 64]

1. Settles a pool of N players (default 1,000,000, goal: at most 30 s): the standings read in
   board order, the split, and one payouts row per credit, in one transaction.
2. Delivers credits for `--seconds` to a local receiver that answers 200 at once (goal: 2,000
   credits/s), beside the receiver's own request rate under wrk (apt-get install wrk) as the
   limit a client could reach, and the dispatcher's own CPU time per credit (the figure a
   busy machine moves least: the rate follows whatever else runs on its cores).
Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import shutil
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gamify.payouts import settlement
from gamify.payouts.delivery import Dispatcher
from gamify.platform import db, migrations
from gamify.platform.embedded import EmbeddedServers
from gamify.platform.embedded.ports import free_port

SECRET = "whsec_YmVuY2htYXJrLXNlY3JldC1rZXktMDEyMzQ1"
FILL = """
INSERT INTO progress (tenant_id, campaign_id, player_id, state, score, reached_at)
SELECT 'bench', 'pool', 'player-' || g, '\\x'::bytea, 1 + (g::bigint * 7919) % 5000,
       $1::timestamptz + make_interval(secs => (g::bigint * 104729) % 86400)
FROM generate_series(1, $2::int) AS g
"""


def receive(port: int) -> None:
    """A loyalty system that takes every credit at once: HTTP/1.1 keep-alive, 200, no body."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if length:
                    await reader.readexactly(length)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(serve, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


async def seed(url: str, players: int, receiver: str) -> None:
    conn = await db.connect_one(url)
    try:
        await migrations.apply(conn)
        start = datetime.now(UTC) - timedelta(days=2)
        document: dict[str, Any] = {
            "id": "pool",
            "name": "Bench",
            "prize_pool": {"amount": 10_000_000, "unit": "miles", "split": "proportional"},
            "loyalty": {"url": receiver, "secret": SECRET},
        }
        await conn.execute("INSERT INTO tenants (id, name) VALUES ('bench', 'Bench')")
        await conn.execute(
            "INSERT INTO campaigns (tenant_id, id, name, starts_at, ends_at, timezone, document,"
            " closes_at, score_bits) VALUES ('bench', 'pool', 'Bench', $1, $2, 'UTC', $3, $2, 20)",
            start,
            start + timedelta(days=1),
            document,
        )
        await conn.execute(FILL, start, players)
        await conn.execute("ANALYZE progress")
    finally:
        await conn.close()


async def settle_and_deliver(url: str, seconds: float) -> tuple[float, int, float, float, int]:
    pool = await db.connect(url, 8)
    try:
        began = time.perf_counter()
        assert await settlement.settle(pool, "bench", "pool")
        settle_seconds = time.perf_counter() - began
        credits = await pool.fetchval("SELECT count(*) FROM payouts")
        dispatcher = Dispatcher(pool)
        began, cpu = time.perf_counter(), time.process_time()
        dispatcher.start()
        await asyncio.sleep(seconds)
        await dispatcher.stop()
        elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
        delivered = await pool.fetchval("SELECT count(*) FROM payouts WHERE status = 'delivered'")
        return settle_seconds, credits, elapsed, cpu, delivered
    finally:
        await pool.close()


def receiver_rate(port: int, connections: int, seconds: int) -> float:
    if shutil.which("wrk") is None:
        return float("nan")
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", f"http://127.0.0.1:{port}/credits"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("Requests/sec"))
    return float(line.split()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--players", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    port = free_port()
    receiver = multiprocessing.Process(target=receive, args=(port,), daemon=True)
    receiver.start()
    with tempfile.TemporaryDirectory() as folder:
        servers = EmbeddedServers(Path(folder), valkey=False, durable=False)
        servers.start()
        try:
            url = servers.database_url
            assert url is not None
            asyncio.run(seed(url, args.players, f"http://127.0.0.1:{port}/credits"))
            settled, credits, elapsed, cpu, delivered = asyncio.run(
                settle_and_deliver(url, args.seconds)
            )
        finally:
            servers.stop()
    limit = receiver_rate(port, args.connections, int(args.seconds))
    receiver.terminate()
    rate = delivered / elapsed
    print(f"settle {args.players:,} players: {settled:.1f} s ({credits:,} credits; goal <= 30 s)")
    print(f"delivery: {rate:,.0f} credits/s (goal >= 2,000); receiver alone: {limit:,.0f} req/s")
    print(f"delivered/receiver = {rate / limit:.2f}")
    # The dispatcher's own CPU per credit: what a busy machine changes least.
    print(f"dispatcher CPU per credit: {cpu / max(delivered, 1) * 1e6:,.0f} us")


if __name__ == "__main__":
    main()
