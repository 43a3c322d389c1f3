"""Badge criteria: a tagged union on `kind`, exactly as written in the campaign JSON.

Every kind but `badges` names the event `type` it looks at, and takes an optional `where`
(each attribute must equal the value, or one of the values of a list) and an optional rolling
`within` window (an ISO 8601 duration). Numbers are checked by `validate`, not by decoding, so that
one campaign gets all its problems reported at once.
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = [
    "BadgesCriterion",
    "CollectionCriterion",
    "CountCriterion",
    "Criterion",
    "DistinctCriterion",
    "Scalar",
    "StreakCriterion",
    "SumCriterion",
    "ValueCriterion",
    "Where",
]

Scalar = str | int | float | bool | None
Where = dict[str, Scalar | list[Scalar]]


class _Criterion(msgspec.Struct, kw_only=True, tag_field="kind"):
    where: Where | None = None
    within: str | None = None


class ValueCriterion(_Criterion, tag="value"):
    """An event whose `attribute` is one of `values`."""

    event: str
    attribute: str
    values: list[Scalar]


class CountCriterion(_Criterion, tag="count"):
    """`threshold` matching events."""

    event: str
    threshold: int


class SumCriterion(_Criterion, tag="sum"):
    """The sum of the numeric, positive values of `attribute` reaches `threshold`."""

    event: str
    attribute: str
    threshold: int


class DistinctCriterion(_Criterion, tag="distinct"):
    """`threshold` distinct values (strings or numbers) of `attribute`."""

    event: str
    attribute: str
    threshold: int


class CollectionCriterion(_Criterion, tag="collection"):
    """Every one of `values` seen for `attribute`, or `min` of them."""

    event: str
    attribute: str
    values: list[Scalar]
    min: int | None = None


class StreakCriterion(_Criterion, tag="streak"):
    """Matching events in `threshold` consecutive periods of the campaign's time zone."""

    event: str
    threshold: int
    period: Literal["day", "week"] = "day"


class BadgesCriterion(_Criterion, tag="badges"):
    """The player holds `min` (default all) of the badges in `values`."""

    values: list[str]
    min: int | None = None


Criterion = (
    ValueCriterion
    | CountCriterion
    | SumCriterion
    | DistinctCriterion
    | CollectionCriterion
    | StreakCriterion
    | BadgesCriterion
)
