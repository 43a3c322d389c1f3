"""Whether scraping /metrics slows the award endpoint, as a ratio measured in one run.

    .venv/bin/python -m bench.metrics [--connections 64] [--seconds 10] [--workers 1]
                                      [--interval 0.1]

Starts `gamify serve` on embedded servers in a fresh temporary data folder (as bench.award
does: a tenant and its 42-badge campaign), then loads single-event `POST /v1/events` with wrk
(apt-get install wrk), after a warm-up, in turns: alone, beside a scraper that GETs /metrics
every `--interval` seconds (0.1 s: 150 times as often as Prometheus's default 15 s), alone, with
the scraper, alone. The last line gives the mean rate beside the scraper ÷ the mean rate alone.
Before that, what the instrumentation itself costs per request, in a process counting into
files as the workers of `gamify serve` do. Not a test.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from bench.award import ADMIN_TOKEN, AIRPORTS, LUA, setup, wrk
from bench.serve import start, stop
from gamify.platform.embedded.ports import free_port

# One request's instrumentation, as the award endpoint pays it: the latency histogram and the
# events counter (prometheus_client must see its folder before it is first imported); then one
# scrape's rendering, with 30 routes' worth of latency series.
PER_REQUEST = """
import asyncio, os, sys, timeit
os.environ["PROMETHEUS_MULTIPROC_DIR"] = sys.argv[1]
from gamify.platform import metrics
histogram = metrics.REQUEST_SECONDS.labels("/v1/events", "POST", "2xx")
accepted = metrics.EVENTS_BY_STATUS["accepted"]
def request():
    histogram.observe(0.003)
    accepted.inc(1)
n = 200_000
print(min(timeit.repeat(request, number=n, repeat=3)) / n * 1e6)
for route in range(30):
    metrics.REQUEST_SECONDS.labels(f"/route/{route}", "GET", "2xx").observe(0.01)
exporter = metrics.Exporter(max_age=0)  # render each time, not the cached answer
render = lambda: asyncio.run(exporter.render())
print(min(timeit.repeat(render, number=20, repeat=3)) / 20 * 1e3)
"""


class Scraper(threading.Thread):
    """GET /metrics every `interval` seconds until stopped; keeps each scrape's duration."""

    def __init__(self, url: str, interval: float) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.interval = interval
        self.durations: list[float] = []
        self.size = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            began = time.perf_counter()
            with urllib.request.urlopen(self.url, timeout=10) as reply:
                self.size = len(reply.read())
            self.durations.append(time.perf_counter() - began)
            self._done.wait(self.interval)

    def stop(self) -> None:
        self._done.set()
        self.join()


def instrumentation_cost() -> tuple[float, float]:
    """Microseconds of instrumentation per single-event request, counted into files, and
    milliseconds of CPU to render one scrape of them."""
    with tempfile.TemporaryDirectory(prefix="gamify-bench-metrics-") as folder:
        out = subprocess.run(
            [sys.executable, "-c", PER_REQUEST, folder],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    per_request, per_scrape = out.split()
    return float(per_request), float(per_scrape)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--interval", type=float, default=0.1)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    cost, render = instrumentation_cost()
    with tempfile.TemporaryDirectory(prefix="gamify-bench-") as folder:
        port = free_port()
        process, _ = start(
            Path(folder) / "data", port, args.workers, {"GAMIFY_ADMIN_TOKEN": ADMIN_TOKEN}
        )
        base = f"http://127.0.0.1:{port}"
        try:
            key = setup(base)
            script = Path(folder) / "events.lua"
            script.write_text(LUA % {"airports": AIRPORTS, "key": key})
            run = f"m{int(time.time())}"

            def load(name: str, seconds: int = args.seconds) -> float:
                return wrk(base, args.connections, seconds, script, run + name, "1").rate

            load("warm", 3)
            alone, scraped, durations = [load("a0")], [], []
            for turn in range(2):
                scraper = Scraper(f"{base}/metrics", args.interval)
                scraper.start()
                try:
                    scraped.append(load(f"s{turn}"))
                finally:
                    scraper.stop()
                durations += scraper.durations
                alone.append(load(f"a{turn + 1}"))
        finally:
            stop(process)
    durations.sort()
    print(f"instrumentation per single-event request: {cost:.1f} us (files, as under serve)")
    print(f"rendering one scrape (30 routes): {render:.1f} ms of CPU")
    print(f"POST 1 event alone:         {_rates(alone)} req/s")
    print(
        f"POST 1 event with scraper:  {_rates(scraped)} req/s  ({len(durations)} scrapes of "
        f"{scraper.size:,} bytes, p50 {statistics.median(durations) * 1000:.1f} ms, "
        f"max {durations[-1] * 1000:.1f} ms)"
    )
    print(
        f"with scraper / alone = {statistics.mean(scraped) / statistics.mean(alone):.2f} "
        f"(a scrape every {args.interval} s, {args.workers} worker(s))"
    )


def _rates(rates: list[float]) -> str:
    return ", ".join(f"{rate:,.0f}" for rate in rates)


if __name__ == "__main__":
    main()
