"""The Redis (Valkey) client."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, TimeoutError


def connect(url: str) -> Redis:
    # Short timeouts: Redis holds derived data only, so a slow Redis must fail fast and leave
    # the request to Postgres rather than hang it. Two quick retries replace the pooled
    # connections a Redis restart broke, without stalling requests through an outage.
    client: Redis = Redis.from_url(
        url,
        socket_connect_timeout=2,
        socket_timeout=5,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 2),
        retry_on_error=[ConnectionError, TimeoutError],
    )
    return client
