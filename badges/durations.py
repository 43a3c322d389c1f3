"""ISO 8601 durations, restricted to the ones with a fixed length.

`P1M` or `P1Y` have no fixed length (a month is 28 to 31 days, and in which time zone?), so a
rolling window written with them would mean different things on different dates. They are
rejected with a message that says so; weeks, days, hours, minutes and seconds are accepted, and a
day is always 24 hours (a `within` window does not stretch over a DST change).
"""

from __future__ import annotations

import re
from datetime import timedelta

__all__ = ["parse_duration"]

_DURATION = re.compile(
    r"P(?:(?P<weeks>\d+)W"
    r"|(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:[.,]\d{1,6})?)S)?)?)"
)
_CALENDAR = re.compile(r"P(?:\d+Y)?(?:\d+M)?(?:\d+[WD])?(?:T.*)?")


def parse_duration(text: str) -> timedelta:
    """Parse `PnW`, `PnD`, `PTnHnMnS` and their combinations (`P1DT12H`, `PT0.5S`).

    Raises ValueError with a message fit to show a campaign manager.
    """
    match = _DURATION.fullmatch(text)
    if match is None or text.endswith("T") or text == "P":
        if _CALENDAR.fullmatch(text) and ("Y" in text or "M" in text.split("T")[0]):
            raise ValueError(
                f"{text!r}: years and months have no fixed length; use weeks or days (e.g. P30D)"
            )
        raise ValueError(f"{text!r} is not an ISO 8601 duration such as P30D, P1W or PT12H")
    parts = {name: value for name, value in match.groupdict().items() if value is not None}
    seconds = float(parts.pop("seconds", "0").replace(",", "."))
    try:
        return timedelta(seconds=seconds, **{name: int(value) for name, value in parts.items()})
    except OverflowError:
        raise ValueError(f"{text!r} is too long") from None
