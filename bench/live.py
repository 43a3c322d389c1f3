"""Live push under load: sockets held, latency from the POST to the `rank_changed` frame,
messages delivered, and server memory per connection.

    .venv/bin/pip install picows   # the client's sockets (not a dependency of gamify)
    .venv/bin/python -m bench.live [--sockets 10000] [--rate 1000] [--seconds 10]

Starts `gamify serve` (one worker) on embedded servers in a fresh temporary folder. A client in
its own process opens the sockets, each subscribed to `me` (a player of its own) and to the
top 10 of the campaign board, then posts `--rate` rank-changing events a second (batches of
100, each event a point for a random subscribed player) for `--seconds`. Latency is measured
from the moment the client sent the POST to the frame's arrival: an upper bound of the time
from commit to frame. Memory is the RSS growth of the server's processes divided by the
sockets. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import resource
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil

from bench.award import call, campaign
from bench.serve import start, stop
from gamify.platform.embedded.ports import free_port
from gamify.tenants import tokens

ADMIN_TOKEN = "bench-admin-token-0123456789"
SECRET = "bench-live-secret-" + "x" * 32
BATCH = 100


def rss(pid: int) -> int:
    """The resident memory of gamify's processes: `serve` and its Granian workers, not the
    embedded Postgres and Valkey it also started."""
    process = psutil.Process(pid)
    family = [process, *process.children(recursive=True)]
    return sum(p.memory_info().rss for p in family if "python" in p.name())


def setup(base: str) -> str:
    call(f"{base}/v1/admin/tenants", {"id": "bench", "name": "Bench"}, ADMIN_TOKEN)
    key: str = call(
        f"{base}/v1/admin/tenants/bench/keys",
        {"scopes": ["events:write", "campaigns:write", "read"]},
        ADMIN_TOKEN,
    )["key"]
    call(f"{base}/v1/campaigns", campaign(), key)
    return key


class Client:
    """The sockets, on picows (its frames are parsed in C: a Python client's own CPU would
    hide the server's), and the driver posting events."""

    def __init__(self, base: str, key: str, sockets: int, watchers: float = 1.0) -> None:
        self.base = base
        self.watching = set(random.sample(range(sockets), int(sockets * watchers)))
        self.key = key
        self.players = [f"p-{n}" for n in range(sockets)]
        self.sent_at: dict[str, float] = {}
        self.latencies: list[float] = []
        self.answers: list[float] = []  # POST sent to answered
        self.answered_at: dict[str, float] = {}
        self.after_answer: list[float] = []  # POST answered to rank_changed
        self.frames = 0

    async def open(self, n: int, player: str) -> Any:
        from picows import WSListener, WSMsgType, ws_connect

        client = self

        class Listener(WSListener):  # type: ignore[misc, unused-ignore]
            def on_ws_connected(self, transport: Any) -> None:
                transport.send(WSMsgType.TEXT, b'{"op":"subscribe","topic":"me"}')
                if n in client.watching:
                    transport.send(
                        WSMsgType.TEXT,
                        b'{"op":"subscribe","topic":"leaderboard","campaign":"bench","top":10}',
                    )

            def on_ws_frame(self, transport: Any, frame: Any) -> None:
                client.heard(player, frame.get_payload_as_bytes())

        token = tokens.issue(SECRET, "bench", player, datetime.now(UTC)).token
        url = f"{self.base.replace('http', 'ws')}/v1/ws?token={token}"
        transport, _ = await ws_connect(Listener, url)
        return transport

    async def _post(self, http: Any, events: list[dict[str, Any]], sent: float) -> None:
        await http.post(
            f"{self.base}/v1/events",
            json={"events": events},
            headers={"Authorization": f"Bearer {self.key}"},
        )
        answered = time.monotonic()
        self.answers.append(answered - sent)
        for event in events:
            self.answered_at[event["player"]] = answered

    def heard(self, player: str, frame: bytes) -> None:
        self.frames += 1
        if b'"rank_changed"' in frame:
            now = time.monotonic()
            sent = self.sent_at.pop(player, None)
            if sent is not None:
                self.latencies.append(now - sent)
                answered = self.answered_at.pop(player, None)
                # A frame may beat the POST's answer: the commit came before both.
                self.after_answer.append(max(0.0, now - answered) if answered else 0.0)

    async def drive(self, rate: int, seconds: float) -> int:
        import httpx

        posted = 0
        pending: set[asyncio.Future[Any]] = set()
        start_at = datetime.now(UTC) - timedelta(minutes=5)
        async with httpx.AsyncClient(timeout=30) as http:
            began = time.monotonic()
            batches = int(rate * seconds / BATCH)
            for b in range(batches):
                await asyncio.sleep(max(0.0, began + b * BATCH / rate - time.monotonic()))
                chosen = random.sample(self.players, BATCH)
                events = [
                    {
                        "id": f"e-{b}-{i}",
                        "player": player,
                        "type": "flight.completed",
                        "occurred_at": (
                            start_at + timedelta(microseconds=b * BATCH + i)
                        ).isoformat(),
                        "attributes": {"destination": "NOWHERE"},
                    }
                    for i, player in enumerate(chosen)
                ]
                now = time.monotonic()
                for player in chosen:
                    self.sent_at.setdefault(player, now)
                pending.add(asyncio.ensure_future(self._post(http, events, now)))
                posted += BATCH
            await asyncio.gather(*pending, return_exceptions=True)
            await asyncio.sleep(2)
        return posted


async def client_main(
    base: str, key: str, sockets: int, rate: int, seconds: float, out: Any, watchers: float = 1.0
) -> None:
    client = Client(base, key, sockets, watchers)
    opened: list[Any] = []
    for at in range(0, sockets, 200):
        batch = range(at, min(at + 200, sockets))
        opened += await asyncio.gather(*(client.open(n, client.players[n]) for n in batch))
    await asyncio.sleep(2)
    out.send(("opened", len(opened)))
    out.recv()  # the server's memory was read
    frames_before = client.frames
    began = time.monotonic()
    posted = await client.drive(rate, seconds)
    elapsed = time.monotonic() - began
    delivered = client.frames - frames_before
    out.send(
        (
            "done",
            posted,
            delivered / elapsed,
            [sorted(client.latencies), sorted(client.answers), sorted(client.after_answer)],
        )
    )
    for transport in opened:
        transport.disconnect()


def run_client(
    base: str, key: str, sockets: int, rate: int, seconds: float, out: Any, watchers: float
) -> None:
    asyncio.run(client_main(base, key, sockets, rate, seconds, out, watchers))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=10_000)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument(
        "--watchers", type=float, default=1.0, help="the share of sockets watching the top 10"
    )
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    with tempfile.TemporaryDirectory() as folder:
        port = free_port()
        env = {"GAMIFY_ADMIN_TOKEN": ADMIN_TOKEN, "GAMIFY_SECRET": SECRET}
        process, _ = start(Path(folder), port, 1, env)
        try:
            base = f"http://127.0.0.1:{port}"
            key = setup(base)
            idle = rss(process.pid)
            ours, theirs = multiprocessing.Pipe()
            client = multiprocessing.Process(
                target=run_client,
                args=(base, key, args.sockets, args.rate, args.seconds, theirs, args.watchers),
            )
            client.start()
            _, opened = ours.recv()
            held = rss(process.pid)
            ours.send("ok")
            _, posted, rate, latencies = ours.recv()
            client.join()
        finally:
            stop(process)

    per_socket = (held - idle) / max(opened, 1)
    print(f"sockets held            {opened}")
    print(f"server memory/socket    {per_socket / 1024:.1f} KB (RSS growth ÷ sockets)")
    print(f"events posted           {posted} at {args.rate}/s")
    print(f"frames delivered        {rate:,.0f}/s (rank_changed, overtaken, leaderboard)")
    for label, measured in zip(
        ["POST sent → rank_changed", "POST sent → answered", "answered → rank_changed"],
        latencies,
        strict=True,
    ):
        if measured:
            p50 = statistics.median(measured) * 1000
            p99 = measured[int(len(measured) * 0.99) - 1] * 1000
            print(f"{label:26}  p50 {p50:.0f} ms, p99 {p99:.0f} ms ({len(measured)})")


if __name__ == "__main__":
    main()
