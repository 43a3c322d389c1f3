"""Points over time: the score, its leaderboard windows, and the badges held.

Every point has a time: a badge's points at its `awarded_at`, a scoring rule's at the event's
`occurred_at`. Points are never negative, so a score only grows and is "reached" at its last
contribution: that instant (`reached_at`) breaks ties on the leaderboard.
"""

from __future__ import annotations

from datetime import datetime

from badges.compiled import Engine
from badges.results import Award
from badges.state import PlayerState
from badges.times import from_us, to_us

__all__ = ["held_badges", "points_timeline", "score", "window_score"]


def held_badges(state: PlayerState | None) -> list[Award]:
    """The badges held, oldest first."""
    if state is None:
        return []
    held = sorted(state.awards.items(), key=lambda item: (item[1].t, item[0]))
    return [Award(badge, from_us(h.t), h.points) for badge, h in held]


def score(state: PlayerState | None) -> tuple[int, datetime | None]:
    """The campaign score and `reached_at`, the instant it was reached (None while 0)."""
    if state is None or state.reached is None:
        return (0 if state is None else state.score), None
    return state.score, from_us(state.reached)


def _contributions(engine: Engine, state: PlayerState) -> list[tuple[int, int]]:
    state.check(engine.fingerprint)
    if not state.memo().whole():
        raise ValueError("points over time need the whole history: attach its segments first")
    points = [(h.t, h.points) for h in state.awards.values() if h.points]
    if state.checkpoint is not None:
        points += state.checkpoint.scored
    kinds = engine.kinds
    for fact in state.facts:
        kind = kinds[fact.type]
        if earned := engine.score(kind, fact.attributes) if kind.scoring else kind.points:
            points.append((fact.t, earned))
    points.sort()
    return points


def points_timeline(engine: Engine, state: PlayerState | None) -> list[tuple[datetime, int]]:
    """Every positive point contribution as (time, points), oldest first; they sum to the score.

    Scoring points of events beyond the history cap are summed per quarter hour and dated at
    the newest event of the quarter hour.
    """
    if state is None:
        return []
    memo = state.memo()
    known = memo.moments
    moments: dict[int, datetime] = {}  # only the current instants, so it cannot grow forever
    timeline: list[tuple[datetime, int]] = []
    for t, points in _contributions(engine, state):
        moment = moments.get(t) or known.get(t) or from_us(t)
        moments[t] = moment
        timeline.append((moment, points))
    memo.moments = moments
    return timeline


def window_score(
    engine: Engine, state: PlayerState | None, start: datetime, end: datetime
) -> tuple[int, datetime | None]:
    """Points earned with time in [start, end), and when that window score was reached."""
    if state is None:
        return 0, None
    low, high = to_us(start), to_us(end)
    total, reached = 0, None
    for t, points in _contributions(engine, state):
        if low <= t < high:
            total += points
            reached = t
    return total, None if reached is None else from_us(reached)
