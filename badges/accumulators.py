"""What a player's fold remembers per criterion, and how one event advances it.

A `Tally` is the compiled, per-campaign half of a criterion (thresholds, window length); an `Acc`
is the per-player half, a small msgspec Struct stored in `PlayerState`. `step` folds one matching
event *later than every event folded before* and says whether the criterion is now met; the
engine guarantees that order (a late event makes it refold), so no tally has to handle
out-of-order input. A met criterion's accumulator is dropped: the award time is all that matters.

Windowed tallies implement `within`: the criterion is met at instant t if the matching events with
occurred_at in (t - within, t] satisfy it. Met-ness can only change at an event, so checking at
each event as it is folded finds the first such t.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from typing import Any, Protocol

import msgspec

from badges.matching import MISSING, number, tally_value
from badges.times import Periods

__all__ = ["Acc", "Tally", "clone"]

Number = int | float
Key = str | int | float
Attributes = Mapping[int, Any]
"""A stored event's attributes, keyed by slot: the position of the name in its type's index."""


class CountAcc(msgspec.Struct, array_like=True, gc=False, tag=1):
    n: int = 0


class SumAcc(msgspec.Struct, array_like=True, gc=False, tag=2):
    total: Number = 0


class SetAcc(msgspec.Struct, array_like=True, gc=False, tag=3):
    """Distinct values (`distinct`) or positions in `values` (`collection`)."""

    seen: set[Key] = set()


class StreakAcc(msgspec.Struct, array_like=True, gc=False, tag=4):
    last: int = 0  # period number of the last matching event; 0 = none yet
    run: int = 0


class CountWindowAcc(msgspec.Struct, array_like=True, gc=False, tag=5):
    """The matching events still inside the window, oldest first (likewise below)."""

    times: list[int] = []


class SumWindowAcc(msgspec.Struct, array_like=True, gc=False, tag=6):
    times: list[int] = []
    values: list[Number] = []
    total: Number = 0


class DistinctWindowAcc(msgspec.Struct, array_like=True, gc=False, tag=7):
    times: list[int] = []
    values: list[Key] = []
    last: dict[Key, int] = {}  # value -> its newest time; its size is the distinct count


class StreakWindowAcc(msgspec.Struct, array_like=True, gc=False, tag=8):
    times: list[int] = []  # the newest event of each period in `periods`
    periods: list[int] = []
    run: int = 0


Acc = (
    CountAcc
    | SumAcc
    | SetAcc
    | StreakAcc
    | CountWindowAcc
    | SumWindowAcc
    | DistinctWindowAcc
    | StreakWindowAcc
)

_clone_encoder = msgspec.msgpack.Encoder()
_clone_decoder = msgspec.msgpack.Decoder(Acc)


def clone(acc: Acc) -> Acc:
    """A deep copy (a refold must not disturb the checkpoint it starts from)."""
    copy: Acc = _clone_decoder.decode(_clone_encoder.encode(acc))
    return copy


class Tally(Protocol):
    target: int
    direct: bool  # the value to fold is the index's payload: `extract` need not be called
    instant: bool  # any one matching event meets the criterion

    def extract(self, attributes: Attributes, payload: object) -> object:
        """The value this criterion folds for an event, or MISSING if the event does not count.
        `payload` is what the index stored with the match (a position in `values`)."""

    def new(self) -> Acc | None: ...

    def step(self, acc: Any, t: int, value: Any) -> bool: ...

    def current(self, acc: Any) -> int: ...

    def insert(self, acc: Any, value: Any) -> bool | None:
        """Fold a value that sorts before some already folded, if the result cannot depend on the
        order (exact arithmetic, sets), and say whether the criterion is now met: only the met
        case needs a refold, to find when. None, leaving `acc` untouched, if the order could
        matter: the caller must refold."""


class _Ordered:
    """Folds whose result depends on the order of the values (windows, streaks)."""

    instant = False

    def insert(self, acc: Any, value: Any) -> bool | None:
        return None


class _Payload:
    """The index already found the value (`value`, `collection`) or none is needed."""

    direct = True

    def extract(self, attributes: Attributes, payload: object) -> object:
        return payload


class _NumberOf:
    direct = False
    attribute: int  # the attribute's slot in the stored event

    def extract(self, attributes: Attributes, payload: object) -> object:
        value = number(attributes.get(self.attribute))
        return MISSING if value is None else value


class _ValueOf:
    direct = False
    attribute: int  # the attribute's slot in the stored event

    def extract(self, attributes: Attributes, payload: object) -> object:
        value = attributes.get(self.attribute)
        if type(value) is str:  # the common case, first
            return value
        value = tally_value(value)
        return MISSING if value is None else value


class ValueTally(_Payload):
    """`value`, with or without `within`: one matching event meets it."""

    target = 1
    instant = True

    def new(self) -> Acc | None:
        return None

    def step(self, acc: None, t: int, value: object) -> bool:
        return True

    def insert(self, acc: None, value: object) -> bool | None:
        return True

    def current(self, acc: None) -> int:
        return 0


class CountTally(_Payload):
    instant = False

    def __init__(self, threshold: int) -> None:
        self.target = threshold

    def new(self) -> Acc | None:
        return CountAcc()

    def step(self, acc: CountAcc, t: int, value: None) -> bool:
        acc.n += 1
        return acc.n >= self.target

    def insert(self, acc: CountAcc, value: None) -> bool | None:
        return self.step(acc, 0, value)

    def current(self, acc: CountAcc) -> int:
        return acc.n


class SumTally(_NumberOf):
    instant = False

    def __init__(self, attribute: int, threshold: int) -> None:
        self.attribute = attribute
        self.target = threshold

    def new(self) -> Acc | None:
        return SumAcc()

    def step(self, acc: SumAcc, t: int, value: Number) -> bool:
        acc.total += value
        return acc.total >= self.target

    def insert(self, acc: SumAcc, value: Number) -> bool | None:
        # Float addition rounds differently in another order: only integers commute exactly.
        if type(value) is int and type(acc.total) is int:
            return self.step(acc, 0, value)
        return None

    def current(self, acc: SumAcc) -> int:
        return int(acc.total)


class _Distinct:
    target: int
    instant = False

    def new(self) -> Acc | None:
        return SetAcc()

    def step(self, acc: SetAcc, t: int, value: Key) -> bool:
        acc.seen.add(value)
        return len(acc.seen) >= self.target

    def insert(self, acc: SetAcc, value: Key) -> bool | None:
        return self.step(acc, 0, value)

    def current(self, acc: SetAcc) -> int:
        return len(acc.seen)


class DistinctTally(_ValueOf, _Distinct):
    def __init__(self, attribute: int, threshold: int) -> None:
        self.attribute = attribute
        self.target = threshold


class CollectionTally(_Payload, _Distinct):
    """Folds positions in `values` (found by the index), so 1 and "1" stay apart."""

    def __init__(self, needed: int) -> None:
        self.target = needed


class StreakTally(_Ordered, _Payload):
    def __init__(self, threshold: int, periods: Periods) -> None:
        self.target = threshold
        self.periods = periods

    def new(self) -> Acc | None:
        return StreakAcc()

    def step(self, acc: StreakAcc, t: int, value: None) -> bool:
        period = self.periods(t)
        if period != acc.last:
            acc.run = acc.run + 1 if period == acc.last + 1 else 1
            acc.last = period
        return acc.run >= self.target

    def current(self, acc: StreakAcc) -> int:
        return acc.run


def _expire(times: list[int], cut: int, *parallel: list[Any]) -> int:
    """Drop the entries at or before `cut` from `times` and the parallel lists; how many."""
    gone = bisect_right(times, cut)
    if gone:
        del times[:gone]
        for values in parallel:
            del values[:gone]
    return gone


class CountWindow(_Ordered, _Payload):
    def __init__(self, threshold: int, within_us: int) -> None:
        self.target = threshold
        self.within = within_us

    def new(self) -> Acc | None:
        return CountWindowAcc()

    def step(self, acc: CountWindowAcc, t: int, value: None) -> bool:
        acc.times.append(t)
        _expire(acc.times, t - self.within)
        return len(acc.times) >= self.target

    def current(self, acc: CountWindowAcc) -> int:
        return len(acc.times)


class SumWindow(_Ordered, _NumberOf):
    def __init__(self, attribute: int, threshold: int, within_us: int) -> None:
        self.attribute = attribute
        self.target = threshold
        self.within = within_us

    def new(self) -> Acc | None:
        return SumWindowAcc()

    def step(self, acc: SumWindowAcc, t: int, value: Number) -> bool:
        acc.times.append(t)
        acc.values.append(value)
        acc.total += value
        gone = bisect_right(acc.times, t - self.within)
        if gone:
            # Subtracting what leaves keeps a step cheap; the fold order is fixed, so any
            # float rounding is the same whatever order the events arrived in.
            acc.total -= sum(acc.values[:gone])
            _expire(acc.times, t - self.within, acc.values)
        return acc.total >= self.target

    def current(self, acc: SumWindowAcc) -> int:
        return int(acc.total)


class _DistinctWindow(_Ordered):
    target: int
    within: int

    def new(self) -> Acc | None:
        return DistinctWindowAcc()

    def step(self, acc: DistinctWindowAcc, t: int, value: Key) -> bool:
        acc.times.append(t)
        acc.values.append(value)
        acc.last[value] = t
        gone = bisect_right(acc.times, t - self.within)
        for gone_t, gone_value in zip(acc.times[:gone], acc.values[:gone], strict=True):
            if acc.last.get(gone_value) == gone_t:
                del acc.last[gone_value]
        _expire(acc.times, t - self.within, acc.values)
        return len(acc.last) >= self.target

    def current(self, acc: DistinctWindowAcc) -> int:
        return len(acc.last)


class DistinctWindow(_ValueOf, _DistinctWindow):
    def __init__(self, attribute: int, threshold: int, within_us: int) -> None:
        self.attribute = attribute
        self.target = threshold
        self.within = within_us


class CollectionWindow(_Payload, _DistinctWindow):
    def __init__(self, needed: int, within_us: int) -> None:
        self.target = needed
        self.within = within_us


class StreakWindow(_Ordered, _Payload):
    """A period counts while its newest event is inside the window."""

    def __init__(self, threshold: int, periods: Periods, within_us: int) -> None:
        self.target = threshold
        self.periods = periods
        self.within = within_us

    def new(self) -> Acc | None:
        return StreakWindowAcc()

    def step(self, acc: StreakWindowAcc, t: int, value: None) -> bool:
        period = self.periods(t)
        if acc.periods and acc.periods[-1] == period:
            acc.times[-1] = t
        else:
            acc.times.append(t)
            acc.periods.append(period)
        _expire(acc.times, t - self.within, acc.periods)
        run, periods = 1, acc.periods
        while run < len(periods) and periods[-run - 1] == periods[-run] - 1:
            run += 1
        acc.run = run
        return run >= self.target

    def current(self, acc: StreakWindowAcc) -> int:
        return acc.run
