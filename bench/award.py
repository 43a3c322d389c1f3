"""The award endpoint's speed, as ratios measured in one run on one server.

    .venv/bin/python -m bench.award [--connections 64] [--seconds 10] [--workers 1]

Starts `gamify serve` on embedded servers in a fresh temporary data folder, creates a tenant
and a 42-badge campaign (40 airports + 2 milestones), then loads it with wrk
(apt-get install wrk):
1. `GET /health` at N connections: the baseline;
2. single-event `POST /v1/events` at N connections, each event new, from 10,000 players;
3. 500-event batches at 8 connections;
4. then, the service idle, the storage floor (bench/floor.py): Postgres alone taking the rows
   such batches must write, at 8 connections for as many seconds, in the same database.
The last line gives single-event req/s ÷ health req/s, batched events/s ÷ the floor's, and
batched events/s. Not a test.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import floor
from bench.serve import start, stop
from gamify.platform.embedded import read_running
from gamify.platform.embedded.ports import free_port

ADMIN_TOKEN = "bench-admin-token-0123456789"
AIRPORTS = (
    "YVR YYZ YUL YYC YEG YOW YHZ YWG YQB YYJ YXE YQR YYT YQM YSJ YFC YQX YXU YKF YQT "
    "YXS YZF YXY YLW YKA YQU YMM YXX YCD YPR YQG YSB YAM YTS YGK YQY YDF YYG YTZ YHM"
)

LUA = r"""
local codes = {}
for code in string.gmatch("%(airports)s", "%%S+") do table.insert(codes, code) end
local threads = 0
function setup(thread) threads = threads + 1; thread:set("tid", threads) end
function init(args) run = args[1]; batch = tonumber(args[2]); counter = 0
  math.randomseed(os.time() * 1000 + tid) end
local headers = {["Content-Type"] = "application/json",
                 ["Authorization"] = "Bearer %(key)s"}
function request()
  local now = os.date("!%%Y-%%m-%%dT%%H:%%M:%%SZ")
  local events = {}
  for i = 1, batch do
    counter = counter + 1
    events[i] = string.format(
      '{"id":"%%s-%%d-%%d","player":"p-%%d","type":"flight.completed","occurred_at":"%%s",' ..
      '"attributes":{"destination":"%%s","miles":%%d}}',
      run, tid, counter, math.random(1, 10000), now, codes[math.random(#codes)],
      math.random(200, 9000))
  end
  local body = '{"events":[' .. table.concat(events, ",") .. ']}'
  return wrk.format("POST", "/v1/events", headers, body)
end
"""


class Load:
    def __init__(self, output: str) -> None:
        self.output = output
        self.rate = _number(r"Requests/sec:\s+([\d.]+)", output)
        self.p50 = _latency(output, "50%")
        self.p99 = _latency(output, "99%")
        errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
        self.errors = int(errors[1]) if errors else 0


def _number(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    if match is None:
        raise SystemExit(f"unexpected wrk output:\n{text}")
    return float(match[1])


def _latency(text: str, percentile: str) -> str:
    match = re.search(rf"^\s+{re.escape(percentile)}\s+(\S+)", text, re.MULTILINE)
    return match[1] if match else "?"


def wrk(url: str, connections: int, seconds: int, script: Path | None = None, *args: str) -> Load:
    command = [
        "wrk",
        "-t",
        str(min(connections, 2)),
        "-c",
        str(connections),
        "-d",
        f"{seconds}s",
        "--latency",
        url,
    ]
    if script is not None:
        command += ["-s", str(script), "--", *args]
    return Load(subprocess.run(command, capture_output=True, text=True, check=True).stdout)


def call(url: str, body: dict[str, Any], token: str) -> Any:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        return json.loads(reply.read())


def campaign() -> dict[str, Any]:
    now = datetime.now(UTC)
    airports = AIRPORTS.split()
    badges: list[dict[str, Any]] = [
        {
            "id": code.lower(),
            "name": code,
            "points": 1,
            "criteria": {
                "kind": "value",
                "event": "flight.completed",
                "attribute": "destination",
                "values": [code],
            },
        }
        for code in airports
    ]
    badges += [
        {
            "id": f"visited-{n}",
            "name": f"{n} destinations",
            "points": 5,
            "criteria": {
                "kind": "distinct",
                "event": "flight.completed",
                "attribute": "destination",
                "threshold": n,
            },
        }
        for n in (5, 10)
    ]
    return {
        "id": "bench",
        "name": "Bench",
        "starts_at": (now - timedelta(days=1)).isoformat(),
        "ends_at": (now + timedelta(days=1)).isoformat(),
        "timezone": "America/Toronto",
        "badges": badges,
        "scoring": [{"event": "flight.completed", "points": 1}],
        "leaderboards": ["campaign"],
    }


def setup(base: str) -> str:
    """A tenant `bench` with the 42-badge campaign `bench`; returns its key."""
    call(f"{base}/v1/admin/tenants", {"id": "bench", "name": "Bench"}, ADMIN_TOKEN)
    key: str = call(
        f"{base}/v1/admin/tenants/bench/keys",
        {"scopes": ["events:write", "campaigns:write", "read"]},
        ADMIN_TOKEN,
    )["key"]
    call(f"{base}/v1/campaigns", campaign(), key)
    return key


def database_url(data_dir: Path) -> str:
    """The URL of the Postgres that `gamify serve` started in `data_dir`: the record its
    owner keeps for the other gamify commands (`servers.json`), so that the bench reaches
    the very server the service writes to, under its settings."""
    running = read_running(data_dir)
    if running is None or running.database_url is None:
        raise SystemExit(f"no running gamify owns {data_dir}")
    return running.database_url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    with tempfile.TemporaryDirectory(prefix="gamify-bench-") as folder:
        port = free_port()
        data_dir = Path(folder) / "data"
        process, _ = start(data_dir, port, args.workers, {"GAMIFY_ADMIN_TOKEN": ADMIN_TOKEN})
        base = f"http://127.0.0.1:{port}"
        try:
            key = setup(base)
            script = Path(folder) / "events.lua"
            script.write_text(LUA % {"airports": AIRPORTS, "key": key})
            run = f"r{int(time.time())}"
            health = wrk(f"{base}/health", args.connections, args.seconds)
            single = wrk(base, args.connections, args.seconds, script, f"{run}s", "1")
            batched = wrk(base, 8, args.seconds, script, f"{run}b", "500")
            # After the wrk phases: the tables are at least as large as the batched phase left
            # them, and no request is running.
            storage = floor.measure(database_url(data_dir), "bench", "bench", args.seconds)
        finally:
            stop(process)
    print(f"GET /health:           {health.rate:10,.0f} req/s  p50 {health.p50}  p99 {health.p99}")
    print(
        f"POST 1 event:          {single.rate:10,.0f} req/s  p50 {single.p50}  p99 {single.p99}"
        f"  errors {single.errors}"
    )
    print(
        f"POST 500 events:       {batched.rate:10,.1f} req/s  p50 {batched.p50}"
        f"  p99 {batched.p99}  errors {batched.errors}"
    )
    print(
        f"storage floor:         {storage.rate:10,.0f} events/s  (Postgres alone, 500-event"
        f" batches at 8 connections; client CPU {storage.client_cpu / storage.seconds:.0%}"
        f" of a core, {storage.retries} deadlock retries)"
    )
    print(
        f"single/health = {single.rate / health.rate:.2f} (goal >= 0.35); "
        f"batched/floor = {batched.rate * 500 / storage.rate:.2f} (goal >= 0.6); "
        f"batched = {batched.rate * 500:,.0f} events/s (goal >= 50,000)"
    )


if __name__ == "__main__":
    main()
