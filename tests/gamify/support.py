"""Helpers the service tests share: servers, credentials, campaign documents, flights and
the reference results they must give, and board readers. Test modules import only this."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from gamify.boards import keys
from gamify.platform.embedded import EmbeddedServers
from gamify.platform.embedded.ports import free_port

ADMIN_TOKEN = "test-admin-token-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PROBLEM = "application/problem+json"


class Servers(msgspec.Struct):
    database_url: str
    redis_url: str
    embedded: EmbeddedServers | None


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def tenant_key(
    client: AsyncTestClient[Litestar], tenant: str = "acme", scopes: tuple[str, ...] = ("read",)
) -> str:
    """Create `tenant` (if new) and a key with `scopes`; returns the key."""
    created = await client.post(
        "/v1/admin/tenants", json={"id": tenant, "name": tenant.title()}, headers=ADMIN
    )
    assert created.status_code in (201, 409), created.text
    issued = await client.post(
        f"/v1/admin/tenants/{tenant}/keys", json={"scopes": list(scopes)}, headers=ADMIN
    )
    assert issued.status_code == 201, issued.text
    key: str = issued.json()["key"]
    return key


async def post_events(
    client: AsyncTestClient[Litestar], headers: dict[str, str], *events: dict[str, Any]
) -> list[dict[str, Any]]:
    """POST the events in one request (a 200 is expected); returns their results."""
    response = await client.post("/v1/events", json={"events": list(events)}, headers=headers)
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    """The response is an RFC 9457 problem with `status`; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"]
    assert "Traceback" not in response.text
    return body


def flight(
    event_id: str, player: str, destination: str, when: datetime, **attributes: Any
) -> dict[str, Any]:
    """A `flight.completed` event as a partner posts it."""
    return {
        "id": event_id,
        "player": player,
        "type": "flight.completed",
        "occurred_at": when.isoformat(),
        "attributes": {"destination": destination, **attributes},
    }


async def boards_settled(redis: Redis, tenant: str, campaign: str) -> None:
    """Until the app's own rebuild of a campaign's boards is over (the first write to a new
    campaign starts one): a rebuild still running would undo what a test does to Redis."""
    for _ in range(200):
        ready = await redis.exists(keys.ready(tenant, campaign))
        busy = await redis.exists(keys.rebuilding(tenant, campaign), keys.RECONCILING)
        if ready and not busy:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the boards of {campaign} were not rebuilt")


def hours_ago(hours: float) -> datetime:
    return datetime.now(UTC) - timedelta(hours=hours)


# Campaign documents, after API.md's "Earn your wings".
DESTINATIONS = ["YVR", "YYC", "YEG", "YWG", "YUL", "YOW", "YHZ", "YQB", "YYJ", "YXE", "LHR", "CDG"]


def earn_your_wings(
    *, starts_at: datetime | None = None, days: int = 90, campaign_id: str = "earn-your-wings"
) -> dict[str, Any]:
    """The API.md campaign, live now unless `starts_at` says otherwise."""
    start = starts_at or datetime.now(UTC) - timedelta(days=30)
    destination_badges = [
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
        for code in DESTINATIONS
    ]
    return {
        "id": campaign_id,
        "name": "Earn your wings",
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(days=days)).isoformat(),
        "timezone": "America/Toronto",
        "grace": "PT12H",
        "badges": [
            *destination_badges,
            {
                "id": "explorer",
                "name": "Ten destinations",
                "points": 5,
                "criteria": {
                    "kind": "distinct",
                    "event": "flight.completed",
                    "attribute": "destination",
                    "threshold": 10,
                },
            },
        ],
        "scoring": [{"event": "flight.completed", "points": 0}],
        "leaderboards": ["campaign", "weekly"],
        "prize_pool": {
            "amount": 10_000_000,
            "unit": "miles",
            "split": "proportional",
            "basis": "badges",
            "eligibility": {"min_badges": 1},
        },
        "loyalty": {"url": "https://loyalty.example/credits", "secret": "whsec_0123456789abcdef"},
    }


# Flights and the results a plain reference fold (independent of the engine) gives them.
EXPLORER_AT = 10


def make_flights(rng: random.Random, players: int, most: int) -> list[dict[str, Any]]:
    start = datetime.now(UTC) - timedelta(days=29)
    flights = []
    for p in range(players):
        for f in range(rng.randint(1, most)):
            when = start + timedelta(seconds=rng.randrange(28 * 24 * 3600))
            flights.append(
                {
                    "id": f"pnr-{p}-{f}",
                    "player": f"p-{p}",
                    "type": "flight.completed",
                    # a few flights share an instant, to exercise the (occurred_at, id) order
                    "occurred_at": when.replace(minute=0, second=0).isoformat(),
                    "attributes": {"destination": rng.choice(DESTINATIONS)},
                }
            )
    return flights


def reference(flights: list[dict[str, Any]]) -> dict[str, tuple[int, dict[str, datetime]]]:
    """Score and badge times per player, by the definition: a fold in (occurred_at, id) order."""
    ordered = sorted(flights, key=lambda f: (datetime.fromisoformat(f["occurred_at"]), f["id"]))
    held: dict[str, dict[str, datetime]] = {}
    for flight in ordered:
        badges = held.setdefault(flight["player"], {})
        code, when = (
            flight["attributes"]["destination"],
            datetime.fromisoformat(flight["occurred_at"]),
        )
        badges.setdefault(code.lower(), when)
        if len(badges.keys() - {"explorer"}) >= EXPLORER_AT:
            badges.setdefault("explorer", when)
    return {player: (len(b) + 4 * ("explorer" in b), b) for player, b in held.items()}


async def post_batches(
    client: AsyncTestClient[Litestar],
    headers: dict[str, str],
    flights: list[dict[str, Any]],
    rng: random.Random,
) -> list[dict[str, Any]]:
    results = []
    i = 0
    while i < len(flights):
        size = rng.randint(1, 250)
        batch = flights[i : i + size]
        response = await client.post("/v1/events", json={"events": batch}, headers=headers)
        assert response.status_code == 200, response.text
        results += response.json()["results"]
        i += size
    return results


async def racing(
    client: AsyncTestClient[Litestar],
    headers: dict[str, str],
    flights: list[dict[str, Any]],
    clients: int = 8,
    first_seed: int = 0,
) -> list[list[dict[str, Any]]]:
    """Every client sends all the flights, each in its own shuffled order and batching (seeded
    from `first_seed` on), at once; returns each client's results."""

    async def one_client(seed: int) -> list[dict[str, Any]]:
        mine = list(flights)
        random.Random(seed).shuffle(mine)
        return await post_batches(client, headers, mine, random.Random(seed))

    seeds = range(first_seed, first_seed + clients)
    return list(await asyncio.gather(*(one_client(seed) for seed in seeds)))


def accepted_once(outcomes: list[list[dict[str, Any]]], flights: list[dict[str, Any]]) -> bool:
    """Whether each flight was accepted by exactly one of the racing clients."""
    accepted = Counter(
        r["id"] for results in outcomes for r in results if r["status"] == "accepted"
    )
    return accepted == Counter({f["id"]: 1 for f in flights})


# Boards as a reader sees them.
def expected_board(flights: list[dict[str, Any]], starts_at: datetime) -> list[tuple[str, int]]:
    """(player, points) best first: more points, then the earlier reached (to the second),
    then, as Redis orders equal scores, the greater player id."""
    rows = []
    for player, (points, badges) in reference(flights).items():
        reached = max(badges.values())
        rows.append((player, points, int((reached - starts_at).total_seconds())))
    rows.sort(key=lambda r: r[0], reverse=True)
    rows.sort(key=lambda r: (-r[1], r[2]))
    return [(player, points) for player, points, _ in rows]


async def read_board(
    client: AsyncTestClient[Litestar],
    headers: dict[str, str],
    limit: int = 300,
    path: str = "/v1/campaigns/earn-your-wings/leaderboard",
    **params: str,
) -> list[dict[str, Any]]:
    """Every entry of a board, page by page; the pages add up to its total."""
    entries: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {"limit": str(limit), **params, **({"after": cursor} if cursor else {})}
        page = await client.get(path, params=query, headers=headers)
        assert page.status_code == 200, page.text
        body = page.json()
        entries += body["entries"]
        cursor = body["next"]
        if cursor is None:
            assert body["total"] == len(entries)
            return entries


class Service:
    """`gamify serve` in a subprocess on the session's servers, as an operator runs it, with
    `workers` Granian worker processes; extra `env` entries are GAMIFY_* settings. Stop it with
    `stop()` (or `kill()` for a crash)."""

    def __init__(
        self, servers: Servers, database_url: str, data_dir: Path, workers: int = 1, **env: str
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir / "serve.log"
        environment = {k: v for k, v in os.environ.items() if not k.startswith("GAMIFY_")}
        environment |= {
            "GAMIFY_DATABASE_URL": database_url,
            "GAMIFY_REDIS_URL": servers.redis_url,
            "GAMIFY_ADMIN_TOKEN": ADMIN_TOKEN,
            "GAMIFY_SECRET": "property-secret-" + "x" * 32,
            "GAMIFY_DATA_DIR": str(data_dir / "data"),
            "GAMIFY_LOG_LEVEL": "WARNING",
        } | env
        serve = ["serve", "--port", str(self.port), "--workers", str(workers)]
        with self.log.open("wb") as out:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gamify", *serve],
                env=environment,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"gamify serve exited early:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        pytest.fail(f"gamify serve was not ready within {timeout} s:\n{self.output()}")

    def stop(self) -> None:
        try:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                self.process.wait(timeout=15)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """SIGKILL, as a crash: nothing runs its shutdown."""
        self.process.kill()
        self.process.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def explain(self, response: httpx.Response) -> str:
        """The response, and what the server logged about it (a 5xx quotes a request id)."""
        request_id = response.headers.get("x-request-id", "?")
        logged = [line for line in self.output().splitlines() if request_id in line]
        request = response.request
        return (
            f"{request.method} {request.url} -> {response.status_code}\n"
            f"request body: {request.content[:2000]!r}\n"
            f"response: {response.text[:2000]}\n" + "\n".join(logged)[-6000:]
        )
