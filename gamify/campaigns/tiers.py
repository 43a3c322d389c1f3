"""The tiers of a ranked prize pool: `{"ranks": "2-10", "share": 0.25}` as exact Tiers, and
every problem a campaign manager can make with them (overlaps, gaps, shares not adding up to
exactly 1). Checked when a campaign is written, so that settlement never meets a bad tier;
pure, so that payouts.split (which allocates by them) can use it too.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from fractions import Fraction
from typing import Any

import msgspec


class Tier(msgspec.Struct, frozen=True):
    """Ranks `first` to `last` (None: every rank from `first` on) share `share` of the pool."""

    first: int
    last: int | None
    share: Fraction


class TiersInvalid(ValueError):
    """Tiers a ranked split cannot use; `problems` lists (field path, message)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{field}: {message}" for field, message in problems))
        self.problems = problems


def parse_tiers(tiers: Sequence[Mapping[str, Any]]) -> tuple[Tier, ...]:
    """The document's tiers (`{"ranks": "2-10", "share": 0.25}`) as Tiers, shares exact: a
    float share is read as the decimal it was written as (0.1 is 1/10, not the float nearest
    it), so ten shares of 0.1 add up to exactly 1 (as floats they do not). Raises TiersInvalid
    with every problem."""
    problems = tier_problems(tiers)
    if problems:
        raise TiersInvalid(problems)
    parsed: list[Tier] = []
    for tier in tiers:
        ranks, share = _ranks(tier["ranks"]), _share(tier["share"])
        assert not isinstance(ranks, str) and not isinstance(share, str)
        parsed.append(Tier(ranks[0], ranks[1], share))
    return tuple(parsed)


def tier_problems(tiers: Any, path: str = "prize_pool.tiers") -> list[tuple[str, str]]:
    """Every problem of a ranked split's tiers as (field path, message), in tier order: ranks
    that are not "1", "2-10" or "11-", ranks in two tiers, ranks in none (they start at 1 and
    run on without a gap), an open-ended tier that is not the last, tiers out of rank order,
    shares that are not positive numbers or do not add up to exactly 1."""
    if not isinstance(tiers, list | tuple):
        return [(path, "must be a list of tiers")]
    if not tiers:
        return [(path, "a ranked split needs at least one tier")]
    problems: list[tuple[int, str, str]] = []
    spans: list[tuple[int, int | None] | None] = []
    shares: list[Fraction | None] = []
    for i, tier in enumerate(tiers):
        at = f"{path}[{i}]"
        spans.append(None)
        shares.append(None)
        if not isinstance(tier, Mapping):
            problems.append((i, at, 'must be an object like {"ranks": "2-10", "share": 0.25}'))
            continue
        for name in ("ranks", "share"):
            if name not in tier:
                problems.append((i, f"{at}.{name}", "is required"))
        if "ranks" in tier:
            ranks = _ranks(tier["ranks"])
            if isinstance(ranks, str):
                problems.append((i, f"{at}.ranks", ranks))
            else:
                spans[i] = ranks
        if "share" in tier:
            share = _share(tier["share"])
            if isinstance(share, str):
                problems.append((i, f"{at}.share", share))
            else:
                shares[i] = share
    problems += _layout_problems(spans, shares, path)
    problems.sort(key=lambda problem: problem[0])
    return [(field, message) for _, field, message in problems]


def _ranks(text: Any) -> tuple[int, int | None] | str:
    """(first, last) of "1", "2-10" or "11-" (last None), or what is wrong with the text."""
    expected = 'must be ranks like "1", "2-10" or "11-"'
    if not isinstance(text, str):
        return expected
    first_text, dash, last_text = text.partition("-")
    try:
        if not _rank_digits(first_text) or (last_text and not _rank_digits(last_text)):
            raise ValueError(text)
        first, last = int(first_text), int(last_text) if last_text else None
    except ValueError:  # also digits beyond int's string limit
        return f'{expected}, not "{text}"'
    if not dash:
        return first, first
    if last is not None and last < first:
        return f'"{text}" ends before it starts: write "{last}-{first}"'
    return first, last


def _rank_digits(text: str) -> bool:
    return text.isascii() and text.isdigit() and not text.startswith("0")


def _share(value: Any) -> Fraction | str:
    """The share as an exact fraction of the decimal it was written as, or what is wrong."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | Fraction):
        return "must be a number, like 0.25"
    try:
        return Fraction(repr(value)) if isinstance(value, float) else Fraction(value)
    except (ValueError, OverflowError):  # nan, infinity
        return "must be a number, like 0.25"


def _layout_problems(
    spans: Sequence[tuple[int, int | None] | None], shares: Sequence[Fraction | None], path: str
) -> list[tuple[int, str, str]]:
    """Overlaps, gaps, order and shares of tiers whose ranks and shares could be read (None:
    could not be read, already reported)."""
    problems: list[tuple[int, str, str]] = []
    # The tiers accepted so far, without overlaps, sorted by their first rank.
    starts: list[int] = []
    ends: list[float] = []
    owners: list[int] = []
    for i, span in enumerate(spans):
        if span is None:
            continue
        at = f"{path}[{i}].ranks"
        first, last = span
        end = math.inf if last is None else last
        if last is None and i < len(spans) - 1:
            problems.append(
                (i, at, f'takes every rank from {first} on ("{first}-"): it must be the last tier')
            )
        k = bisect.bisect_right(starts, end) - 1  # the accepted tier starting last, <= end
        if k >= 0 and ends[k] >= first:
            j = owners[k]
            both = _span_text(max(first, starts[k]), min(end, ends[k]))
            problems.append(
                (i, at, f"{both} also in {path}[{j}]: each rank must be in one tier only")
            )
            continue
        if k + 1 < len(starts):  # a tier listed earlier covers later ranks
            later = owners[k + 1]
            problems.append(
                (i, at, f"must come before {path}[{later}]: list the tiers from rank 1 down")
            )
        starts.insert(k + 1, first)
        ends.insert(k + 1, end)
        owners.insert(k + 1, i)
    known = [(span[0], span[1], i) for i, span in enumerate(spans) if span is not None]
    if len(known) == len(spans):  # ranks in no tier, over every tier (overlapping ones too)
        reached: float = 0  # the last rank covered, in rank order
        for first, last, owner in sorted(known, key=lambda span: span[0]):
            if first > reached + 1:
                gap = _span_text(int(reached) + 1, first - 1)
                hint = ": the tiers must start at rank 1" if reached == 0 else ""
                problems.append((owner, f"{path}[{owner}].ranks", f"{gap} in no tier{hint}"))
            reached = max(reached, math.inf if last is None else last)
    for i, share in enumerate(shares):
        if share is not None and share <= 0:
            problems.append((i, f"{path}[{i}].share", "must be more than 0"))
    if all(share is not None for share in shares):
        total = sum((share for share in shares if share is not None), Fraction(0))
        if total != 1:
            problems.append(
                (len(spans), path, f"the shares add up to {_decimal(total)}, not exactly 1")
            )
    return problems


def _span_text(first: int, last: float) -> str:
    if last == first:
        return f"rank {first} is"
    if last == math.inf:
        return f"ranks from {first} on are"
    return f"ranks {first}-{int(last)} are"


def _decimal(value: Fraction) -> str:
    """`value` as a decimal: exact when it has one (any sum of decimal shares does)."""
    rest, digits = value.denominator, 0
    for prime in (2, 5):
        count = 0
        while rest % prime == 0:
            rest //= prime
            count += 1
        digits = max(digits, count)
    if rest != 1:
        return f"about {float(value):.6g}"
    scaled = value.numerator * 10**digits // value.denominator
    text = format(Decimal(scaled).scaleb(-digits), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def check_tiers(tiers: Sequence[Tier]) -> None:
    if not tiers:
        raise TiersInvalid([("tiers", "a ranked split needs at least one tier")])
    spans = [(tier.first, tier.last) for tier in tiers]
    problems = _layout_problems(spans, [tier.share for tier in tiers], "tiers")
    problems += [
        (i, f"tiers[{i}].ranks", "must start at rank 1 or later and not end before it starts")
        for i, tier in enumerate(tiers)
        if tier.first < 1 or (tier.last is not None and tier.last < tier.first)
    ]
    if problems:
        raise TiersInvalid([(field, message) for _, field, message in problems])
