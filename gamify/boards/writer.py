"""After commit: absolute scores to Redis in one pipeline, ranks back into the results."""

from __future__ import annotations

import logging
from collections.abc import Callable

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from gamify.boards import functions, keys
from gamify.boards.updates import BoardUpdate
from gamify.wire import EventResult, ScoreOut

log = logging.getLogger(__name__)

Ranks = dict[tuple[str, str], tuple[int | None, int | None]]  # (key, player) -> before, after


class BoardWriter:
    """Writes a committed batch's board scores and ranks its results.

    `on_missing(tenant, campaign)` hears of a campaign whose boards are not built (a flushed or
    restarted Redis); `on_failure()` of a write that did not reach Redis; `on_written(keys)`
    of the boards a write changed. Either way the
    results still go out, without ranks, and Postgres stays the truth to rebuild from.
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

    async def rank(
        self,
        tenant: str,
        results: list[EventResult],
        players: list[str],
        updates: list[BoardUpdate],
    ) -> list[EventResult]:
        wanted = {
            (self._key(tenant, score), player)
            for result, player in zip(results, players, strict=True)
            for score in result.scores
        }
        if not wanted and not updates:
            return results
        try:
            try:
                ranks = await self._write(tenant, updates, wanted)
            except ResponseError as exc:
                if not functions.missing(exc):
                    raise
                # A Redis restarted empty has lost the library too: load it and go again.
                await functions.load(self.redis)
                ranks = await self._write(tenant, updates, wanted)
        except RedisError:
            log.warning(
                "board update not written to Redis; the reconciler will replay it", exc_info=True
            )
            self.on_failure()
            return results
        self.on_written([score.key for update in updates for score in update.scores])
        return [
            self._with_ranks(tenant, result, player, ranks)
            for result, player in zip(results, players, strict=True)
        ]

    async def _write(
        self, tenant: str, updates: list[BoardUpdate], wanted: set[tuple[str, str]]
    ) -> Ranks:
        written = {(score.key, u.player) for u in updates for score in u.scores}
        reads = sorted(wanted - written)
        async with self.redis.pipeline(transaction=False) as pipe:
            for update in updates:
                board_keys = [update.ready_key, *(s.key for s in update.scores)]
                pipe.fcall(
                    functions.SET_SCORES,
                    len(board_keys),
                    *board_keys,
                    update.player,
                    *(part for s in update.scores for part in (s.mode, s.encoded or 0)),
                )
            for key, player in reads:
                pipe.zrevrank(key, player)
            replies = await pipe.execute()
        ranks: Ranks = {}
        for update, reply in zip(updates, replies, strict=False):
            if not reply[0]:
                self.on_missing(tenant, update.campaign)
            for i, score in enumerate(update.scores):
                old, new = reply[1 + 2 * i], reply[2 + 2 * i]
                ranks[(score.key, update.player)] = (
                    old + 1 if old >= 0 else None,
                    new + 1 if new >= 0 else None,
                )
        for (key, player), rank in zip(reads, replies[len(updates) :], strict=True):
            current = rank + 1 if rank is not None else None
            ranks[(key, player)] = (current, current)
        return ranks

    @staticmethod
    def _key(tenant: str, score: ScoreOut) -> str:
        return keys.board(tenant, score.campaign, score.board, score.period)

    def _with_ranks(
        self, tenant: str, result: EventResult, player: str, ranks: Ranks
    ) -> EventResult:
        if not result.scores:
            return result
        scores = []
        for score in result.scores:
            previous, current = ranks.get((self._key(tenant, score), player), (None, None))
            scores.append(msgspec.structs.replace(score, rank=current, previous_rank=previous))
        return msgspec.structs.replace(result, scores=scores)
