"""The split of a prize pool: who gets how many whole units. Pure: integers, no I/O, no clock.

`allocate(pool, standings)` turns a pool and the board's standings into credits.

**Who takes part** (`Allocation.eligible` counts them). A player with `badges >= min_badges`
and `score >= min_score`, and in an `equal` split that is all; in a `proportional` split the
weight (`badges` or `score`, the pool's `basis`) must also be positive: a weight of 0 gets
nothing; in a `ranked` split the player's rank must fall in a tier.

**Exact shares.** `equal`: `amount / n`. `proportional`: `amount * weight / total weight`.
`ranked`: each tier's share of the amount, split equally among its eligible players:
`amount * share / members`. Ranks are the board's ordinal ranks over every player on the
board, eligible or not: a player who misses `min_badges` keeps their rank (nobody moves up into
it). Ties on a tier boundary are therefore settled by the board's own tie rule, not here: of
equal points, whoever reached them first ranks first (then as Redis orders equal scores), so
two players with equal points can fall in different tiers, the one the board ranks first in the
better one. Players ranked after a closed last tier (`"1"`, `"2-10"`) get nothing.

**An empty tier's share stays unallocated** and is reported in `unallocated`; it is not spread
over the other tiers. The tiers are what the campaign announced ("ranks 2-10 share 25%"):
paying the top ranks more than announced because fewer people played is the pool owner's
decision, not the arithmetic's, and an unallocated amount shows in the preview and the
settlement, where a silent redistribution would not.

**Caps** (`max_per_player`), by water-filling: whoever's share exceeds the cap gets the cap,
the excess goes to the players under it by the same weights (in a ranked split, in proportion
to their exact shares, so tiers keep their ratio), and again until nobody exceeds it. When
everybody is at the cap, the rest stays unallocated. An empty tier's share is not excess and
stays unallocated. Capping the heaviest only raises the others, so the capped are the k
heaviest players, k found by a binary search over the weights sorted once.

**Rounding**, by largest remainder (Hamilton): each player gets the floor of their exact share
(after caps), and the units left over go one each to the largest fractional remainders. The
unallocated share of empty tiers takes part as one more party, so it too is the floor or the
ceiling of its exact amount. **Tie order** of equal remainders: the better board rank first,
then the player id (code point order), the unallocated share after every player. Equal-weight
players have equal remainders, so in an equal split of 10 among 3 the best ranked gets 4.
Nothing depends on the order of `standings`.

**Guarantees.** The credits add up to `allocated`, and `allocated + unallocated == amount`.
Every credit is the floor or the ceiling of its exact share after caps, hence never above the
cap (a capped share is the cap itself, a whole number; a share below it rounds up to at most
it). With caps, nothing is left unallocated while a player is below the cap (empty tiers
aside). `items` lists the players credited more than 0, in board order: rank, then player id.

**Cost.** Every pass over the players is a comprehension or runs in C (filter, sort, sums,
the remainder order); fractions are per tier, never per player. 1,000,000 standings in board
order take about 1 s (equal, ranked, badges) to 3 s (score, nearly every score distinct) of CPU
on a slow shared 2-vCPU machine; out of order, up to twice that (the sort and the cache).
"""

from __future__ import annotations

import bisect
import heapq
import math
import operator
from collections import Counter
from collections.abc import Mapping, Sequence
from fractions import Fraction
from itertools import accumulate, compress, islice
from operator import attrgetter
from typing import Any, Literal

import msgspec

from gamify.campaigns.tiers import Tier, check_tiers, parse_tiers

Split = Literal["equal", "proportional", "ranked"]
Basis = Literal["badges", "score"]

# Board order, and the tie order of equal remainders: better rank first, then player id.
_BOARD_ORDER = attrgetter("rank", "player")
_RANK, _PLAYER = attrgetter("rank"), attrgetter("player")
_BADGES, _SCORE = attrgetter("badges"), attrgetter("score")


class Standing(msgspec.Struct, frozen=True, gc=False):
    """A player on the campaign's board. `rank` is the ordinal board rank from 1 (the board
    already broke ties: equal points rank whoever reached them first)."""

    player: str
    score: int
    badges: int
    rank: int


class Pool(msgspec.Struct, frozen=True):
    amount: int
    split: Split
    basis: Basis = "score"
    min_badges: int = 0
    min_score: int = 0
    tiers: tuple[Tier, ...] = ()
    max_per_player: int | None = None


class Credit(msgspec.Struct, frozen=True, gc=False):
    player: str
    amount: int


class Allocation(msgspec.Struct, frozen=True):
    """`items`: players credited more than 0, in board order (rank, then player id)."""

    items: tuple[Credit, ...]
    allocated: int
    unallocated: int
    eligible: int


# ---------------------------------------------------------------------------------------------
# Tiers: parsed from the campaign document, checked for overlaps, gaps and their shares.


def parse_pool(prize_pool: Mapping[str, Any]) -> Pool:
    """A valid `prize_pool` of a campaign document as a Pool (tiers parsed when ranked; a
    ranked pool's bad tiers raise TiersInvalid, anything else is trusted as validated)."""
    eligibility: Mapping[str, Any] = prize_pool.get("eligibility") or {}
    split: Split = prize_pool["split"]
    return Pool(
        amount=prize_pool["amount"],
        split=split,
        basis=prize_pool.get("basis", "score"),
        min_badges=eligibility.get("min_badges", 0),
        min_score=eligibility.get("min_score", 0),
        tiers=parse_tiers(prize_pool["tiers"]) if split == "ranked" else (),
        max_per_player=prize_pool.get("max_per_player"),
    )


# ---------------------------------------------------------------------------------------------
# The allocation.


def allocate(pool: Pool, standings: Sequence[Standing]) -> Allocation:
    """Split `pool` among the eligible of `standings` (see the module docstring)."""
    amount, cap = pool.amount, pool.max_per_player
    if amount < 0:
        raise ValueError(f"a pool's amount cannot be negative: {amount}")
    if cap is not None and cap < 1:
        raise ValueError(f"max_per_player must be at least 1: {cap}")
    if pool.split == "ranked":
        check_tiers(pool.tiers)
    if len(set(map(_PLAYER, standings))) != len(standings):
        twice = Counter(map(_PLAYER, standings)).most_common(1)[0][0]
        raise ValueError(f"player {twice!r} stands more than once in the standings")

    low_badges, low_score = pool.min_badges, pool.min_score
    if pool.split == "proportional":  # a weight of 0 takes no part
        if pool.basis == "badges":
            low_badges = max(low_badges, 1)
        else:
            low_score = max(low_score, 1)
    players = [s for s in standings if s.badges >= low_badges and s.score >= low_score]
    _board_order(players)

    pot = Fraction(amount)
    if pool.split == "equal":
        weights = [1] * len(players)
    elif pool.split == "proportional":
        weights = list(map(_BADGES if pool.basis == "badges" else _SCORE, players))
    else:
        pot, players, weights = _ranked(amount, pool.tiers, players)
    if not players:
        return Allocation(items=(), allocated=0, unallocated=amount, eligible=0)

    amounts = _amounts(amount, pot, weights, cap)
    allocated = sum(amounts)
    # Players paired with their amounts, those of 0 left out.
    names = compress(map(_PLAYER, players), amounts)
    items = tuple(map(Credit, names, filter(None, amounts)))
    return Allocation(
        items=items, allocated=allocated, unallocated=amount - allocated, eligible=len(players)
    )


def _board_order(players: list[Standing]) -> None:
    """Sort by rank, then player id (the latter only matters if a rank occurs twice, which a
    board never does: sorting by the rank alone is many times faster)."""
    players.sort(key=_RANK)
    ranks = list(map(_RANK, players))
    if any(map(operator.eq, ranks, islice(ranks, 1, None))):
        players.sort(key=_BOARD_ORDER)


def _ranked(
    amount: int, tiers: Sequence[Tier], players: list[Standing]
) -> tuple[Fraction, list[Standing], list[int]]:
    """The part of the amount whose tiers have players, those players in board order, and their
    weights: integers in proportion to each one's exact share (a tier's share / its members)."""
    members: list[list[Standing]] = []
    for tier in tiers:  # `players` is in rank order: each tier is a slice of it
        start = bisect.bisect_left(players, tier.first, key=_RANK)
        end = (
            len(players)
            if tier.last is None
            else bisect.bisect_right(players, tier.last, key=_RANK)
        )
        members.append(players[start:end])
    filled = [(tier.share, len(group)) for tier, group in zip(tiers, members, strict=True) if group]
    scale = math.lcm(*(share.denominator * n for share, n in filled)) if filled else 1
    weights: list[int] = []
    for share, n in filled:
        weights += [share.numerator * scale // (share.denominator * n)] * n
    pot = amount * sum((share for share, _ in filled), Fraction(0))
    return pot, [player for group in members for player in group], weights


def _amounts(amount: int, pot: Fraction, weights: list[int], cap: int | None) -> list[int]:
    """Whole units for each weight: `pot` (at most `amount`) split in proportion to the
    weights, capped at `cap` by water-filling, rounded by largest remainder. The rest of
    `amount` (`amount - pot`, the empty tiers) is one more party, ranked after the players of
    an equal remainder; its units are what the caller finds unallocated.

    Every pass over the players is a comprehension or runs in C (sort, bisect, sum); the
    exact shares are `pot_num * weight / den`, with one denominator for every remainder."""
    n = len(weights)
    pot_num, pot_den = pot.numerator, pot.denominator
    total = sum(weights)
    top = total  # players heavier than this are at the cap: none yet
    ceiling = cap or 0
    if cap is not None:
        # Water-filling: capping the heaviest can only push the others up, so the capped are
        # the k heaviest, k the first for which the next heaviest stays under the cap (this
        # test turns true once and stays true, and never in the middle of equal weights).
        heaviest = sorted(weights, reverse=True)
        above = [0, *accumulate(heaviest)]

        def fits(k: int) -> bool:  # the (k+1)-th heaviest, with the k heaviest capped
            rest_num = pot_num - pot_den * cap * k
            return rest_num * heaviest[k] <= cap * pot_den * (total - above[k])

        k = bisect.bisect_left(range(n), True, key=fits)
        if k == n:
            return [cap] * n  # everybody at the cap: the rest is unallocated
        top, total = heaviest[k], total - above[k]
        pot_num -= pot_den * cap * k
    den = pot_den * total
    units = [ceiling if w > top else pot_num * w // den for w in weights]
    rest = amount - pot  # the empty tiers' share: one more party
    left = amount - sum(units) - math.floor(rest)
    if left == 0:
        return units
    # Largest remainder first; equal remainders in board order (a stable sort of the players,
    # who come in board order); the rest party after the players of its own remainder.
    remainders = [0 if w > top else pot_num * w % den for w in weights]
    if left * 8 < n:
        first = heapq.nlargest(left, range(n), key=remainders.__getitem__)
    else:
        first = sorted(range(n), key=remainders.__getitem__, reverse=True)[:left]
    rest_num, rest_den = (rest - math.floor(rest)).as_integer_ratio()
    if rest_num:
        # Players whose remainder (over den) is at least the rest party's come before it.
        least = -(-rest_num * den // rest_den)
        before = bisect.bisect_right(first, -least, key=lambda i: -remainders[i])
        if before < left:
            del first[-1]  # the rest party's unit, left unallocated
    for i in first:
        units[i] += 1
    return units
