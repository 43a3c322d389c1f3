"""A campaign's rules compiled for speed: built once, used for millions of `apply` calls.

The index maps an event type to what can match it: criteria keyed by one `(attribute, value)`
(the criterion's own `values`, or the first attribute of its `where`) and the few criteria that
must look at every event of the type. An event for the Vancouver badge reaches that badge and the
`distinct` milestones, not the other thirty-nine airports.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Container, Hashable, Mapping
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from badges.accumulators import (
    Attributes,
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
    Scalar,
    StreakCriterion,
    SumCriterion,
    ValueCriterion,
)
from badges.durations import parse_duration
from badges.errors import RulesError
from badges.matching import MISSING, Checks, compile_where, passes, project, scalar_key
from badges.rules import Rules
from badges.times import Periods, to_us
from badges.validate import validate

__all__ = ["HISTORY_CAP", "Derived", "Engine", "Single", "TypeIndex", "compile_rules"]

HISTORY_CAP = 10_000
"""Events retained per player and campaign before the oldest are folded into a checkpoint."""

Extract = Callable[[Attributes, object], object]
Tap = tuple[int, str, Checks, Extract | None, object]
"""A badge index and id, the `where` checks the index did not already do, the tally's `extract`
and the payload to pass it (no `extract` when the payload is the value: saves a call per match)."""


SHARED_PROJECTIONS = 4096
"""Per event type, how many distinct projections `TypeIndex.project` shares at most."""


class TypeIndex:
    """Everything that can match one event type.

    `code` numbers the type and `names` the attributes kept for it (an attribute's slot is its
    position in `names`): stored events use those numbers, not the strings.
    """

    __slots__ = ("code", "keyed", "names", "plain", "points", "projections", "scoring", "slots")

    def __init__(self, code: int, names: tuple[str, ...]) -> None:
        self.code = code
        self.names = names
        self.slots = {name: slot for slot, name in enumerate(names)}
        self.plain: list[Tap] = []
        self.keyed: dict[int, dict[Hashable, list[Tap]]] = {}
        self.points = 0  # scoring points every event of the type earns
        self.scoring: list[tuple[int, Checks]] = []  # and those that depend on `where`
        self.projections: dict[object, dict[int, Scalar]] = {}

    def project(self, attributes: Mapping[str, Any]) -> dict[int, Scalar]:
        """`matching.project` for this type, shared between events whose read attributes are the
        same strings (or absent): most events repeat a few values (destinations, cabins), and a
        fresh dict retained per event made memory, not matching, the cost of a fold step in a
        service holding thousands of players. Facts never modify their attributes.

        Only strings: other values equal across types (1, 1.0, True) must stay apart. The first
        `SHARED_PROJECTIONS` distinct projections are shared, so odd values cannot grow the
        table without bound."""
        names = self.names
        if len(names) == 1:
            key: object = attributes.get(names[0], MISSING)
            shareable = type(key) is str or key is MISSING
        else:
            values = tuple([attributes.get(name, MISSING) for name in names])
            shareable = all(type(value) is str or value is MISSING for value in values)
            key = values
        if not shareable:
            return project(attributes, names)
        shared = self.projections.get(key)
        if shared is None:
            shared = project(attributes, names)
            if len(self.projections) < SHARED_PROJECTIONS:
                self.projections[key] = shared
        return shared

    def add(self, tap: Tap, attribute: str | None = None, values: list[Any] | None = None) -> None:
        if attribute is None or values is None:
            self.plain.append(tap)
            return
        table = self.keyed.setdefault(self.slots[attribute], {})
        for value in values:
            taps = table.setdefault(scalar_key(value), [])
            if all(other[0] != tap[0] for other in taps):  # `where` lists may repeat a value
                taps.append(tap)


class Single:
    """Matches one criterion alone: a refold looks at a few criteria over many events, where
    asking the whole index about each event would do needless work."""

    __slots__ = ("checks", "code", "extract", "keys", "slot")

    def __init__(
        self,
        code: int,
        extract: Extract | None,
        checks: Checks = (),
        slot: int | None = None,
        keys: dict[Hashable, object] | None = None,
    ) -> None:
        self.code = code
        self.extract = extract
        self.checks = checks
        self.slot = slot  # with `keys`: the indexed attribute and its wanted keys -> payload
        self.keys = keys or {}

    def __call__(self, code: int, attributes: Attributes) -> object:
        """The value to fold for an event of type `code`, or MISSING."""
        if code != self.code:
            return MISSING
        payload = None
        if self.slot is not None:
            value = attributes.get(self.slot, MISSING)
            key = value if type(value) is str else scalar_key(value)
            if key not in self.keys:
                return MISSING
            payload = self.keys[key]
        if self.checks and not passes(self.checks, attributes):
            return MISSING
        return payload if self.extract is None else self.extract(attributes, payload)


class Derived(msgspec.Struct, frozen=True):
    """A `badges` criterion: awarded when `need` of `refs` are held (by `deadline`, if set)."""

    index: int
    refs: tuple[int, ...]
    need: int
    deadline: int | None


def fingerprint(rules: Rules) -> int:
    """What a player's state depends on: the badges, the scoring rules, the start (deadlines
    count from it) and the time zone (streak periods). Not the end or the grace: they only
    decide which events count, and ending a campaign early must not orphan its states."""
    what = [rules.starts_at, rules.timezone, rules.badges, rules.scoring]
    return int.from_bytes(hashlib.blake2b(msgspec.json.encode(what), digest_size=7).digest(), "big")


class Engine:
    """Compiled rules. Read-only after construction (but for the shared projections, a cache),
    so one instance can serve every player."""

    def __init__(self, rules: Rules, history_cap: int = HISTORY_CAP) -> None:
        self.rules = rules
        self.history_cap = max(1, history_cap)
        self.fingerprint = fingerprint(rules)
        self.zone = ZoneInfo(rules.timezone)
        grace = parse_duration(rules.grace) if rules.grace else None
        self.starts = to_us(rules.starts_at)
        self.ends = to_us(rules.ends_at + grace if grace else rules.ends_at)
        self.ids = [badge.id for badge in rules.badges]
        self.position = {badge_id: i for i, badge_id in enumerate(self.ids)}
        self.points = [badge.points for badge in rules.badges]
        read = _attribute_names(rules)
        self.kinds = [TypeIndex(code, names) for code, names in enumerate(read.values())]
        self.types = dict(zip(read, self.kinds, strict=True))
        self.singles: dict[int, Single] = {}
        # A `badges` criterion gets a placeholder tally: no event ever reaches it.
        self.tallies: list[Tally] = [
            self._index(i, badge.criteria) or ValueTally() for i, badge in enumerate(rules.badges)
        ]
        self.derived = self._derived()
        self.derived_at = {rule.index: rule for rule in self.derived}
        self.targets = [self._target(i) for i in range(len(self.ids))]
        for rule in rules.scoring:
            if rule.points > 0:
                kind = self.types[rule.event]
                if rule.where:
                    kind.scoring.append((rule.points, compile_where(rule.where, kind.slots)))
                else:
                    kind.points += rule.points

    def _target(self, index: int) -> int:
        criterion = self.rules.badges[index].criteria
        if isinstance(criterion, BadgesCriterion):
            return criterion.min or len(criterion.values)
        return self.tallies[index].target

    def match(
        self, kind: TypeIndex, attributes: Attributes, skip: Container[str] = ()
    ) -> list[tuple[int, object]]:
        """(badge index, value to fold) for every criterion the event counts for, leaving out
        the badges whose ids are in `skip` (held ones, mostly: the cheapest test goes first)."""
        found: list[tuple[int, object]] = []
        for index, badge, checks, extract, payload in kind.plain:
            if badge in skip or (checks and not passes(checks, attributes)):
                continue
            if extract is not None and (payload := extract(attributes, payload)) is MISSING:
                continue
            found.append((index, payload))
        for slot, table in kind.keyed.items():
            value = attributes.get(slot, MISSING)
            taps = table.get(value if type(value) is str else scalar_key(value))
            if taps is None:
                continue
            for index, badge, checks, extract, payload in taps:
                if badge in skip or (checks and not passes(checks, attributes)):
                    continue
                if extract is not None and (payload := extract(attributes, payload)) is MISSING:
                    continue
                found.append((index, payload))
        return found

    def score(self, kind: TypeIndex, attributes: Attributes) -> int:
        """Points the scoring rules give one event."""
        points = kind.points
        for extra, checks in kind.scoring:
            if passes(checks, attributes):
                points += extra
        return points

    def _index(self, i: int, criterion: Criterion) -> Tally | None:
        if isinstance(criterion, BadgesCriterion):
            return None
        kind = self.types[criterion.event]
        tally = self._tally(criterion, kind.slots)
        badge = self.ids[i]
        extract = None if tally.direct else tally.extract
        if isinstance(criterion, ValueCriterion | CollectionCriterion):
            checks = compile_where(criterion.where, kind.slots)
            keys: dict[Hashable, object] = {}
            for position, value in enumerate(criterion.values):
                payload = position if isinstance(criterion, CollectionCriterion) else None
                kind.add((i, badge, checks, extract, payload), criterion.attribute, [value])
                keys[scalar_key(value)] = payload
            slot = kind.slots[criterion.attribute]
            self.singles[i] = Single(kind.code, extract, checks, slot, keys)
        elif criterion.where:
            attribute = min(criterion.where)
            wanted = criterion.where[attribute]
            values = wanted if isinstance(wanted, list) else [wanted]
            checks = compile_where(criterion.where, kind.slots, skip=attribute)
            kind.add((i, badge, checks, extract, None), attribute, values)
            keys = {scalar_key(value): None for value in values}
            slot = kind.slots[attribute]
            self.singles[i] = Single(kind.code, extract, checks, slot, keys)
        else:
            kind.add((i, badge, (), extract, None))
            self.singles[i] = Single(kind.code, extract)
        return tally

    def _tally(self, criterion: Criterion, slots: dict[str, int]) -> Tally:
        within = to_within(criterion.within)
        match criterion:
            case ValueCriterion():
                return ValueTally()
            case CountCriterion(threshold=n):
                return CountWindow(n, within) if within else CountTally(n)
            case SumCriterion(attribute=name, threshold=n):
                slot = slots[name]
                return SumWindow(slot, n, within) if within else SumTally(slot, n)
            case DistinctCriterion(attribute=name, threshold=n):
                slot = slots[name]
                return DistinctWindow(slot, n, within) if within else DistinctTally(slot, n)
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


def _attribute_names(rules: Rules) -> dict[str, tuple[str, ...]]:
    """Every event type the rules read, with the attributes they read of it (sorted, so the
    numbering is stable for the same rules)."""
    names: dict[str, set[str]] = {}
    for badge in rules.badges:
        criterion = badge.criteria
        if isinstance(criterion, BadgesCriterion):
            continue
        wanted = names.setdefault(criterion.event, set())
        wanted.update(criterion.where or ())
        if not isinstance(criterion, CountCriterion | StreakCriterion):
            wanted.add(criterion.attribute)
    for rule in rules.scoring:
        if rule.points > 0:
            names.setdefault(rule.event, set()).update(rule.where or ())
    return {event: tuple(sorted(names[event])) for event in sorted(names)}


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
