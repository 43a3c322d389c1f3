"""Cold start of `gamify serve` and the req/s of its baseline endpoints.

    .venv/bin/python -m bench.serve [--connections 64] [--seconds 5] [--workers 1]

Starts `gamify serve` on embedded servers in a fresh temporary data folder, times it to the
first `/ready` 200 (cold: initdb included) and again after a restart (warm), then loads
`GET /health` and `GET /ready` with wrk (apt-get install wrk) at the given connections.
The last line gives the ratio ready ÷ health measured in this run. Not a test.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from gamify.platform.embedded.ports import free_port


def start(
    data_dir: Path,
    port: int,
    workers: int,
    extra_env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen[bytes], float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAMIFY_")}
    env |= {"GAMIFY_DATA_DIR": str(data_dir), "GAMIFY_LOG_LEVEL": "WARNING", **(extra_env or {})}
    began = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "gamify", "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as reply:
                if reply.status == 200:
                    return process, time.monotonic() - began
        except OSError:
            if process.poll() is not None:
                raise SystemExit("gamify serve exited before it was ready") from None
            time.sleep(0.02)


def stop(process: subprocess.Popen[bytes]) -> float:
    began = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    return time.monotonic() - began


def wrk(url: str, connections: int, seconds: int) -> float:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    threads = str(min(connections, 2))
    out = subprocess.run(
        ["wrk", "-t", threads, "-c", str(connections), "-d", f"{seconds}s", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if match is None:
        raise SystemExit(f"unexpected wrk output:\n{out}")
    return float(match[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gamify-bench-") as folder:
        data_dir = Path(folder) / "data"
        port = free_port()
        process, cold = start(data_dir, port, args.workers)
        print(f"cold start to /ready 200 (initdb included): {cold:.2f} s")
        print(f"stop on SIGTERM: {stop(process):.2f} s")
        process, warm = start(data_dir, port, args.workers)
        print(f"warm start to /ready 200: {warm:.2f} s")
        try:
            base = f"http://127.0.0.1:{port}"
            health = wrk(f"{base}/health", args.connections, args.seconds)
            ready = wrk(f"{base}/ready", args.connections, args.seconds)
        finally:
            stop(process)
    print(
        f"GET /health: {health:,.0f} req/s at {args.connections} connections, "
        f"{args.workers} worker(s)"
    )
    print(f"GET /ready:  {ready:,.0f} req/s")
    print(f"ready/health = {ready / health:.2f}")


if __name__ == "__main__":
    main()
