"""Window boards: which daily or weekly window a moment falls in, in the campaign's time zone."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

WINDOWS = ("daily", "weekly")
# A window board stays in Redis this long after its campaign closes (ends_at + grace, when it
# is settled), for apps showing past days; Postgres keeps the scores for good.
WINDOW_RETENTION = timedelta(days=30)


def period_of(board: str, moment: datetime, zone: ZoneInfo) -> date:
    """The first local day of the window holding `moment` (Monday for weekly)."""
    day = moment.astimezone(zone).date()
    return day - timedelta(days=day.weekday()) if board == "weekly" else day


def valid_period(board: str, period: date) -> bool:
    return board != "weekly" or period.weekday() == 0


WindowTotals = dict[date, tuple[int, datetime]]


def window_totals(
    board: str, timeline: Iterable[tuple[datetime, int]], zone: ZoneInfo
) -> WindowTotals:
    """Points per window and when each window's total was reached (its last contribution)."""
    totals: WindowTotals = {}
    for moment, points in timeline:
        period = period_of(board, moment, zone)
        earned, _ = totals.get(period, (0, moment))
        totals[period] = (earned + points, moment)
    return totals
