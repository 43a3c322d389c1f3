"""Ranks into the results: after commit, the boards say where each scored player stands now
and stood before, and each result's scores show it."""

from __future__ import annotations

import msgspec

from gamify.boards import keys
from gamify.boards.writer import BoardWriter, Ranks, Wanted
from gamify.events.ingest import Outcome
from gamify.events.wire import EventResult, ScoreOut


async def ranked(writer: BoardWriter, tenant: str, outcome: Outcome) -> list[EventResult]:
    """The outcome's results with ranks; without them when Redis could not be reached."""
    wanted: Wanted = {
        (score.campaign, _key(tenant, score), player)
        for result, player in zip(outcome.results, outcome.players, strict=True)
        for score in result.scores
    }
    ranks = await writer.write(tenant, outcome.boards, wanted)
    if not ranks:
        return outcome.results
    return [
        _with_ranks(tenant, result, player, ranks)
        for result, player in zip(outcome.results, outcome.players, strict=True)
    ]


def _key(tenant: str, score: ScoreOut) -> str:
    return keys.board(tenant, score.campaign, score.board, score.period)


def _with_ranks(tenant: str, result: EventResult, player: str, ranks: Ranks) -> EventResult:
    if not result.scores:
        return result
    scores = []
    for score in result.scores:
        previous, current = ranks.get((_key(tenant, score), player), (None, None))
        scores.append(msgspec.structs.replace(score, rank=current, previous_rank=previous))
    return msgspec.structs.replace(result, scores=scores)
