"""Destination badges from the `airportsdata` package.

One `value` badge per airport (of a country, or from a list of IATA codes), named by the city it
serves, plus `distinct` milestones ("5 destinations", ...). The data is read once from the CSV
shipped inside `airportsdata` (the one file the engine's packages ever read) and cached.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from functools import cache

import airportsdata

from badges.criteria import DistinctCriterion, ValueCriterion
from badges.rules import Badge

__all__ = ["CITY_NAMES", "airport_codes", "destination_badges"]

CITY_NAMES: Mapping[str, str] = {
    # The data names the municipality an airport stands in (Richmond for YVR, Dorval for YUL),
    # or is wrong (YYT is St. John's, not Saint John); a badge should say the city a traveller
    # flew to. Pass `names=` for others.
    "YVR": "Vancouver",
    "YUL": "Montréal",
    "YYT": "St. John's",
    "YSB": "Sudbury",
}


@cache
def _airports() -> dict[str, airportsdata.Airport]:
    return airportsdata.load("IATA")


@cache
def _metro_names() -> dict[str, str]:
    """IATA multi-airport cities: YYZ and YTZ serve Toronto, JFK serves New York."""
    return {
        code: metro["name"]
        for metro in airportsdata.load_iata_macs().values()
        for code in metro["airports"]
    }


def airport_codes(country: str) -> list[str]:
    """IATA codes of a country's airports (ISO 3166-1 alpha-2, e.g. "CA"), sorted."""
    country = country.upper()
    return sorted(code for code, a in _airports().items() if a["country"] == country)


def destination_badges(
    codes: Iterable[str] | None = None,
    *,
    country: str | None = None,
    milestones: Sequence[int] = (5, 10, 25),
    event: str = "flight.completed",
    attribute: str = "destination",
    points: int = 1,
    milestone_points: int = 5,
    names: Mapping[str, str] | None = None,
) -> list[Badge]:
    """A `value` badge per airport (id = lower-case IATA code) and a `distinct` badge per
    milestone (id `destinations-N`, counting any destination, listed or not).

    Give `codes` (IATA), or `country` for all its airports. Raises ValueError for an unknown code.
    """
    if codes is None:
        if country is None:
            raise ValueError("give the IATA codes or a country")
        codes = airport_codes(country)
    wanted = list(dict.fromkeys(code.upper() for code in codes))
    unknown = [code for code in wanted if code not in _airports()]
    if unknown:
        raise ValueError(f"unknown IATA codes: {', '.join(unknown)}")
    cities = {code: _city(code, names or {}) for code in wanted}
    twice = {city for city, n in Counter(cities.values()).items() if n > 1}
    badges = [
        Badge(
            id=code.lower(),
            name=f"{cities[code]} ({code})" if cities[code] in twice else cities[code],
            points=points,
            description=_airports()[code]["name"],
            criteria=ValueCriterion(event=event, attribute=attribute, values=[code]),
        )
        for code in wanted
    ]
    badges += [
        Badge(
            id=f"destinations-{n}",
            name=f"{n} destinations",
            points=milestone_points,
            criteria=DistinctCriterion(event=event, attribute=attribute, threshold=n),
        )
        for n in sorted(set(milestones))
    ]
    return badges


def _city(code: str, names: Mapping[str, str]) -> str:
    return (
        names.get(code)
        or CITY_NAMES.get(code)
        or _metro_names().get(code)
        or _airports()[code]["city"]
        or code
    )
