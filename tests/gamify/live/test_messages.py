"""What a committed batch tells its players (pure): given ranked results, these messages."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Literal

from gamify.events.wire import AwardOut, EventResult, ScoreOut
from gamify.live.messages import OVERTAKEN_CAP, of_batch
from gamify.live.protocol import BadgeAwarded, RankChanged

NOW = datetime(2026, 1, 5, 12, tzinfo=UTC)


def result(
    status: Literal["accepted", "duplicate", "rejected"] = "accepted",
    awards: tuple[str, ...] = (),
    scores: tuple[ScoreOut, ...] = (),
) -> EventResult:
    return EventResult(
        "e",
        status,
        [AwardOut("wings", badge, NOW) for badge in awards],
        list(scores),
    )


def score(
    rank: int | None, previous: int | None, points: int = 5, board: str = "campaign"
) -> ScoreOut:
    period = None if board == "campaign" else date(2026, 1, 5)
    return ScoreOut("wings", board, points, rank, previous, period)


def test_a_climb_is_a_rank_change_and_a_move_whose_passed_players_are_capped() -> None:
    told = of_batch("acme", ["p"], [result(scores=(score(3, 40),))])
    assert told.messages == {"p": [RankChanged("wings", "campaign", 3, 40, 5)]}
    [move] = told.moves
    assert move.passed == (3, 3 + OVERTAKEN_CAP - 1)  # 0-based: ranks 4 to 13, nearest first


def test_a_short_climb_passes_only_those_it_passed() -> None:
    [move] = of_batch("acme", ["p"], [result(scores=(score(3, 5),))]).moves
    assert move.passed == (3, 4)  # ranks 4 and 5: the two it passed


def test_a_newcomer_hears_its_rank_and_overtakes_nobody() -> None:
    told = of_batch("acme", ["p"], [result(scores=(score(7, None),))])
    assert told.messages == {"p": [RankChanged("wings", "campaign", 7, None, 5)]}
    assert told.moves == []


def test_an_unchanged_rank_or_a_fall_tells_no_one_of_overtaking() -> None:
    told = of_batch(
        "acme", ["p", "q"], [result(scores=(score(2, 2),)), result(scores=(score(9, 4),))]
    )
    assert told.messages == {"q": [RankChanged("wings", "campaign", 9, 4, 5)]}
    assert told.moves == []


def test_badges_are_told_once_for_accepted_events_never_for_replays() -> None:
    told = of_batch(
        "acme",
        ["p", "p", "q"],
        [
            result(awards=("yvr",)),
            result(status="duplicate", awards=("yyz",)),
            result(),
        ],
    )
    assert told.messages == {"p": [BadgeAwarded("wings", "yvr", NOW)]}


def test_a_batch_tells_each_board_once_with_the_final_score() -> None:
    told = of_batch(
        "acme",
        ["p", "p"],
        [
            result(scores=(score(2, 9, points=3), score(1, None, 3, "weekly"))),
            result(scores=(score(2, 9, points=4), score(1, None, 4, "weekly"))),
        ],
    )
    assert told.messages["p"] == [
        RankChanged("wings", "campaign", 2, 9, 4),
        RankChanged("wings", "weekly", 1, None, 4, date(2026, 1, 5)),
    ]
