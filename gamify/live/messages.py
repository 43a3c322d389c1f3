"""What a committed batch tells its players: pure, from the ranked results of the write path.

A mover hears `rank_changed` on each board where its rank moved and `badge_awarded` for each
badge its accepted events earned (a replayed event earns nothing new, so says nothing). The
players a move passed are found on the board afterwards (see publisher.py): `Move` says where.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date

import msgspec

from gamify.boards import keys
from gamify.events.wire import EventResult, ScoreOut
from gamify.live.protocol import BadgeAwarded, Message, RankChanged

# At most this many passed players hear `overtaken` per move: those now ranked just behind the
# mover, nearest first. A leap past thousands must not become thousands of messages.
OVERTAKEN_CAP = 10


class Move(msgspec.Struct, frozen=True):
    """A player who climbed on a board: from `previous_rank` up to `rank`."""

    key: str
    campaign: str
    board: str
    period: date | None
    player: str
    rank: int
    previous_rank: int

    @property
    def passed(self) -> tuple[int, int]:
        """The 0-based positions, first and last, of the players it passed, nearest first
        and capped: they now stand right behind it."""
        return self.rank, min(self.previous_rank, self.rank + OVERTAKEN_CAP) - 1


class Told(msgspec.Struct):
    """The messages of one batch, by player, and the moves whose passed players to find."""

    messages: dict[str, list[Message]]
    moves: list[Move]


def of_batch(tenant: str, players: Sequence[str], results: Sequence[EventResult]) -> Told:
    latest: dict[tuple[str, str, str, date | None], ScoreOut] = {}
    told: dict[str, list[Message]] = defaultdict(list)
    for player, result in zip(players, results, strict=True):
        for score in result.scores:
            # Every result of a player shows the ranks after the whole batch: the last one
            # holds the player's final score too.
            latest[(player, score.campaign, score.board, score.period)] = score
    moves: list[Move] = []
    for (player, campaign, board, period), score in latest.items():
        if score.rank is None or score.rank == score.previous_rank:
            continue
        told[player].append(
            RankChanged(campaign, board, score.rank, score.previous_rank, score.score, period)
        )
        if score.previous_rank is not None and score.rank < score.previous_rank:
            key = keys.board(tenant, campaign, board, period)
            moves.append(
                Move(key, campaign, board, period, player, score.rank, score.previous_rank)
            )
    for player, result in zip(players, results, strict=True):
        if result.status == "accepted" and result.awards:
            told[player] += [BadgeAwarded(a.campaign, a.badge, a.awarded_at) for a in result.awards]
    return Told(dict(told), moves)
