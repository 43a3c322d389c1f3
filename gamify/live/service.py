"""Live push on one instance: the publisher, the hub, the watchers, and the open sockets."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from gamify.boards.batch import ReadBatcher
from gamify.boards.names import DisplayNames
from gamify.boards.service import Boards
from gamify.live import streams
from gamify.live.connection import Backlog, Connection
from gamify.live.fanout import Hub
from gamify.live.protocol import Ping, encode
from gamify.live.publisher import Publisher
from gamify.live.watchers import Watches
from gamify.platform import metrics
from gamify.platform.cancellation import stop_if_cancelled
from gamify.tenants import store as tenants
from gamify.tenants.guards import KEY_CACHE_SECONDS

log = logging.getLogger(__name__)

IDLE_PING = 30.0  # a connection that sent nothing for this long is pinged
SWEEP = 1.0  # how often sockets are checked: idle, stuck, or past their token's expiry
# Sockets of revoked API keys are looked for this often: within the time a revoked key keeps
# working for requests.
REVOKED_CHECK = KEY_CACHE_SECONDS / 2
# Listening players are counted in their tenant's audience again this often, well within the
# retention after which a player leaves it (streams.RETENTION_SECONDS).
ATTEND_EVERY = 3600.0
_PING = encode(Ping()).decode()


class RedisFeed:
    """The players' streams, as a connection reads them: through the boards' read batcher, so
    that thousands of sockets subscribing at once share pipelines, not connections."""

    def __init__(self, redis: Redis, batcher: ReadBatcher) -> None:
        self.redis = redis
        self.batcher = batcher

    async def replay(self, tenant: str, player: str, first: int) -> streams.Replayed:
        return await streams.replay(self.redis, self.batcher.call, tenant, player, first)

    async def last_seq(self, tenant: str, player: str) -> int | None:
        return await streams.last_seq(self.batcher.call, tenant, player)


class Live:
    def __init__(
        self,
        redis: Redis,
        url: str,
        boards: Boards,
        batcher: ReadBatcher,
        names: DisplayNames,
        pool: asyncpg.Pool | None = None,
    ) -> None:
        self.redis = redis
        self.pool = pool  # where revoked keys are found
        self.feed = RedisFeed(redis, batcher)
        self.publisher = Publisher(redis)
        self.hub = Hub(redis, url)
        self.backlog = Backlog()
        self.watches = Watches(boards, batcher, names, self.backlog)
        self.connections: set[Connection] = set()
        self._pinger: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # Without Redis now, the library is loaded on first use (streams.loading).
        with contextlib.suppress(Exception):
            await streams.load(self.redis)
        self.publisher.start()
        self.watches.start()
        self._pinger = asyncio.get_running_loop().create_task(self._ping(), name="live-pinger")

    async def stop(self) -> None:
        if self._pinger is not None:
            self._pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pinger
        await self.watches.stop()
        await self.publisher.stop()
        await self.hub.stop()

    async def _attend(self, wall: float) -> None:
        listening: dict[str, list[str]] = defaultdict(list)
        for connection in self.connections:
            if connection.me and connection.principal.player is not None:
                listening[connection.principal.tenant].append(connection.principal.player)
        for tenant, players in listening.items():
            try:
                await streams.attend(self.redis, tenant, players, wall)
            except RedisError:
                stop_if_cancelled()
                log.warning("the live audience was not refreshed: Redis unreachable")

    async def _close_revoked(self) -> None:
        """Sockets opened with an API key since revoked are closed (4401), as soon as a request
        with that key would be refused."""
        keyed = {c: c.principal.key_id for c in self.connections if c.principal.key_id is not None}
        if not keyed or self.pool is None:
            return
        try:
            live = await tenants.live_keys(self.pool, list(set(keyed.values())))
        except (OSError, asyncpg.PostgresError):
            stop_if_cancelled()
            log.warning("revoked keys not checked: Postgres unreachable")
            return
        for connection, key_id in keyed.items():
            if key_id not in live and not connection.closing:
                connection.expire("API key revoked")

    def opened(self, connection: Connection) -> None:
        self.connections.add(connection)
        metrics.WEBSOCKET_CONNECTIONS.inc()

    def closed(self, connection: Connection) -> None:
        if connection in self.connections:
            self.connections.discard(connection)
            metrics.WEBSOCKET_CONNECTIONS.dec()

    async def _ping(self) -> None:
        """Pings idle sockets and drops those whose client stopped reading; keeps the players
        listening in their tenant's audience."""
        attended = checked = time.monotonic()
        while True:
            await asyncio.sleep(SWEEP)
            now, wall = time.monotonic(), time.time()
            if now - attended >= ATTEND_EVERY:
                attended = now
                await self._attend(wall)
            if now - checked >= REVOKED_CHECK:
                checked = now
                await self._close_revoked()
            for connection in list(self.connections):
                if connection.stuck(now):
                    connection.abort()
                elif connection.expires_at <= wall and not connection.closing:
                    connection.expire()
                elif connection.last_sent < now - IDLE_PING:
                    connection.send(_PING)
