"""A campaign's rules compiled for speed: built once, used for millions of `apply` calls.

The index maps an event type to what can match it: criteria keyed by one `(attribute, value)`
(the criterion's own `values`, or the first attribute of its `where`) and the few criteria that
must look at every event of the type. An event for the Vancouver badge reaches that badge and the
`distinct` milestones, not the other thirty-nine airports.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable, Mapping
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from badges.accumulators import (
    CollectionTally,
    CollectionWindow,
    CountTally,
    CountWindow,
    DistinctTally,
    DistinctWindow,
    StreakTally,
    StreakWindow,
    SumTally,
    SumWindow,
    Tally,
    ValueTally,
)
from badges.criteria import (
    BadgesCriterion,
    CollectionCriterion,
    CountCriterion,
    Criterion,
    DistinctCriterion,
    StreakCriterion,
    SumCriterion,
    ValueCriterion,
)
from badges.durations import parse_duration
from badges.errors import RulesError
from badges.matching import MISSING, Checks, compile_where, passes, scalar_key
from badges.rules import Rules
from badges.times import Periods, to_us
from badges.validate import validate

__all__ = ["HISTORY_CAP", "Derived", "Engine", "TypeIndex", "compile_rules"]

HISTORY_CAP = 10_000
"""Events retained per player and campaign before the oldest are folded into a checkpoint."""

Extract = Callable[[Mapping[str, Any], object], object]
Tap = tuple[int, Checks, Extract, object]
"""A badge index, the `where` checks the index did not already do, the tally's `extract`, and
the payload to pass it."""


class TypeIndex:
    """Everything that can match one event type."""

    __slots__ = ("keyed", "names", "plain", "points", "scoring")

    def __init__(self) -> None:
        self.plain: list[Tap] = []
        self.keyed: dict[str, dict[Hashable, list[Tap]]] = {}
        self.points = 0  # scoring points every event of the type earns
        self.scoring: list[tuple[int, Checks]] = []  # and those that depend on `where`
        self.names: tuple[str, ...] = ()

    def add(self, tap: Tap, attribute: str | None = None, values: list[Any] | None = None) -> None:
        if attribute is None or values is None:
            self.plain.append(tap)
            return
        table = self.keyed.setdefault(attribute, {})
        for value in values:
            taps = table.setdefault(scalar_key(value), [])
            if all(other[0] != tap[0] for other in taps):  # `where` lists may repeat a value
                taps.append(tap)


class Derived(msgspec.Struct, frozen=True):
    """A `badges` criterion: awarded when `need` of `refs` are held (by `deadline`, if set)."""

    index: int
    refs: tuple[int, ...]
    need: int
    deadline: int | None


class Engine:
    """Compiled rules. Read-only after construction, so one instance can serve every player."""

    def __init__(self, rules: Rules, history_cap: int = HISTORY_CAP) -> None:
        self.rules = rules
        self.history_cap = max(1, history_cap)
        self.fingerprint = int.from_bytes(
            hashlib.blake2b(msgspec.json.encode(rules), digest_size=7).digest(), "big"
        )
        self.zone = ZoneInfo(rules.timezone)
        grace = parse_duration(rules.grace) if rules.grace else None
        self.starts = to_us(rules.starts_at)
        self.ends = to_us(rules.ends_at + grace if grace else rules.ends_at)
        self.ids = [badge.id for badge in rules.badges]
        self.position = {badge_id: i for i, badge_id in enumerate(self.ids)}
        self.points = [badge.points for badge in rules.badges]
        # A `badges` criterion gets a placeholder tally: no event ever reaches it.
        self.tallies: list[Tally] = []
        self.types: dict[str, TypeIndex] = {}
        for i, badge in enumerate(rules.badges):
            self.tallies.append(self._index(i, badge.criteria) or ValueTally())
        self.derived = self._derived()
        self.derived_at = {rule.index: rule for rule in self.derived}
        self.targets = [self._target(i) for i in range(len(self.ids))]
        for rule in rules.scoring:
            if rule.points > 0:
                kind = self._type(rule.event)
                if rule.where:
                    kind.scoring.append((rule.points, compile_where(rule.where)))
                else:
                    kind.points += rule.points
        self._names()

    def _target(self, index: int) -> int:
        criterion = self.rules.badges[index].criteria
        if isinstance(criterion, BadgesCriterion):
            return criterion.min or len(criterion.values)
        return self.tallies[index].target

    def match(self, kind: TypeIndex, attributes: Mapping[str, Any]) -> list[tuple[int, object]]:
        """(badge index, value to fold) for every criterion the event counts for."""
        found: list[tuple[int, object]] = []
        for index, checks, extract, payload in kind.plain:
            if not checks or passes(checks, attributes):
                value = extract(attributes, payload)
                if value is not MISSING:
                    found.append((index, value))
        for attribute, table in kind.keyed.items():
            value = attributes.get(attribute, MISSING)
            taps = table.get(value if type(value) is str else scalar_key(value))
            if taps is None:
                continue
            for index, checks, extract, payload in taps:
                if not checks or passes(checks, attributes):
                    value = extract(attributes, payload)
                    if value is not MISSING:
                        found.append((index, value))
        return found

    def score(self, kind: TypeIndex, attributes: Mapping[str, Any]) -> int:
        """Points the scoring rules give one event."""
        points = kind.points
        for extra, checks in kind.scoring:
            if passes(checks, attributes):
                points += extra
        return points

    def _type(self, event_type: str) -> TypeIndex:
        return self.types.setdefault(event_type, TypeIndex())

    def _index(self, i: int, criterion: Criterion) -> Tally | None:
        if isinstance(criterion, BadgesCriterion):
            return None
        kind = self._type(criterion.event)
        tally = self._tally(criterion)
        if isinstance(criterion, ValueCriterion | CollectionCriterion):
            checks = compile_where(criterion.where)
            for position, value in enumerate(criterion.values):
                payload = position if isinstance(criterion, CollectionCriterion) else None
                kind.add((i, checks, tally.extract, payload), criterion.attribute, [value])
        elif criterion.where:
            attribute = min(criterion.where)
            wanted = criterion.where[attribute]
            values = wanted if isinstance(wanted, list) else [wanted]
            checks = compile_where(criterion.where, skip=attribute)
            kind.add((i, checks, tally.extract, None), attribute, values)
        else:
            kind.add((i, (), tally.extract, None))
        return tally

    def _tally(self, criterion: Criterion) -> Tally:
        within = to_within(criterion.within)
        match criterion:
            case ValueCriterion():
                return ValueTally()
            case CountCriterion(threshold=n):
                return CountWindow(n, within) if within else CountTally(n)
            case SumCriterion(attribute=name, threshold=n):
                return SumWindow(name, n, within) if within else SumTally(name, n)
            case DistinctCriterion(attribute=name, threshold=n):
                return DistinctWindow(name, n, within) if within else DistinctTally(name, n)
            case CollectionCriterion(values=values, min=need):
                need = need or len(values)
                return CollectionWindow(need, within) if within else CollectionTally(need)
            case StreakCriterion(threshold=n, period=period):
                periods = Periods(self.zone, period)
                return StreakWindow(n, periods, within) if within else StreakTally(n, periods)
        raise AssertionError(criterion)  # pragma: no cover - BadgesCriterion is handled above

    def _derived(self) -> list[Derived]:
        """`badges` criteria in dependency order (validation rejected cycles)."""
        pending = {
            i: badge.criteria
            for i, badge in enumerate(self.rules.badges)
            if isinstance(badge.criteria, BadgesCriterion)
        }
        ordered: list[Derived] = []
        while pending:
            ready = [
                i
                for i, c in pending.items()
                if not any(self.position[ref] in pending for ref in c.values)
            ]
            for i in ready:
                criterion = pending.pop(i)
                within = to_within(criterion.within)
                ordered.append(
                    Derived(
                        index=i,
                        refs=tuple(self.position[ref] for ref in criterion.values),
                        need=criterion.min or len(criterion.values),
                        deadline=self.starts + within if within else None,
                    )
                )
        return ordered

    def _names(self) -> None:
        """The attributes each event type's history must keep."""
        for event_type, kind in self.types.items():
            names = set(kind.keyed)
            for badge in self.rules.badges:
                criterion = badge.criteria
                if getattr(criterion, "event", None) != event_type:
                    continue
                names.update(criterion.where or ())
                if isinstance(criterion, SumCriterion | DistinctCriterion):
                    names.add(criterion.attribute)
            for rule in self.rules.scoring:
                if rule.event == event_type:
                    names.update(rule.where or ())
            kind.names = tuple(sorted(names))


def to_within(text: str | None) -> int:
    """A `within` duration in microseconds; 0 for none."""
    return parse_duration(text) // _MICROSECOND if text else 0


_MICROSECOND = timedelta(microseconds=1)


def compile_rules(rules: Rules, *, history_cap: int = HISTORY_CAP) -> Engine:
    """Validate and compile; raises RulesError listing every problem."""
    errors = validate(rules)
    if errors:
        raise RulesError(errors)
    return Engine(rules, history_cap)
