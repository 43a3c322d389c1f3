"""Instants as integer microseconds since the Unix epoch, and streak periods.

Integers compare and sort faster than aware datetimes, encode smaller, and convert back exactly:
`from_us(to_us(dt)) == dt` for every aware datetime (Python datetimes stop at microseconds).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

__all__ = ["Periods", "from_us", "to_us"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def to_us(moment: datetime) -> int:
    """Raises TypeError for a naive datetime: an instant needs an offset."""
    return (moment - _EPOCH) // _US


def from_us(us: int) -> datetime:
    return _EPOCH + timedelta(0, 0, us)  # positional: half the cost of microseconds=us


class Periods:
    """Numbers consecutive days (or Monday-based weeks) of a time zone: consecutive periods get
    consecutive numbers whatever their length in hours, so DST days of 23 or 25 hours just work."""

    __slots__ = ("_weeks", "_zone")

    def __init__(self, zone: ZoneInfo, period: Literal["day", "week"]) -> None:
        self._zone = zone
        self._weeks = period == "week"

    def __call__(self, us: int) -> int:
        # Flooring to the second cannot change the local date: dates change on whole seconds.
        ordinal = datetime.fromtimestamp(us // 1_000_000, self._zone).toordinal()
        # Ordinal 1 (0001-01-01) is a Monday, so this groups Monday..Sunday.
        return (ordinal - 1) // 7 if self._weeks else ordinal
