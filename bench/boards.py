"""Leaderboard speed and size, as ratios measured in one run on one server.

    .venv/bin/python -m bench.boards [--connections 64] [--seconds 10] [--members 1000000]

Starts `gamify serve` on embedded servers in a fresh temporary data folder, seeds a board of
20,000 players through the award endpoint, then reports:
1. top-100 requests/s and around-me requests/s, each divided by `GET /health` requests/s
   (wrk, apt-get install wrk);
2. the time to rebuild a board of N players (default 1,000,000) from Postgres into Redis;
3. Redis memory per board member, from MEMORY USAGE and from INFO memory.
Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from bench.award import ADMIN_TOKEN, call, campaign, setup, wrk
from bench.serve import start, stop
from gamify.boards import keys, rebuild
from gamify.campaigns.compiled import EngineCache
from gamify.campaigns.document import parse
from gamify.campaigns.store import OpenCampaign
from gamify.platform import db
from gamify.platform.embedded.ports import free_port

AROUND_LUA = r"""
local headers = {["Authorization"] = "Bearer %(key)s"}
function init(args) math.randomseed(os.time()) end
function request()
  local path = "/v1/campaigns/bench/leaderboard/players/p-" .. math.random(1, %(players)d)
  return wrk.format("GET", path .. "?around=5", headers)
end
"""
TOP_LUA = r"""
local headers = {["Authorization"] = "Bearer %(key)s"}
function request()
  return wrk.format("GET", "/v1/campaigns/bench/leaderboard?limit=100", headers)
end
"""
SEED_PLAYERS = 20_000
FILL = """
INSERT INTO progress (tenant_id, campaign_id, player_id, state, score, reached_at)
SELECT 'bench', 'big', 'player-' || g, '\\x'::bytea, 1 + (g::bigint * 7919) % 5000,
       $1::timestamptz - make_interval(secs => (g::bigint * 104729) % 1728000)
FROM generate_series(1, $2::int) AS g
"""


def seed(base: str, key: str) -> None:
    """Every seeded player flies at least once, to one of the 40 airports."""
    codes = campaign()["badges"]
    events = []
    for n in range(SEED_PLAYERS * 2):
        code = codes[n * 7 % 40]["criteria"]["values"][0]
        events.append(
            {
                "id": f"seed-{n}",
                "player": f"p-{n % SEED_PLAYERS + 1}",
                "type": "flight.completed",
                "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "attributes": {"destination": code},
            }
        )
    for i in range(0, len(events), 1000):
        call(f"{base}/v1/events", {"events": events[i : i + 1000]}, key)


async def rebuild_and_measure(data_dir: Path, members: int) -> tuple[float, float, float]:
    servers = json.loads((data_dir / "servers.json").read_text())
    pool = await db.connect(servers["database_url"], 2)
    redis = Redis.from_url(servers["redis_url"])
    try:
        big: dict[str, Any] = {**campaign(), "id": "big"}
        async with pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO campaigns (tenant_id, id, name, starts_at, ends_at, timezone,"
                " document, closes_at, score_bits)"
                " VALUES ('bench', 'big', 'Big', $1, $2, $3, $4, $2, $5)",
                *_times(big),
                big["timezone"],
                big,
                parse(big).score_bits,
            )
            await conn.execute(FILL, _times(big)[1], members)
        compiled = EngineCache().get("bench", OpenCampaign("big", 1, big, parse(big).score_bits))
        before = int((await redis.info("memory"))["used_memory"])
        began = time.perf_counter()
        written = await rebuild.rebuild(pool, redis, "bench", compiled)
        seconds = time.perf_counter() - began
        assert written == members, written
        after = int((await redis.info("memory"))["used_memory"])
        usage = await redis.memory_usage(keys.board("bench", "big"), samples=0)
        return seconds, (usage or 0) / members, (after - before) / members
    finally:
        await redis.aclose()
        await pool.close()


def _times(document: dict[str, Any]) -> tuple[Any, Any]:
    from datetime import datetime

    return (
        datetime.fromisoformat(document["starts_at"]),
        datetime.fromisoformat(document["ends_at"]),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--members", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gamify-bench-") as folder:
        data_dir = Path(folder) / "data"
        port = free_port()
        process, _ = start(data_dir, port, 1, {"GAMIFY_ADMIN_TOKEN": ADMIN_TOKEN})
        base = f"http://127.0.0.1:{port}"
        try:
            key = setup(base)
            seed(base, key)
            top_script = Path(folder) / "top.lua"
            top_script.write_text(TOP_LUA % {"key": key})
            around_script = Path(folder) / "around.lua"
            around_script.write_text(AROUND_LUA % {"key": key, "players": SEED_PLAYERS})
            health = wrk(f"{base}/health", args.connections, args.seconds)
            top = wrk(base, args.connections, args.seconds, top_script)
            around = wrk(base, args.connections, args.seconds, around_script)
            seconds, per_member, per_member_info = asyncio.run(
                rebuild_and_measure(data_dir, args.members)
            )
        finally:
            stop(process)
    print(f"GET /health:    {health.rate:10,.0f} req/s  p50 {health.p50}  p99 {health.p99}")
    print(
        f"top 100:        {top.rate:10,.0f} req/s  p50 {top.p50}  p99 {top.p99}"
        f"  errors {top.errors}"
    )
    print(
        f"around me (5):  {around.rate:10,.0f} req/s  p50 {around.p50}  p99 {around.p99}"
        f"  errors {around.errors}"
    )
    print(f"rebuild of {args.members:,} members from Postgres: {seconds:.1f} s (goal <= 10 s)")
    print(
        f"Redis memory per member: {per_member:.0f} B (MEMORY USAGE), "
        f"{per_member_info:.0f} B (INFO used_memory) (goal <= 100 B)"
    )
    print(
        f"top/health = {top.rate / health.rate:.2f}, around/health = "
        f"{around.rate / health.rate:.2f} (goal >= 0.6 each); rebuild {seconds:.1f} s; "
        f"{per_member:.0f} B/member"
    )


if __name__ == "__main__":
    main()
