"""Per-key request rates, counted in Redis so that the limit holds across instances."""

from __future__ import annotations

import logging
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from gamify.platform import metrics

log = logging.getLogger(__name__)


async def allow(redis: Redis, key_id: int, per_second: int, now: float | None = None) -> float:
    """0 when the request may go on, else the seconds to wait before the next one.

    A fixed one-second window: simple, one round trip, and exact enough for abuse limits.
    When Redis is unreachable the request goes on: a partner's events matter more than the
    limit, and Postgres, the source of truth, is unaffected.
    """
    moment = time.time() if now is None else now
    second = int(moment)
    counter = f"rl:{key_id}:{second}"
    try:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.incr(counter)
            pipe.expire(counter, 2)
            count, _ = await pipe.execute()
    except RedisError:
        log.warning("rate limit of key %s not checked: Redis unreachable", key_id)
        metrics.redis_answered(False)
        return 0.0
    metrics.redis_answered(True)
    if int(count) <= per_second:
        return 0.0
    return max(0.001, second + 1 - moment)
