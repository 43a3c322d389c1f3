"""The Redis (Valkey) client."""

from __future__ import annotations

from redis.asyncio import Redis


def connect(url: str) -> Redis:
    # Short timeouts: Redis holds derived data only, so a slow Redis must fail fast and
    # leave the request to Postgres rather than hang it.
    client: Redis = Redis.from_url(
        url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30
    )
    return client
