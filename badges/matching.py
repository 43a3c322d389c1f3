"""Equality of JSON scalars, as campaign rules mean it.

Python says `True == 1` and `hash(True) == hash(1)`, but a rule `{"vip": true}` must not match
`"vip": 1`. Every value is therefore looked up through `scalar_key`, which keeps numbers equal
across int and float (`1 == 1.0`) and gives booleans keys of their own.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from typing import Any, Final

from badges.criteria import Scalar, Where

__all__ = [
    "MISSING",
    "Checks",
    "compile_where",
    "number",
    "passes",
    "project",
    "scalar_key",
    "tally_value",
]

MISSING: Final = object()
"""An attribute that is absent, or whose value can never equal anything (a list, an object)."""

_TRUE: Final = (True,)
_FALSE: Final = (False,)
_INT64 = (-(2**63), 2**64 - 1)

Checks = tuple[tuple[int, frozenset[Hashable]], ...]
"""`where`, compiled: the value in every slot must have its key in the set."""


def scalar_key(value: object) -> Hashable:
    if value is True:
        return _TRUE
    if value is False:
        return _FALSE
    if value is None or isinstance(value, str | int | float):
        return value
    return MISSING


def compile_where(where: Where | None, slots: Mapping[str, int], skip: str | None = None) -> Checks:
    """`where` as key sets by slot, leaving out the attribute `skip` (the index looks it up)."""
    if not where:
        return ()
    checks = []
    for attribute, wanted in sorted(where.items()):
        if attribute == skip:
            continue
        values = wanted if isinstance(wanted, list) else [wanted]
        checks.append((slots[attribute], frozenset(scalar_key(v) for v in values)))
    return tuple(checks)


def passes(checks: Checks, attributes: Mapping[int, Any]) -> bool:
    return all(scalar_key(attributes.get(slot, MISSING)) in keys for slot, keys in checks)


def project(attributes: Mapping[str, Any], names: tuple[str, ...]) -> dict[int, Scalar]:
    """The attributes the rules can read, by slot (position in `names`), with values that can
    never match dropped.

    The stored history keeps only these, which keeps a player's state small; and both the
    incremental path and a refold read the projection, so they cannot disagree.
    """
    out: dict[int, Scalar] = {}
    for slot, name in enumerate(names):
        value = attributes.get(name, MISSING)
        if type(value) is str or _storable(value):
            out[slot] = value
    return out


def _storable(value: object) -> bool:
    """A JSON scalar that MessagePack can hold (its integers stop at 64 bits)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return _INT64[0] <= value <= _INT64[1]
    return value is None or isinstance(value, str | float | bool)


def number(value: object) -> int | float | None:
    """A value `sum` adds: finite and positive (zero adds nothing; negatives would make a badge
    revocable by a late event). Booleans are not numbers here."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if value > 0 and (isinstance(value, int) or math.isfinite(value)):
        return value
    return None


def tally_value(value: object) -> str | int | float | None:
    """A value `distinct` can count: a string or a number (not a boolean, null or NaN)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
