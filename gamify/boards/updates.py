"""What a write changes on the boards: absolute scores per (campaign, player, board)."""

from __future__ import annotations

import logging
from datetime import date, datetime

import msgspec

from gamify.boards import encoding, keys
from gamify.campaigns.compiled import CompiledCampaign
from gamify.campaigns.windows import WindowTotals

log = logging.getLogger(__name__)

Standing = tuple[int, datetime | None]  # points, when reached


class BoardScore(msgspec.Struct, frozen=True):
    """A player's absolute score on one board; `encoded` None takes the player off it."""

    key: str
    board: str
    period: date | None
    points: int
    encoded: int | None

    @property
    def mode(self) -> str:
        """How the Redis Function writes it (see functions.lua)."""
        if self.encoded is None:
            return "del"
        return "gt" if self.period is None else "set"


class BoardUpdate(msgspec.Struct, frozen=True):
    campaign: str
    player: str
    scores: list[BoardScore]
    windows_expire_at: int  # Unix seconds (see windows.WINDOW_RETENTION)
    # The (campaign, player) row's version after this write: the order window writes must
    # land in (see gamify_write in functions.lua).
    version: int


class WindowRow(msgspec.Struct, frozen=True):
    """A window board score; 0 (with no reached_at) once a late event moved all of it out."""

    campaign: str
    board: str
    period: date
    player: str
    score: int
    reached_at: datetime | None


def pair_changes(
    tenant: str,
    compiled: CompiledCampaign,
    player: str,
    version: int,
    before: Standing,
    after: Standing,
    totals_before: dict[str, WindowTotals],
    totals_after: dict[str, WindowTotals],
) -> tuple[BoardUpdate | None, list[WindowRow]]:
    """The board scores and window rows that moved between `before` and `after`; the window
    totals per board hold at least every period that may have changed."""
    scores: list[BoardScore] = []
    rows: list[WindowRow] = []
    if after != before and after[0] > 0:
        scores += _scored(compiled, keys.board(tenant, compiled.id), "campaign", None, after)
    for window in compiled.windows:
        old = totals_before.get(window, {})
        new = totals_after.get(window, {})
        for period in sorted(old.keys() | new.keys()):
            standing: Standing = new.get(period, (0, None))
            if old.get(period) == standing:
                continue
            rows.append(WindowRow(compiled.id, window, period, player, *standing))
            key = keys.board(tenant, compiled.id, window, period)
            if standing[0] == 0:
                scores.append(BoardScore(key, window, period, 0, None))
            else:
                scores += _scored(compiled, key, window, period, standing)
    if not scores:
        return None, rows
    return BoardUpdate(compiled.id, player, scores, compiled.windows_expire_at, version), rows


def _scored(
    compiled: CompiledCampaign, key: str, board: str, period: date | None, standing: Standing
) -> list[BoardScore]:
    points, reached_at = standing
    try:
        encoded = encoding.encode(points, reached_at, compiled.starts_at, compiled.bits)
    except encoding.BoardOverflow:
        # Loud, and left off the board rather than ranked wrong.
        log.error("board %s cannot rank %s points exactly; left unranked", key, points)
        return []
    return [BoardScore(key, board, period, points, encoded)]
