"""Leaderboard watchers: a snapshot on subscribe, then a new one when the top changes.

Each instance reads each watched board once per TICK (at most 4 snapshots a second), however
many sockets watch it, as deep as its deepest watcher, and hands every watcher the slice it
asked for when that slice changed. Reading rather than listening to writes makes no write pay
for watchers, and hears the writes of every instance alike. `version` is the snapshot's time in
milliseconds, raised by one when needed, so it increases per board on every instance and across
reconnects to another one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import date

import msgspec

from gamify.boards import reads
from gamify.boards.batch import ReadBatcher
from gamify.boards.names import DisplayNames
from gamify.boards.reader import Entry
from gamify.boards.service import Boards
from gamify.live.connection import Backlog, Connection
from gamify.live.protocol import Leaderboard, encode
from gamify.platform.cancellation import stop_if_cancelled

log = logging.getLogger(__name__)

TICK = 0.25
BEHIND_AT_LEAST = 100
FANOUT_CHUNK = 256


class Topic(msgspec.Struct, frozen=True):
    """A board as a client names it (a window board without a period is the current one)."""

    tenant: str
    campaign: str
    board: str
    period: date | None


class Watch:
    __slots__ = ("entries", "ref", "version", "watchers")

    def __init__(self, ref: reads.BoardRef) -> None:
        self.ref = ref
        self.watchers: dict[Connection, int] = {}
        self.entries: list[Entry] | None = None
        self.version = 0

    @property
    def depth(self) -> int:
        return max(self.watchers.values(), default=0)

    def snapshot(self, topic: Topic, top: int) -> str:
        assert self.entries is not None
        return encode(
            Leaderboard(
                topic.campaign, topic.board, self.version, self.entries[:top], self.ref.period
            )
        ).decode()


class Watches:
    def __init__(
        self, boards: Boards, batcher: ReadBatcher, names: DisplayNames, backlog: Backlog
    ) -> None:
        self.boards = boards
        self.backlog = backlog
        self.batcher = batcher
        self.names = names
        self.watches: dict[Topic, Watch] = {}
        self._task: asyncio.Task[None] | None = None
        self.reads = 0  # board reads, for tests: once per board and tick

    async def watch(self, connection: Connection, topic: Topic, top: int) -> None:
        """Add a watcher and send it a snapshot; an ApiError for a board the tenant lacks."""
        watch = self.watches.get(topic)
        if watch is None:
            ref = await reads.resolve(
                self.boards, topic.tenant, topic.campaign, topic.board, topic.period
            )
            watch = self.watches.setdefault(topic, Watch(ref))
        deeper = top > watch.depth
        watch.watchers[connection] = top
        connection.topics[topic] = top
        if watch.entries is None or deeper:
            await self._read(watch)
        connection.offer(topic, watch.snapshot(topic, top))

    def unwatch(self, connection: Connection, topic: Topic) -> None:
        connection.topics.pop(topic, None)
        watch = self.watches.get(topic)
        if watch is None:
            return
        watch.watchers.pop(connection, None)
        if not watch.watchers:
            del self.watches[topic]

    def unwatch_all(self, connection: Connection) -> None:
        for topic in list(connection.topics):
            if isinstance(topic, Topic):
                self.unwatch(connection, topic)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="live-watchers")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            stop_if_cancelled()  # a read below may have returned after meeting it
            if self._behind():
                continue
            for topic, watch in list(self.watches.items()):
                try:
                    await self._refresh(topic, watch)
                except Exception:
                    stop_if_cancelled()
                    log.warning("a watched board could not be read", exc_info=True)

    def _behind(self) -> bool:
        """Whether many of the last snapshots are still waiting to go out: then the loop is
        behind, and a new round would only delay every socket's `me` frames further. A few
        slow sockets (each holds at most one snapshot per board) do not hold the others up."""
        watchers = sum(len(watch.watchers) for watch in self.watches.values())
        return self.backlog.waiting > max(BEHIND_AT_LEAST, watchers // 10)

    async def _refresh(self, topic: Topic, watch: Watch) -> None:
        before = watch.entries
        await self._read(watch)
        if watch.entries == before:
            return
        after = watch.entries or []
        frames: dict[int, str | None] = {}  # per depth: its snapshot, None when unchanged
        for count, (connection, top) in enumerate(list(watch.watchers.items()), 1):
            if top not in frames:
                same = before is not None and before[:top] == after[:top]
                frames[top] = None if same else watch.snapshot(topic, top)
            frame = frames[top]
            if frame is not None:
                connection.offer(topic, frame)
            if count % FANOUT_CHUNK == 0:
                # Let the `me` frames heard meanwhile queue between these sockets' snapshots
                # rather than behind all of them.
                await asyncio.sleep(0)

    async def _read(self, watch: Watch) -> None:
        page = await reads.page(
            self.boards, self.batcher, self.names, watch.ref, max(watch.depth, 1), None, fresh=True
        )
        self.reads += 1
        watch.entries = page.entries
        watch.version = max(watch.version + 1, int(time.time() * 1000))
