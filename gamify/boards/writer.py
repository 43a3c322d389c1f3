"""After commit: absolute scores to Redis in one pipeline; old and new ranks back."""

from __future__ import annotations

import logging
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from gamify.boards import functions, keys
from gamify.boards.updates import BoardUpdate
from gamify.platform import metrics

log = logging.getLogger(__name__)

Ranks = dict[tuple[str, str], tuple[int | None, int | None]]  # (key, player) -> before, after
Wanted = set[tuple[str, str, str]]  # (campaign, board key, player) whose rank is asked for


class BoardWriter:
    """Writes a committed batch's board scores and reads the ranks its results show.

    `on_missing(tenant, campaign)` hears of a campaign whose boards are not built (a flushed or
    restarted Redis); `on_failure()` of a write that did not reach Redis; `on_written(keys)`
    of the boards a write changed. Postgres stays the truth to rebuild from either way.
    """

    def __init__(
        self,
        redis: Redis,
        on_missing: Callable[[str, str], object],
        on_failure: Callable[[], None],
        on_written: Callable[[list[str]], None],
    ) -> None:
        self.redis = redis
        self.on_missing = on_missing
        self.on_failure = on_failure
        self.on_written = on_written

    async def write(self, tenant: str, updates: list[BoardUpdate], wanted: Wanted) -> Ranks:
        """Write `updates` and return the ranks before and after of what they wrote and of
        `wanted`; empty when Redis could not be reached (the reconciler replays it)."""
        if not wanted and not updates:
            return {}
        try:
            ranks = await functions.loading(
                self.redis, lambda: self._write(tenant, updates, wanted)
            )
        except RedisError:
            log.warning(
                "board update not written to Redis; the reconciler will replay it", exc_info=True
            )
            self.on_failure()
            metrics.redis_answered(False)
            return {}
        metrics.redis_answered(True)
        self.on_written([score.key for update in updates for score in update.scores])
        return ranks

    async def _write(self, tenant: str, updates: list[BoardUpdate], wanted: Wanted) -> Ranks:
        """One Function call per campaign (all its keys share a cluster slot), pipelined."""
        calls: dict[str, _Call] = {}

        def call(campaign: str, windows_expire_at: int = 0) -> _Call:
            if campaign not in calls:
                calls[campaign] = _Call(tenant, campaign, windows_expire_at)
            return calls[campaign]

        for update in updates:
            call(update.campaign, update.windows_expire_at).write(update)
        written = {(score.key, u.player) for u in updates for score in u.scores}
        for campaign, key, player in sorted(wanted):
            if (key, player) not in written:
                call(campaign).read(key, player)
        async with self.redis.pipeline(transaction=False) as pipe:
            for each in calls.values():
                pipe.fcall(functions.WRITE, len(each.keys), *each.keys, *each.args())
            replies = await pipe.execute()
        ranks: Ranks = {}
        for campaign, each, reply in zip(calls, calls.values(), replies, strict=True):
            if not reply[0]:
                self.on_missing(tenant, campaign)
            each.ranks(reply, ranks)
        return ranks


class _Call:
    """The arguments of one `gamify_write` call, and how to read its reply."""

    def __init__(self, tenant: str, campaign: str, windows_expire_at: int) -> None:
        self.keys = [keys.ready(tenant, campaign)]
        self.windows_expire_at = windows_expire_at
        self._index: dict[str, int] = {}
        self._writes: list[BoardUpdate] = []
        self._write_args: list[str | int] = []
        self._reads: list[tuple[str, str]] = []
        self._read_args: list[str | int] = []

    def _key(self, key: str) -> int:
        """The 1-based position of `key` in KEYS (Lua counts from 1)."""
        if key not in self._index:
            self.keys.append(key)
            self._index[key] = len(self.keys)
        return self._index[key]

    def write(self, update: BoardUpdate) -> None:
        self._writes.append(update)
        self._write_args += [update.player, update.version, len(update.scores)]
        for score in update.scores:
            version_key = (
                0 if score.period is None else self._key(keys.version(score.key, update.player))
            )
            self._write_args += [self._key(score.key), score.mode, score.encoded or 0, version_key]

    def read(self, key: str, player: str) -> None:
        self._reads.append((key, player))
        self._read_args += [self._key(key), player]

    def args(self) -> list[str | int]:
        return [len(self._writes), self.windows_expire_at, *self._write_args, *self._read_args]

    def ranks(self, reply: list[int], into: Ranks) -> None:
        at = 1
        for update in self._writes:
            for score in update.scores:
                old, new = reply[at], reply[at + 1]
                at += 2
                into[(score.key, update.player)] = (_rank(old), _rank(new))
        for read in self._reads:
            current = _rank(reply[at])
            at += 1
            into[read] = (current, current)


def _rank(zero_based: int) -> int | None:
    return zero_based + 1 if zero_based >= 0 else None
