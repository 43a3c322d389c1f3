"""Per window board, the newest period a player scored in and its total: what an in-order event
adds to without reading the player's history (stored with the progress row, migrations/0007).

An event later than everything the player's state retains earns all its points at its own
instant, and every earlier contribution is older: its window is the newest one, or a new one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from zoneinfo import ZoneInfo

import msgspec

from badges.times import from_us, to_us
from gamify.campaigns.windows import WindowTotals, period_of

Totals = dict[str, WindowTotals]  # per window board


class Newest(msgspec.Struct, array_like=True, frozen=True):
    day: int  # the period's first day, as a proleptic Gregorian ordinal
    score: int
    reached: int  # microseconds since the epoch


def decode(data: bytes | None) -> dict[str, Newest]:
    return _decoder.decode(data) if data else {}


def encode(totals: Totals) -> bytes:
    """The newest period of each board that has one."""
    newest: dict[str, Newest] = {}
    for board, periods in totals.items():
        if periods:
            day = max(periods)
            score, reached = periods[day]
            newest[board] = Newest(day.toordinal(), score, to_us(reached))
    return _encoder.encode(newest)


def known(data: bytes | None, windows: Sequence[str]) -> Totals | None:
    """The newest period of every board, or None when one is missing (the history then has to
    be read): a board the player never scored on has an empty entry."""
    stored = decode(data) if data is not None else None
    if stored is None:
        return None
    return {
        board: {date.fromordinal(n.day): (n.score, from_us(n.reached))}
        if (n := stored.get(board))
        else {}
        for board in windows
    }


def add(totals: Totals, zone: ZoneInfo, moment: datetime, points: int) -> None:
    """`points` earned at `moment`, later than every contribution in `totals`."""
    for board, periods in totals.items():
        period = period_of(board, moment, zone)
        earned, _ = periods.get(period, (0, moment))
        periods[period] = (earned + points, moment)


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(dict[str, Newest])
