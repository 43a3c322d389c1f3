"""One socket: what it is subscribed to, the frames waiting for it, and its catch-ups.

Frames wait in a bounded queue that one writer task drains, so a client that reads slowly
only ever slows its own socket. A `me` subscriber more than ME_QUEUE_LIMIT frames behind is
sent `{"type":"error","detail":"resume"}` and closed (4408) to come back with `resume`; a
leaderboard watcher keeps only the latest snapshot of each board, so it skips to it.

`me` frames arrive from the player's shard channel with their seq (fanout.py). The last seq
sent is kept: a frame at or below it is a repeat and dropped, a frame above the next one shows
a gap (a pub/sub connection that was down) and starts a catch-up from the stream. A catch-up
(also `resume`, and the `me` subscription itself) holds the live frames that arrive meanwhile
and releases them afterwards, dropping those the replay sent: subscribe first, read the
history second, so nothing published in between is lost.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Hashable
from typing import Any, Protocol

from litestar import WebSocket
from redis.exceptions import RedisError

from gamify.live import streams
from gamify.live.protocol import Error, Resumed, encode
from gamify.platform import metrics
from gamify.platform.cancellation import stop_if_cancelled
from gamify.tenants.guards import Principal

log = logging.getLogger(__name__)

ME_QUEUE_LIMIT = 1000
SEND_TIMEOUT = 10.0  # a send that does not finish within this is a client gone or stuck
SLOW_CLOSE = 4408
STUCK_CLOSE = 1011
EXPIRED_CLOSE = 4401
_CLOSE_REASONS = {SLOW_CLOSE: "resume", EXPIRED_CLOSE: "token expired"}

Frames = list[tuple[int, bytes]]
_RESUME = encode(Error("resume")).decode()


class Backlog:
    """Snapshots offered and not yet sent, over every socket of the instance: the watchers
    wait for it to drain rather than pile new snapshots on a loop that is behind."""

    __slots__ = ("waiting",)

    def __init__(self) -> None:
        self.waiting = 0


class Feed(Protocol):
    """Where a connection reads a player's stream (the Redis client)."""

    async def replay(self, tenant: str, player: str, first: int) -> streams.Replayed: ...
    async def last_seq(self, tenant: str, player: str) -> int | None: ...


class Connection:
    __slots__ = (
        "_backlog",
        "_catching_up",
        "_close_code",
        "_close_reason",
        "_feed",
        "_frames",
        "_held",
        "_snapshots",
        "_sync_lock",
        "_wake",
        "expires_at",
        "last_sent",
        "last_seq",
        "me",
        "principal",
        "reader",
        "sending_since",
        "socket",
        "topics",
        "writer",
    )

    def __init__(
        self,
        socket: WebSocket[Any, Any, Any],
        principal: Principal,
        feed: Feed,
        backlog: Backlog | None = None,
    ) -> None:
        self.socket = socket
        self._backlog = backlog or Backlog()
        self.principal = principal
        self._feed = feed
        self.me = False
        self.last_seq: int | None = None
        self.last_sent = time.monotonic()
        self.topics: dict[Hashable, int] = {}  # watched boards, with how many entries each
        self.sending_since: float | None = None
        self.expires_at = math.inf  # when the credential expires, in Unix seconds
        self.reader: asyncio.Task[Any] | None = None  # the task reading the socket
        self.writer: asyncio.Task[None] | None = None
        self._frames: deque[str] = deque()
        self._snapshots: dict[Hashable, str] = {}
        self._wake = asyncio.Event()
        self._catching_up = False
        self._held: Frames = []
        self._sync_lock: asyncio.Lock | None = None
        self._close_code: int | None = None
        self._close_reason: str | None = None

    @property
    def tenant(self) -> str:
        return self.principal.tenant

    # Sending.
    def send(self, frame: str) -> None:
        """Queue a frame that is not a `me` message (an answer, an error, a ping)."""
        self._frames.append(frame)
        self._wake.set()

    def offer(self, topic: Hashable, snapshot: str) -> None:
        """The board's latest snapshot: replaces one not yet sent."""
        if topic not in self._snapshots:
            self._backlog.waiting += 1
        self._snapshots[topic] = snapshot
        self._wake.set()

    async def write_forever(self) -> None:
        """The writer task: frames in order, then the latest snapshots. A send that hangs is
        found by `stuck` (no timer per send: a frame to each of 10,000 sockets must stay cheap)."""
        send = self.socket.send
        while self._close_code is None or self._frames:
            await self._wake.wait()
            self._wake.clear()
            while self._frames or self._snapshots:
                if self._frames:
                    frame = self._frames.popleft()
                else:
                    topic = next(iter(self._snapshots))
                    frame = self._snapshots.pop(topic)
                    self._backlog.waiting -= 1
                self.sending_since = time.monotonic()
                await send({"type": "websocket.send", "text": frame, "bytes": None})
                self.last_sent, self.sending_since = self.sending_since, None
                _counted(frame)
        code = self._close_code or SLOW_CLOSE
        await self.socket.close(code, self._close_reason or _CLOSE_REASONS.get(code))

    def drop_snapshots(self) -> None:
        self._backlog.waiting -= len(self._snapshots)
        self._snapshots.clear()

    def expire(self, reason: str | None = None) -> None:
        """The player token expired, or the API key was revoked: closed with 4401, to come back
        with a new one."""
        self._frames.clear()
        self._close_code = EXPIRED_CLOSE
        self._close_reason = reason
        self._wake.set()

    def stuck(self, now: float) -> bool:
        return self.sending_since is not None and now - self.sending_since > SEND_TIMEOUT

    def abort(self) -> None:
        """Stop a socket whose client stopped reading: its tasks go, and with them the socket."""
        self._close_code = STUCK_CLOSE
        for task in (self.writer, self.reader):
            if task is not None:
                task.cancel()

    @property
    def aborted(self) -> bool:
        return self._close_code == STUCK_CLOSE

    def _overflow(self) -> None:
        log.info("a `me` subscriber fell %d frames behind; closing it", ME_QUEUE_LIMIT)
        self._frames.clear()
        self.drop_snapshots()
        self._held.clear()
        self._frames.append(_RESUME)
        self._close_code = SLOW_CLOSE
        self._wake.set()

    # `me` frames.
    def hear(self, frames: Frames) -> None:
        """Frames published to the player's channel, in seq order."""
        if self._close_code is not None or not self.me:
            return
        if self._catching_up:
            self._held += frames
            if len(self._held) > ME_QUEUE_LIMIT:
                self._overflow()
            return
        for at, (seq, frame) in enumerate(frames):
            if self.last_seq is not None and seq <= self.last_seq:
                continue
            if self.last_seq is not None and seq > self.last_seq + 1:
                self._held = frames[at:]
                self._catching_up = True
                self.spawn(self.sync(self.last_seq, announce=False))
                return
            self._send_me(seq, frame)

    def _send_me(self, seq: int, frame: bytes) -> None:
        self.last_seq = seq
        self._frames.append(frame.decode())
        self._wake.set()
        if len(self._frames) > ME_QUEUE_LIMIT:
            self._overflow()

    def recover(self) -> None:
        """After the pub/sub connection was down: whatever was published meanwhile."""
        if self.me and self._close_code is None:
            self.spawn(self._recover())

    async def _recover(self) -> None:
        # Read under the lock: a catch-up under way sets where this one starts.
        async with self._lock():
            after = self.last_seq
        if after is not None:
            await self.sync(after, announce=False)

    async def sync(self, after: int | None, announce: bool) -> None:
        """Catch up from `after` (None: from now on, as a fresh subscription does), holding
        live frames meanwhile; with `announce`, answer `resume` with `resumed`."""
        async with self._lock():
            self._catching_up = True
            try:
                recovered = await self._catch_up(after)
                if announce and after is not None and self._close_code is None:
                    self.send(encode(Resumed(after, recovered)).decode())
                await self._release()
            finally:
                self._catching_up = False

    def _lock(self) -> asyncio.Lock:
        """The lock of this socket's catch-ups, made on first use: most sockets never need
        one, and 10,000 idle sockets should not hold 10,000 locks."""
        if self._sync_lock is None:
            self._sync_lock = asyncio.Lock()
        return self._sync_lock

    async def _catch_up(self, after: int | None) -> bool:
        tenant, player = self.tenant, self.principal.player or ""
        try:
            if after is None:
                self.last_seq = await self._feed.last_seq(tenant, player) or 0
                return True
            return await self._replay(tenant, player, after)
        except RedisError:
            stop_if_cancelled()
            log.warning("a player's stream could not be read", exc_info=True)
            return False

    async def _replay(self, tenant: str, player: str, after: int) -> bool:
        recovered: bool | None = None
        first = after + 1
        while self._close_code is None:
            page = await self._feed.replay(tenant, player, first)
            if recovered is None:
                held = page.frames[0][0] == first if page.frames else page.last == after
                recovered = held
                self.last_seq = after if page.last is None else min(after, page.last)
            for seq, frame in page.frames:
                self._send_me(seq, frame)
            if len(page.frames) < streams.REPLAY_PAGE:
                break
            first = page.frames[-1][0] + 1
            await self._drained()
        return bool(recovered)

    async def _release(self) -> None:
        """Send the frames held during a catch-up, catching up again over any gap."""
        while self._held and self._close_code is None:
            held, self._held = self._held, []
            for at, (seq, frame) in enumerate(held):
                if self.last_seq is not None and seq <= self.last_seq:
                    continue
                if self.last_seq is not None and seq > self.last_seq + 1:
                    self._held = held[at:] + self._held
                    await self._replay(self.tenant, self.principal.player or "", self.last_seq)
                    break
                self._send_me(seq, frame)

    async def _drained(self) -> None:
        while len(self._frames) > streams.REPLAY_PAGE and self._close_code is None:
            await asyncio.sleep(0.01)

    def spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        _running.add(task)
        task.add_done_callback(_running.discard)

    @property
    def closing(self) -> bool:
        return self._close_code is not None

    def hold(self) -> None:
        """Hold live `me` frames until the catch-up that follows releases them."""
        self._catching_up = True


_running: set[asyncio.Future[None]] = set()  # the loop keeps only weak references to tasks
_sent_by_type: dict[str, Any] = {}  # the metric's child per message type, looked up once
_TYPE = '"type":"'


def _counted(frame: str) -> None:
    """Counts a sent frame by its type, read from the text (every frame has one)."""
    start = frame.find(_TYPE) + len(_TYPE)
    kind = frame[start : frame.find('"', start)]
    child = _sent_by_type.get(kind)
    if child is None:
        child = _sent_by_type[kind] = metrics.WEBSOCKET_MESSAGES.labels(kind)
    child.inc()
