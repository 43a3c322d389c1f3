"""Fan-out across instances: each instance subscribes to the shard channels of the players whose
sockets it holds, and hands what it hears to those sockets.

Sharded pub/sub (SSUBSCRIBE) everywhere: on a Redis Cluster a channel lives on the node that
owns its slot, so fan-out grows with the cluster, and a single server takes the same commands.
Each node gets one `Shard`: a pub/sub connection of its own, with retries off, so that a
dropped connection surfaces here rather than being quietly replaced. The shard then connects
again, subscribes again, and asks every socket it serves to catch up from its stream: what was
published while it was down is recovered, not lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from gamify.live import streams
from gamify.live.connection import Connection
from gamify.platform.cancellation import stop_if_cancelled

log = logging.getLogger(__name__)

RECONNECT_WAIT = (0.05, 2.0)  # first and longest wait before connecting again
SUBSCRIBE_CHUNK = 500
SUBSCRIBE_WAIT = 5.0

Deliver = Callable[[bytes, bytes], None]  # channel, published data
Recovered = Callable[[set[bytes]], None]  # the channels of a shard that reconnected


class Shard:
    """One pub/sub connection, to one node, and the channels subscribed on it."""

    def __init__(self, connect: Callable[[], Redis], deliver: Deliver, recovered: Recovered):
        self.connect = connect
        self.deliver = deliver
        self.recovered = recovered
        self.channels: set[bytes] = set()
        self._pubsub: PubSub | None = None
        # Subscribed to every channel wanted when it opened: from then on, a new channel is
        # sent at once. Before, `_open` sends it (two coroutines must not open one PubSub).
        self._ready = False
        self._client: Redis | None = None
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._confirming: dict[bytes, list[asyncio.Future[None]]] = {}
        self.connections = 0  # times it connected, for tests

    async def subscribe(self, channel: bytes) -> None:
        """Returns once Redis confirmed the subscription (or after SUBSCRIBE_WAIT): from then
        on every message published to `channel` reaches this instance."""
        self.channels.add(channel)
        confirmed = asyncio.get_running_loop().create_future()
        self._confirming.setdefault(channel, []).append(confirmed)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="live-shard")
        elif self._ready and self._pubsub is not None:
            try:
                await self._pubsub.ssubscribe(channel)
            except RedisError:
                log.info("subscribing failed; the shard reconnects and subscribes again")
        self._changed.set()
        try:
            await asyncio.wait_for(confirmed, SUBSCRIBE_WAIT)
        except TimeoutError:
            # Not lost: the channel's next message shows the gap and starts a catch-up.
            log.warning("a live subscription was not confirmed within %s s", SUBSCRIBE_WAIT)

    async def unsubscribe(self, channel: bytes) -> None:
        self.channels.discard(channel)
        if self._pubsub is not None:
            # On failure, the next connection subscribes only to what is still wanted.
            with contextlib.suppress(RedisError):
                await self._pubsub.sunsubscribe(channel)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._close()

    async def _run(self) -> None:
        wait = RECONNECT_WAIT[0]
        lost = False
        while True:
            if not self.channels:
                self._changed.clear()
                await self._changed.wait()
                continue
            try:
                await self._open()
                if lost:
                    self.recovered(set(self.channels))
                lost = False
                wait = RECONNECT_WAIT[0]
                await self._listen()
                await self._close()  # nothing left to listen to
                continue
            except (RedisError, OSError):
                stop_if_cancelled()
                log.warning("live pub/sub connection lost; connecting again", exc_info=True)
                lost = True
            await self._close()
            await asyncio.sleep(wait)
            wait = min(wait * 2, RECONNECT_WAIT[1])

    async def _open(self) -> None:
        self._client = self.connect()
        self._pubsub = self._client.pubsub()
        sent: set[bytes] = set()
        while missing := list(self.channels - sent):
            for at in range(0, len(missing), SUBSCRIBE_CHUNK):
                chunk = missing[at : at + SUBSCRIBE_CHUNK]
                await self._pubsub.ssubscribe(*chunk)
                sent.update(chunk)
        self._ready = True
        self.connections += 1

    async def _listen(self) -> None:
        assert self._pubsub is not None
        while self.channels:
            message = await self._pubsub.get_message(timeout=1.0)
            if message is None:
                continue
            kind = message["type"]
            if kind == "smessage":
                self.deliver(message["channel"], message["data"])
            elif kind == "ssubscribe":
                for confirmed in self._confirming.pop(message["channel"], []):
                    if not confirmed.done():
                        confirmed.set_result(None)

    async def _close(self) -> None:
        pubsub, client, self._pubsub, self._client = self._pubsub, self._client, None, None
        self._ready = False
        try:
            if pubsub is not None:
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            if client is not None:
                await client.aclose()
        except (RedisError, OSError):
            pass


class Hub:
    """The sockets of this instance by player, and the shards their channels live on."""

    def __init__(self, redis: Redis, url: str) -> None:
        self.redis = redis
        self.url = url
        self.players: dict[tuple[str, str], set[Connection]] = {}
        self.shards: dict[str, Shard] = {}

    async def join(self, connection: Connection) -> None:
        key = (connection.tenant, connection.principal.player or "")
        joined = self.players.setdefault(key, set())
        joined.add(connection)
        if len(joined) == 1:
            channel = streams.channel(*key).encode()
            await self._shard(channel).subscribe(channel)

    async def leave(self, connection: Connection) -> None:
        key = (connection.tenant, connection.principal.player or "")
        joined = self.players.get(key)
        if joined is None or connection not in joined:
            return
        joined.discard(connection)
        if not joined:
            del self.players[key]
            channel = streams.channel(*key).encode()
            await self._shard(channel).unsubscribe(channel)

    async def stop(self) -> None:
        for shard in self.shards.values():
            await shard.stop()

    def deliver(self, channel: bytes, data: bytes) -> None:
        joined = self.players.get(streams.player_of(channel))
        if not joined:
            return
        frames = streams.split_published(data)
        for connection in list(joined):
            connection.hear(frames)

    def recovered(self, channels: set[bytes]) -> None:
        for channel in channels:
            for connection in list(self.players.get(streams.player_of(channel), ())):
                connection.recover()

    def _shard(self, channel: bytes) -> Shard:
        address, connect = self._node_of(channel)
        shard = self.shards.get(address)
        if shard is None:
            shard = self.shards[address] = Shard(connect, self.deliver, self.recovered)
        return shard

    def _node_of(self, channel: bytes) -> tuple[str, Callable[[], Redis]]:
        if not isinstance(self.redis, RedisCluster):
            return "", lambda: _pubsub_client(self.url)
        node = self.redis.get_node_from_key(channel.decode())
        url = _with_address(self.url.replace("+cluster", "", 1), node.host, node.port)
        return node.name, lambda: _pubsub_client(url)


def _pubsub_client(url: str) -> Redis:
    options: dict[str, Any] = {
        "socket_connect_timeout": 2,
        "socket_keepalive": True,
        "health_check_interval": 15,
        # No silent reconnects: a dropped connection must reach Shard._run (see above).
        "retry": Retry(NoBackoff(), 0),
    }
    client: Redis = Redis.from_url(url, **options)
    return client


def _with_address(url: str, host: str, port: int) -> str:
    parts = urlsplit(url)
    credentials, _, _ = parts.netloc.rpartition("@")
    netloc = f"{credentials}@{host}:{port}" if credentials else f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=netloc))
