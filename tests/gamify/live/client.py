"""The live tests' client side: a tenant on a running service, players' tokens, sockets."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from tests.gamify.support import ADMIN, Service, bearer

DESTINATIONS = [f"D{n:02d}" for n in range(20)]
SCOPES = ["read", "events:write", "players:token", "campaigns:write"]


def twenty_destinations(campaign_id: str = "wings") -> dict[str, Any]:
    """A campaign of 20 destination badges, a point each, on the campaign board."""
    start = datetime.now(UTC) - timedelta(days=10)
    return {
        "id": campaign_id,
        "name": "Twenty destinations",
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(days=60)).isoformat(),
        "timezone": "UTC",
        "badges": [
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
        ],
        "leaderboards": ["campaign"],
    }


class Tenant:
    """A fresh tenant on `service` with a key holding every scope."""

    def __init__(self, service: Service, http: httpx.AsyncClient, tenant: str, key: str) -> None:
        self.service = service
        self.http = http
        self.id = tenant
        self.key = key
        self.flights = 0

    @classmethod
    async def create(cls, service: Service, http: httpx.AsyncClient) -> Tenant:
        tenant = f"t-{uuid.uuid4().hex[:10]}"
        created = await http.post(
            f"{service.url}/v1/admin/tenants", json={"id": tenant, "name": tenant}, headers=ADMIN
        )
        assert created.status_code == 201, created.text
        issued = await http.post(
            f"{service.url}/v1/admin/tenants/{tenant}/keys", json={"scopes": SCOPES}, headers=ADMIN
        )
        assert issued.status_code == 201, issued.text
        return cls(service, http, tenant, issued.json()["key"])

    async def campaign(self, document: dict[str, Any]) -> None:
        created = await self.http.post(
            f"{self.service.url}/v1/campaigns", json=document, headers=bearer(self.key)
        )
        assert created.status_code == 201, created.text

    async def token(self, player: str) -> str:
        issued = await self.http.post(
            f"{self.service.url}/v1/players/{player}/token", headers=bearer(self.key)
        )
        assert issued.status_code == 201, issued.text
        token: str = issued.json()["token"]
        return token

    async def fly(self, *trips: tuple[str, str], when: datetime | None = None) -> None:
        """One request: a flight per (player, destination)."""
        at = when or datetime.now(UTC) - timedelta(minutes=1)
        events = []
        for player, destination in trips:
            self.flights += 1
            events.append(
                {
                    "id": f"f-{self.flights}",
                    "player": player,
                    "type": "flight.completed",
                    "occurred_at": at.isoformat(),
                    "attributes": {"destination": destination},
                }
            )
        posted = await self.http.post(
            f"{self.service.url}/v1/events", json={"events": events}, headers=bearer(self.key)
        )
        assert posted.status_code == 200, posted.text

    def socket(self, token: str, service: Service | None = None) -> Any:
        url = (service or self.service).url.replace("http://", "ws://")
        return connect(f"{url}/v1/ws?token={token}")


async def receive(ws: ClientConnection, timeout: float = 10) -> dict[str, Any]:
    frame = await asyncio.wait_for(ws.recv(), timeout)
    message: dict[str, Any] = json.loads(frame)
    return message


async def receive_until(
    ws: ClientConnection, done: Any, timeout: float = 15
) -> list[dict[str, Any]]:
    """Messages (pings left out) until one for which `done(message)` holds, that one included."""
    got: list[dict[str, Any]] = []
    while True:
        message = await receive(ws, timeout)
        if message["type"] == "ping":
            continue
        got.append(message)
        if done(message):
            return got


async def quiet(ws: ClientConnection, wait: float = 0.5) -> list[dict[str, Any]]:
    """Whatever arrives within `wait` seconds (nothing, when all is well)."""
    got = []
    try:
        while True:
            message = await receive(ws, wait)
            if message["type"] != "ping":
                got.append(message)
    except TimeoutError:
        return got


async def subscribed_me(ws: ClientConnection) -> None:
    """Subscribe to `me` and wait until the server took it (a ping answered after it)."""
    await ws.send(json.dumps({"op": "subscribe", "topic": "me"}))
    await ws.send(json.dumps({"op": "ping"}))
    await receive_until(ws, lambda m: m["type"] == "pong")
