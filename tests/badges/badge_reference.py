"""An independent, deliberately naive model of the semantics, straight from the definitions.

For each badge: the award time is the first instant t (an event time) at which the criterion
holds over the matching events with occurred_at in (t - within, t]; `badges` badges take the
`min`-th award time of their badges. No incremental state, no index, no checkpoint: quadratic and
obviously right, so the engine is checked against the definition, not against itself.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from badges import (
    BadgesCriterion,
    CollectionCriterion,
    CountCriterion,
    Criterion,
    DistinctCriterion,
    Event,
    Rules,
    StreakCriterion,
    SumCriterion,
    ValueCriterion,
    parse_duration,
)


@dataclass
class Outcome:
    badges: dict[str, datetime]
    score: int
    reached_at: datetime | None


def json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if a is None or b is None:
        return a is b
    return isinstance(a, str) and isinstance(b, str) and a == b


def in_list(value: Any, values: Iterable[Any]) -> bool:
    return any(json_equal(value, wanted) for wanted in values)


def where_ok(where: dict[str, Any] | None, attributes: dict[str, Any]) -> bool:
    for name, wanted in (where or {}).items():
        if name not in attributes:
            return False
        options = wanted if isinstance(wanted, list) else [wanted]
        if not in_list(attributes[name], options):
            return False
    return True


def positive_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if value > 0 and math.isfinite(value) else None


def countable(value: Any) -> bool:
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, float):
        return not math.isnan(value)
    return isinstance(value, int | str)


def outcome(rules: Rules, events: Iterable[Event]) -> Outcome:
    grace = parse_duration(rules.grace) if rules.grace else timedelta(0)
    unique: dict[str, Event] = {}
    for event in sorted(events, key=lambda e: (e.occurred_at, e.id)):
        unique.setdefault(event.id, event)
    inside = [
        e for e in unique.values() if rules.starts_at <= e.occurred_at <= rules.ends_at + grace
    ]
    awards: dict[str, datetime] = {}
    for badge in rules.badges:
        if not isinstance(badge.criteria, BadgesCriterion):
            when = _award_time(badge.criteria, inside, ZoneInfo(rules.timezone))
            if when is not None:
                awards[badge.id] = when
    _derive(rules, awards)
    points = {b.id: b.points for b in rules.badges}
    contributions = [(t, points[b]) for b, t in awards.items() if points[b]]
    for event in inside:
        for rule in rules.scoring:
            if rule.points and rule.event == event.type and where_ok(rule.where, event.attributes):
                contributions.append((event.occurred_at, rule.points))
    score = sum(p for _, p in contributions)
    reached = max((t for t, _ in contributions), default=None) if score else None
    return Outcome(awards, score, reached)


def _derive(rules: Rules, awards: dict[str, datetime]) -> None:
    for _ in rules.badges:  # enough passes for any chain of `badges` badges
        for badge in rules.badges:
            criterion = badge.criteria
            if not isinstance(criterion, BadgesCriterion):
                continue
            times = sorted(awards[ref] for ref in criterion.values if ref in awards)
            need = criterion.min or len(criterion.values)
            if len(times) < need:
                continue
            when = times[need - 1]
            if criterion.within and when > rules.starts_at + parse_duration(criterion.within):
                continue
            awards[badge.id] = when


def _award_time(criterion: Criterion, events: list[Event], zone: ZoneInfo) -> datetime | None:
    assert not isinstance(criterion, BadgesCriterion)
    matching = [
        e for e in events if e.type == criterion.event and where_ok(criterion.where, e.attributes)
    ]
    window = parse_duration(criterion.within) if criterion.within else None
    for candidate in matching:
        t = candidate.occurred_at
        seen = [
            e
            for e in matching
            if e.occurred_at <= t and (window is None or e.occurred_at > t - window)
        ]
        if _holds(criterion, seen, zone):
            return t
    return None


def _holds(criterion: Criterion, seen: list[Event], zone: ZoneInfo) -> bool:
    def values(name: str) -> list[Any]:
        return [e.attributes[name] for e in seen if name in e.attributes]

    match criterion:
        case ValueCriterion(attribute=name, values=wanted):
            return any(in_list(v, wanted) for v in values(name))
        case CountCriterion(threshold=n):
            return len(seen) >= n
        case SumCriterion(attribute=name, threshold=n):
            numbers = [x for v in values(name) if (x := positive_number(v)) is not None]
            return sum(numbers) >= n
        case DistinctCriterion(attribute=name, threshold=n):
            distinct: list[Any] = []
            for v in values(name):
                if countable(v) and not in_list(v, distinct):
                    distinct.append(v)
            return len(distinct) >= n
        case CollectionCriterion(attribute=name, values=wanted, min=need):
            found = [w for w in wanted if any(json_equal(v, w) for v in values(name))]
            return len(found) >= (need or len(wanted))
        case StreakCriterion(threshold=n, period=period):
            days = {e.occurred_at.astimezone(zone).date() for e in seen}
            if period == "week":
                keys = {d.toordinal() - d.weekday() for d in days}
                step = 7
            else:
                keys = {d.toordinal() for d in days}
                step = 1
            return any(all(k + i * step in keys for i in range(n)) for k in keys)
    raise AssertionError(criterion)
