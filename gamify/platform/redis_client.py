"""The Redis (Valkey) client: one server, or a Redis Cluster (`redis+cluster://host:port`)."""

from __future__ import annotations

from typing import Any, cast

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, TimeoutError

CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")


def connect(url: str) -> Redis:
    # Short timeouts: Redis holds derived data only, so a slow Redis must fail fast and leave
    # the request to Postgres rather than hang it. Two quick retries replace the pooled
    # connections a Redis restart broke, without stalling requests through an outage.
    options: dict[str, Any] = {
        "socket_connect_timeout": 2,
        "socket_timeout": 5,
        "retry": Retry(ExponentialBackoff(cap=0.2, base=0.02), 2),
    }
    if url.startswith(CLUSTER_SCHEMES):
        # Every key of a campaign carries its hash tag, so each board write and each Function
        # call stays in one slot; the cluster client routes them and loads the Function on
        # every primary. It answers the same calls gamify makes of a single server.
        cluster = RedisCluster.from_url(url.replace("+cluster", "", 1), **options)
        return cast(Redis, cluster)
    client: Redis = Redis.from_url(
        url, health_check_interval=30, retry_on_error=[ConnectionError, TimeoutError], **options
    )
    return client
