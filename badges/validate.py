"""Semantic checks of campaign rules: every problem, each with its field path.

Decoding (see `decode.py`) checks types; this module checks meaning: numbers in range, ids unique,
references resolvable and acyclic, durations and the time zone usable. It is linear in the size of
the rules so a 1,000-badge campaign validates in milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from badges.criteria import (
    BadgesCriterion,
    CollectionCriterion,
    Criterion,
    Scalar,
    ValueCriterion,
    Where,
)
from badges.durations import parse_duration
from badges.errors import FieldError
from badges.matching import scalar_key
from badges.rules import Badge, Rules, ScoringRule

__all__ = [
    "EARLIEST",
    "LATEST",
    "MAX_GRACE",
    "MAX_POINTS",
    "MAX_SPAN",
    "validate",
    "validate_parts",
]

# Limits that keep every date arithmetic of a campaign (and of the boards' score encoding)
# far from datetime's range: a campaign lies between 1970 and 2200 UTC, lasts at most ten
# years, and takes late events for at most 30 days; a `within` window is at most ten years.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
MAX_SPAN = timedelta(days=3653)
MAX_GRACE = timedelta(days=30)
# Points of one badge or one scoring rule: a score is stored as a 32-bit count per badge and
# must stay far below the boards' ceiling (2^24 for the longest campaign).
MAX_POINTS = 1_000_000


def validate(rules: Rules) -> list[FieldError]:
    """Every semantic problem of `rules`; an empty list means `compile_rules` will accept them."""
    return validate_parts(rules, list(enumerate(rules.badges)), list(enumerate(rules.scoring)))


def validate_parts(
    rules: Rules | None,
    badges: Sequence[tuple[int, Badge]],
    scoring: Sequence[tuple[int, ScoringRule]],
    other_ids: Iterable[str] = (),
) -> list[FieldError]:
    """Validate what decoded: the campaign fields (`rules`, if they decoded) and the badges and
    scoring rules with their original indexes.

    `other_ids` are ids of badges that failed to decode: a reference to them is not reported as
    unknown, since the real problem was already reported where it is.
    """
    errors = [] if rules is None else _campaign(rules)
    first_at: dict[str, int] = {}
    for i, badge in badges:
        path = f"badges[{i}]"
        if badge.id in first_at:
            errors.append(
                FieldError(
                    f"{path}.id",
                    f"duplicate badge id {badge.id!r} (first at badges[{first_at[badge.id]}])",
                )
            )
        else:
            first_at[badge.id] = i
        errors += _badge(badge, path)
    known = set(first_at).union(other_ids)
    errors += _references(badges, known)
    for j, rule in scoring:
        errors += _scoring(rule, f"scoring[{j}]")
    return errors


def _campaign(rules: Rules) -> list[FieldError]:
    errors: list[FieldError] = []
    for name in ("starts_at", "ends_at"):
        if not EARLIEST <= getattr(rules, name) < LATEST:
            errors.append(FieldError(name, "must lie between 1970 and 2200 (UTC)"))
    if rules.ends_at <= rules.starts_at:
        errors.append(FieldError("ends_at", "must be after starts_at"))
    elif rules.ends_at - rules.starts_at > MAX_SPAN:
        errors.append(FieldError("ends_at", "a campaign lasts at most 10 years"))
    try:
        ZoneInfo(rules.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        errors.append(FieldError("timezone", f"unknown time zone {rules.timezone!r}"))
    if rules.grace is not None:
        errors += _duration(rules.grace, "grace", allow_zero=True, longest=MAX_GRACE)
    return errors


def _duration(
    text: str, path: str, *, allow_zero: bool, longest: timedelta = MAX_SPAN
) -> list[FieldError]:
    try:
        length = parse_duration(text)
    except ValueError as exc:
        return [FieldError(path, str(exc))]
    if not allow_zero and not length:
        return [FieldError(path, "must be longer than zero")]
    if length > longest:
        return [FieldError(path, f"must be at most {longest.days} days")]
    return []


def _badge(badge: Badge, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    if not badge.id:
        errors.append(FieldError(f"{path}.id", "must not be empty"))
    if not badge.name:
        errors.append(FieldError(f"{path}.name", "must not be empty"))
    if badge.points < 0:
        errors.append(FieldError(f"{path}.points", "must not be negative"))
    elif badge.points > MAX_POINTS:
        errors.append(FieldError(f"{path}.points", f"must be at most {MAX_POINTS:,}"))
    if badge.reward is not None:
        if badge.reward.amount <= 0:
            errors.append(FieldError(f"{path}.reward.amount", "must be positive"))
        if not badge.reward.unit:
            errors.append(FieldError(f"{path}.reward.unit", "must not be empty"))
    return errors + _criterion(badge.criteria, f"{path}.criteria")


def _criterion(criterion: Criterion, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    for name in ("event", "attribute"):
        if getattr(criterion, name, None) == "":
            errors.append(FieldError(f"{path}.{name}", "must not be empty"))
    threshold = getattr(criterion, "threshold", None)
    if threshold is not None and threshold < 1:
        errors.append(FieldError(f"{path}.threshold", "must be at least 1"))
    if isinstance(criterion, ValueCriterion | CollectionCriterion | BadgesCriterion):
        errors += _values(criterion.values, f"{path}.values")
    if isinstance(criterion, CollectionCriterion | BadgesCriterion) and criterion.min is not None:
        if criterion.min < 1:
            errors.append(FieldError(f"{path}.min", "must be at least 1"))
        elif criterion.min > len(criterion.values):
            errors.append(
                FieldError(
                    f"{path}.min",
                    f"{criterion.min} is more than the {len(criterion.values)} values listed",
                )
            )
    if criterion.where is not None:
        errors += _where(criterion.where, f"{path}.where")
    if criterion.within is not None:
        errors += _duration(criterion.within, f"{path}.within", allow_zero=False)
    return errors


def _values(values: Sequence[Scalar], path: str) -> list[FieldError]:
    if not values:
        return [FieldError(path, "must list at least one value")]
    seen: set[object] = set()
    errors: list[FieldError] = []
    for j, value in enumerate(values):
        key = scalar_key(value)
        if key in seen:
            errors.append(FieldError(f"{path}[{j}]", f"duplicate value {value!r}"))
        seen.add(key)
    return errors


def _where(where: Where, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    for attribute, wanted in where.items():
        if not attribute:
            errors.append(FieldError(path, "attribute names must not be empty"))
        elif isinstance(wanted, list) and not wanted:
            errors.append(FieldError(f"{path}.{attribute}", "must list at least one value"))
    return errors


def _scoring(rule: ScoringRule, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    if not rule.event:
        errors.append(FieldError(f"{path}.event", "must not be empty"))
    if rule.points < 0:
        # Negative points would let a late event lower a score, so a score could no longer
        # be "reached" at one instant; the leaderboard tie rule depends on that.
        errors.append(FieldError(f"{path}.points", "must not be negative"))
    elif rule.points > MAX_POINTS:
        errors.append(FieldError(f"{path}.points", f"must be at most {MAX_POINTS:,}"))
    if rule.where is not None:
        errors += _where(rule.where, f"{path}.where")
    return errors


def _references(badges: Sequence[tuple[int, Badge]], known: set[str]) -> list[FieldError]:
    """Unknown badge ids in `badges` criteria, then cycles among them."""
    errors: list[FieldError] = []
    edges: dict[str, list[str]] = {}
    where_is: dict[str, int] = {}
    for i, badge in badges:
        where_is.setdefault(badge.id, i)
    for i, badge in badges:
        if not isinstance(badge.criteria, BadgesCriterion):
            continue
        edges.setdefault(badge.id, [])
        for j, ref in enumerate(badge.criteria.values):
            if ref not in known:
                errors.append(
                    FieldError(f"badges[{i}].criteria.values[{j}]", f"unknown badge {ref!r}")
                )
            elif ref in where_is:
                edges[badge.id].append(ref)
    for cycle in _cycles(edges):
        errors.append(
            FieldError(
                f"badges[{where_is[cycle[0]]}].criteria.values",
                "badges form a cycle: " + " -> ".join([*cycle, cycle[0]]),
            )
        )
    return errors


def _cycles(edges: dict[str, list[str]]) -> list[list[str]]:
    """One cycle per strongly connected loop, found by an iterative depth-first search."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    cycles: list[list[str]] = []
    for root in edges:
        if root in state:
            continue
        path: list[str] = []
        stack: list[tuple[str, int]] = [(root, 0)]
        while stack:
            node, child = stack.pop()
            if child == 0:
                state[node] = 1
                path.append(node)
            targets = edges.get(node, [])
            if child < len(targets):
                stack.append((node, child + 1))
                target = targets[child]
                if state.get(target) == 1:
                    cycles.append(path[path.index(target) :])
                elif target not in state:
                    stack.append((target, 0))
            else:
                state[node] = 2
                path.pop()
    return cycles
