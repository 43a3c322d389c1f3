"""The split of a prize pool: exact sums, floor-or-ceiling shares, caps, eligibility, board
order, checked on generated boards against the slow reference at the bottom (Fractions, the
issue's words step by step), plus readable examples and the tier checks a campaign gets."""

from __future__ import annotations

import random
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gamify.campaigns.tiers import Tier, TiersInvalid, parse_tiers, tier_problems
from gamify.payouts.split import (
    Allocation,
    Basis,
    Credit,
    Pool,
    Split,
    Standing,
    allocate,
    parse_pool,
)

SPLITS: list[Split] = ["equal", "proportional", "ranked"]
BASES: list[Basis] = ["badges", "score"]
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------------------------------
# Boards and pools


def board(players: Sequence[tuple[str, int, int, int]]) -> list[Standing]:
    """Standings ranked as the board ranks (player, points, badges, second reached): more points
    first, then whoever reached them first, then player id descending (Redis, equal scores)."""
    ordered = sorted(players, key=lambda p: p[0], reverse=True)
    ordered.sort(key=lambda p: (-p[1], p[3]))
    return [
        Standing(player, points, badges, rank)
        for rank, (player, points, badges, _) in enumerate(ordered, 1)
    ]


@st.composite
def boards(draw: st.DrawFn, most: int = 12) -> list[Standing]:
    names = draw(st.lists(st.text("abcdef", min_size=1, max_size=3), max_size=most, unique=True))
    rows = [
        (
            name,
            draw(st.integers(0, 12)),  # few points: many ties
            draw(st.integers(0, 4)),
            draw(st.integers(0, 3)),  # the second reached: ties there too
        )
        for name in names
    ]
    return board(rows)


@st.composite
def tier_sets(draw: st.DrawFn) -> tuple[Tier, ...]:
    widths = draw(st.lists(st.integers(1, 4), min_size=1, max_size=4))
    parts = draw(st.lists(st.integers(1, 6), min_size=len(widths), max_size=len(widths)))
    open_ended = draw(st.booleans())
    tiers, first = [], 1
    for i, (width, part) in enumerate(zip(widths, parts, strict=True)):
        last = None if open_ended and i == len(widths) - 1 else first + width - 1
        tiers.append(Tier(first, last, Fraction(part, sum(parts))))
        first += width
    return tuple(tiers)


@st.composite
def pools(draw: st.DrawFn, capped: bool | None = None) -> Pool:
    split = draw(st.sampled_from(SPLITS))
    amount = draw(st.integers(0, 120) | st.integers(0, 10**12))
    cap = None
    if capped or (capped is None and draw(st.booleans())):
        cap = draw(st.integers(1, max(1, amount // 3 + 3)) | st.integers(1, 10**12))
    return Pool(
        amount=amount,
        split=split,
        basis=draw(st.sampled_from(BASES)),
        min_badges=draw(st.sampled_from([0, 0, 1, 2])),
        min_score=draw(st.sampled_from([0, 0, 1, 5])),
        tiers=draw(tier_sets()) if split == "ranked" else (),
        max_per_player=cap,
    )


def credits(allocation: Allocation) -> dict[str, int]:
    return {credit.player: credit.amount for credit in allocation.items}


# ---------------------------------------------------------------------------------------------
# Properties


@SETTINGS
@given(pools(), boards())
def test_amounts_add_up_exactly(pool: Pool, standings: list[Standing]) -> None:
    allocation = allocate(pool, standings)
    assert allocation.allocated + allocation.unallocated == pool.amount
    assert sum(credit.amount for credit in allocation.items) == allocation.allocated
    assert all(credit.amount > 0 for credit in allocation.items)
    rank = {standing.player: standing.rank for standing in standings}
    ranks = [rank[credit.player] for credit in allocation.items]
    assert ranks == sorted(set(ranks)), "credits in board order, one per player"


@SETTINGS
@given(pools(capped=False), boards())
def test_without_caps_each_credit_is_the_floor_or_ceiling_of_its_exact_share(
    pool: Pool, standings: list[Standing]
) -> None:
    allocation = allocate(pool, standings)
    shares, _ = exact_shares(pool, standings)
    got = credits(allocation)
    assert set(got) <= set(shares)
    for player, share in shares.items():
        assert got.get(player, 0) in (share.__floor__(), share.__ceil__()), player
    assert allocation.eligible == len(shares)


@SETTINGS
@given(pools(capped=True), boards())
def test_caps_hold_and_nothing_is_left_while_someone_is_below_the_cap(
    pool: Pool, standings: list[Standing]
) -> None:
    assert pool.max_per_player is not None
    allocation = allocate(pool, standings)
    assert all(credit.amount <= pool.max_per_player for credit in allocation.items)
    shares, empty_tiers = exact_shares(pool, standings)
    got = credits(allocation)
    if not empty_tiers and any(got.get(p, 0) < pool.max_per_player for p in shares):
        assert allocation.unallocated == 0


@SETTINGS
@given(pools(), boards(), st.randoms(use_true_random=False))
def test_the_order_of_the_standings_does_not_matter(
    pool: Pool, standings: list[Standing], rng: random.Random
) -> None:
    shuffled = standings[:]
    rng.shuffle(shuffled)
    assert allocate(pool, shuffled) == allocate(pool, standings) == allocate(pool, standings)


@SETTINGS
@given(pools(), boards())
def test_only_eligible_players_are_credited(pool: Pool, standings: list[Standing]) -> None:
    by_player = {standing.player: standing for standing in standings}
    for credit in allocate(pool, standings).items:
        standing = by_player[credit.player]
        assert standing.badges >= pool.min_badges and standing.score >= pool.min_score
        if pool.split == "proportional":
            assert (standing.badges if pool.basis == "badges" else standing.score) > 0
        if pool.split == "ranked":
            assert any(in_tier(standing.rank, tier) for tier in pool.tiers)


@SETTINGS
@given(tier_sets(), boards(), st.integers(0, 10**6))
def test_ranked_ties_on_a_boundary_follow_the_board(
    tiers: tuple[Tier, ...], standings: list[Standing], amount: int
) -> None:
    """Equal points on either side of a tier boundary: the board ranked whoever reached them
    first (then the greater player id) before, and each is paid from the tier of their rank."""
    pool = Pool(amount, "ranked", tiers=tiers)
    got = credits(allocate(pool, standings))
    tier_of = {s.player: next((t for t in tiers if in_tier(s.rank, t)), None) for s in standings}
    for better in standings:
        for worse in standings:
            if better.rank < worse.rank and better.score == worse.score:
                tier = tier_of[worse.player]
                if tier_of[better.player] != tier and tier is not None:
                    members = sum(1 for s in standings if in_tier(s.rank, tier))
                    share = amount * tier.share / members
                    assert got.get(worse.player, 0) in (share.__floor__(), share.__ceil__())


@SETTINGS
@given(pools(), boards())
def test_the_same_as_the_reference(pool: Pool, standings: list[Standing]) -> None:
    assert allocate(pool, standings) == reference(pool, standings)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pools(), boards(most=80))
def test_the_same_as_the_reference_on_larger_boards(pool: Pool, standings: list[Standing]) -> None:
    assert allocate(pool, standings) == reference(pool, standings)


@SETTINGS
@given(st.sampled_from(SPLITS[:2]), st.integers(0, 50), st.integers(1, 30))
def test_equal_weights_share_alike_the_better_ranked_first(
    split: Split, amount: int, n: int
) -> None:
    standings = [Standing(f"p{i:02d}", 7, 2, i + 1) for i in range(n)]
    got = [credits(allocate(Pool(amount, split), standings)).get(s.player, 0) for s in standings]
    assert got == sorted(got, reverse=True) and max(got) - min(got) <= 1 and sum(got) == amount


# ---------------------------------------------------------------------------------------------
# Examples


def test_air_canada_in_small() -> None:
    """10,000,000 miles in proportion to badges among 7 players (the one without badges takes
    no part). Four miles are left after the floors; they go to the largest remainders, 15/17
    (3 badges), 14/17 (9), 11/17 (1) and 9/17, which the two 7-badge players share: the
    better ranked takes it."""
    standings = [
        Standing("ana", 900, 9, 1),
        Standing("ben", 800, 7, 2),
        Standing("cho", 790, 7, 3),
        Standing("dev", 600, 5, 4),
        Standing("eli", 500, 0, 5),
        Standing("fay", 400, 3, 6),
        Standing("gus", 300, 2, 7),
        Standing("hal", 200, 1, 8),
    ]
    allocation = allocate(Pool(10_000_000, "proportional", basis="badges"), standings)
    assert allocation == Allocation(
        items=(
            Credit("ana", 2_647_059),
            Credit("ben", 2_058_824),
            Credit("cho", 2_058_823),
            Credit("dev", 1_470_588),
            Credit("fay", 882_353),
            Credit("gus", 588_235),
            Credit("hal", 294_118),
        ),
        allocated=10_000_000,
        unallocated=0,
        eligible=7,
    )


def test_an_equal_split_of_10_among_3_gives_the_extra_unit_to_the_best_ranked() -> None:
    standings = [Standing("zed", 30, 1, 1), Standing("amy", 20, 1, 2), Standing("bob", 10, 1, 3)]
    expected = (Credit("zed", 4), Credit("amy", 3), Credit("bob", 3))
    assert allocate(Pool(10, "equal"), standings).items == expected
    assert allocate(Pool(10, "equal"), standings[::-1]).items == expected


def test_a_ranked_split_leaves_an_empty_tiers_share_unallocated() -> None:
    """Rank 1 misses min_badges: their tier is empty (nobody moves up into rank 1), its half
    of the pool is reported as unallocated, not given to the other tiers."""
    tiers = parse_tiers(
        [
            {"ranks": "1", "share": 0.5},
            {"ranks": "2-3", "share": 0.3},
            {"ranks": "4-", "share": 0.2},
        ]
    )
    standings = [
        Standing("ann", 90, 0, 1),
        Standing("bea", 80, 2, 2),
        Standing("cal", 70, 1, 3),
        Standing("dan", 60, 1, 4),
    ]
    allocation = allocate(Pool(1000, "ranked", min_badges=1, tiers=tiers), standings)
    assert allocation == Allocation(
        items=(Credit("bea", 150), Credit("cal", 150), Credit("dan", 200)),
        allocated=500,
        unallocated=500,
        eligible=3,
    )


def test_a_ranked_tie_on_the_boundary_goes_by_who_reached_the_points_first() -> None:
    standings = board([("ann", 50, 1, 0), ("bob", 40, 1, 10), ("cy", 40, 1, 5), ("dee", 10, 1, 0)])
    assert [s.player for s in standings] == ["ann", "cy", "bob", "dee"]
    tiers = parse_tiers([{"ranks": "1-2", "share": 0.6}, {"ranks": "3-", "share": 0.4}])
    assert allocate(Pool(100, "ranked", tiers=tiers), standings).items == (
        Credit("ann", 30),
        Credit("cy", 30),
        Credit("bob", 20),
        Credit("dee", 20),
    )


def test_a_cap_that_binds_everyone_leaves_the_rest_unallocated() -> None:
    standings = [Standing("a", 3, 1, 1), Standing("b", 2, 1, 2), Standing("c", 1, 1, 3)]
    allocation = allocate(Pool(1000, "proportional", max_per_player=100), standings)
    assert allocation == Allocation(
        items=(Credit("a", 100), Credit("b", 100), Credit("c", 100)),
        allocated=300,
        unallocated=700,
        eligible=3,
    )


def test_a_capped_players_excess_goes_to_the_others_by_their_weights() -> None:
    """60/30/10 capped at 50: the 10 over goes 3:1 to the others, 37.5 and 12.5; the one unit
    left after the floors goes to the better ranked of the two equal remainders."""
    standings = [Standing("a", 9, 6, 1), Standing("b", 8, 3, 2), Standing("c", 7, 1, 3)]
    pool = Pool(100, "proportional", basis="badges", max_per_player=50)
    assert allocate(pool, standings).items == (Credit("a", 50), Credit("b", 38), Credit("c", 12))


def test_nobody_eligible_leaves_the_whole_pool_unallocated() -> None:
    standings = [Standing("a", 0, 0, 1), Standing("b", 0, 0, 2)]
    assert allocate(Pool(50, "proportional"), standings) == Allocation((), 0, 50, 0)
    assert allocate(Pool(50, "equal"), []) == Allocation((), 0, 50, 0)


def test_a_large_equal_split_gives_the_extra_units_to_the_best_ranked() -> None:
    standings = [Standing(f"p{i:06d}", 1, 1, i + 1) for i in range(200_000)]
    allocation = allocate(Pool(2_000_003, "equal"), standings[::-1])
    assert allocation.allocated == 2_000_003 and len(allocation.items) == 200_000
    assert allocation.items[2] == Credit("p000002", 11) and allocation.items[3].amount == 10


def test_a_rank_given_twice_falls_back_to_the_player_id() -> None:
    """A board never gives one rank twice, but if standings do, the order is still theirs."""
    standings = [Standing("b", 5, 1, 1), Standing("a", 5, 1, 1), Standing("c", 1, 1, 2)]
    expected = (Credit("a", 2), Credit("b", 2), Credit("c", 1))
    assert allocate(Pool(5, "equal"), standings).items == expected
    assert allocate(Pool(5, "equal"), standings[::-1]).items == expected


def test_bad_input_is_refused() -> None:
    twice = [Standing("a", 1, 1, 1), Standing("a", 1, 1, 2)]
    with pytest.raises(ValueError, match="'a' stands more than once"):
        allocate(Pool(10, "equal"), twice)
    with pytest.raises(ValueError, match="negative"):
        allocate(Pool(-1, "equal"), [])
    with pytest.raises(ValueError, match="max_per_player"):
        allocate(Pool(10, "equal", max_per_player=0), [])
    overlapping = (Tier(1, 2, Fraction(1, 2)), Tier(2, None, Fraction(1, 2)))
    with pytest.raises(TiersInvalid, match=r"tiers\[1\]\.ranks: rank 2 is also in tiers\[0\]"):
        allocate(Pool(10, "ranked", tiers=overlapping), [])
    with pytest.raises(TiersInvalid, match="at least one tier"):
        allocate(Pool(10, "ranked"), [])


# ---------------------------------------------------------------------------------------------
# Tiers in a campaign document


def tiers(*pairs: tuple[Any, Any]) -> list[dict[str, Any]]:
    return [{"ranks": ranks, "share": share} for ranks, share in pairs]


def test_tiers_that_overlap_name_the_other_tier() -> None:
    assert tier_problems(tiers(("1-3", 0.5), ("3-10", 0.25), ("11-", 0.25))) == [
        (
            "prize_pool.tiers[1].ranks",
            "rank 3 is also in prize_pool.tiers[0]: each rank must be in one tier only",
        )
    ]


def test_ranks_in_no_tier_are_a_gap() -> None:
    assert tier_problems(tiers(("1", 0.5), ("2-4", 0.25), ("8-", 0.25))) == [
        ("prize_pool.tiers[2].ranks", "ranks 5-7 are in no tier")
    ]
    assert tier_problems(tiers(("2-", 1))) == [
        ("prize_pool.tiers[0].ranks", "rank 1 is in no tier: the tiers must start at rank 1")
    ]


def test_only_the_last_tier_may_be_open_ended() -> None:
    problems = tier_problems(tiers(("1", 0.5), ("5-", 0.25), ("2-4", 0.25)))
    assert problems == [
        (
            "prize_pool.tiers[1].ranks",
            'takes every rank from 5 on ("5-"): it must be the last tier',
        ),
        (
            "prize_pool.tiers[2].ranks",
            "must come before prize_pool.tiers[1]: list the tiers from rank 1 down",
        ),
    ]


def test_shares_must_add_up_to_exactly_1() -> None:
    assert tier_problems(tiers(("1", 0.3), ("2", 0.3), ("3-", 0.3))) == [
        ("prize_pool.tiers", "the shares add up to 0.9, not exactly 1")
    ]
    # Exactly as written: ten shares of 0.1 add up to 1, though not as floats.
    assert sum([0.1] * 10) != 1
    ten = parse_tiers(tiers(*((str(i), 0.1) for i in range(1, 10)), ("10-", 0.1)))
    assert sum(tier.share for tier in ten) == 1 and ten[0].share == Fraction(1, 10)


def test_shares_must_be_positive_numbers() -> None:
    assert tier_problems(tiers(("1", 0), ("2", -0.5), ("3", True), ("4-", "0.5"))) == [
        ("prize_pool.tiers[0].share", "must be more than 0"),
        ("prize_pool.tiers[1].share", "must be more than 0"),
        ("prize_pool.tiers[2].share", "must be a number, like 0.25"),
        ("prize_pool.tiers[3].share", "must be a number, like 0.25"),
    ]


def test_bad_rank_text_names_its_field() -> None:
    expected = 'must be ranks like "1", "2-10" or "11-"'
    assert tier_problems(tiers(("1", 0.25), ("2\u201310", 0.25), ("0", 0.25), (11, 0.25))) == [
        ("prize_pool.tiers[1].ranks", f'{expected}, not "2\u201310"'),
        ("prize_pool.tiers[2].ranks", f'{expected}, not "0"'),
        ("prize_pool.tiers[3].ranks", expected),
    ]
    assert tier_problems([{"ranks": "10-2", "share": 1}], path="tiers") == [
        ("tiers[0].ranks", '"10-2" ends before it starts: write "2-10"')
    ]
    assert tier_problems([{"share": 1}, "1-"]) == [
        ("prize_pool.tiers[0].ranks", "is required"),
        ("prize_pool.tiers[1]", 'must be an object like {"ranks": "2-10", "share": 0.25}'),
    ]
    assert tier_problems([]) == [("prize_pool.tiers", "a ranked split needs at least one tier")]


def test_good_tiers_have_no_problems_and_parse_exactly() -> None:
    document = tiers(("1", 0.25), ("2-10", 0.25), ("11-", 0.5))
    assert tier_problems(document) == []
    assert parse_tiers(document) == (
        Tier(1, 1, Fraction(1, 4)),
        Tier(2, 10, Fraction(1, 4)),
        Tier(11, None, Fraction(1, 2)),
    )
    with pytest.raises(TiersInvalid) as invalid:
        parse_tiers(tiers(("1", 0.5), ("3-", 0.5)))
    assert invalid.value.problems == [("prize_pool.tiers[1].ranks", "rank 2 is in no tier")]


def test_a_prize_pool_document_becomes_a_pool() -> None:
    document = {
        "amount": 1000,
        "unit": "miles",
        "split": "ranked",
        "eligibility": {"min_badges": 2},
        "tiers": tiers(("1", 0.5), ("2-", 0.5)),
        "max_per_player": 600,
    }
    assert parse_pool(document) == Pool(
        1000,
        "ranked",
        min_badges=2,
        tiers=(Tier(1, 1, Fraction(1, 2)), Tier(2, None, Fraction(1, 2))),
        max_per_player=600,
    )


# ---------------------------------------------------------------------------------------------
# The reference: slow and plain, with Fractions


def in_tier(rank: int, tier: Tier) -> bool:
    return tier.first <= rank and (tier.last is None or rank <= tier.last)


def exact_shares(pool: Pool, standings: Sequence[Standing]) -> tuple[dict[str, Fraction], bool]:
    """Each eligible player's exact share before caps, and whether a ranked tier is empty."""
    eligible = [s for s in standings if s.badges >= pool.min_badges and s.score >= pool.min_score]
    if pool.split == "equal":
        return {s.player: Fraction(pool.amount, len(eligible)) for s in eligible}, False
    if pool.split == "proportional":
        weight = {s.player: s.badges if pool.basis == "badges" else s.score for s in eligible}
        total = sum(w for w in weight.values() if w > 0)
        return {p: Fraction(pool.amount * w, total) for p, w in weight.items() if w > 0}, False
    shares: dict[str, Fraction] = {}
    empty = False
    for tier in pool.tiers:
        members = [s.player for s in eligible if in_tier(s.rank, tier)]
        empty = empty or not members
        shares |= {p: pool.amount * tier.share / len(members) for p in members}
    return shares, empty


def reference(pool: Pool, standings: Sequence[Standing]) -> Allocation:
    shares, _ = exact_shares(pool, standings)
    weight = dict(shares)  # the excess over a cap goes to the others by these
    cap, unallocated = pool.max_per_player, Fraction(0)
    while cap is not None:  # cap everyone over, hand out the excess, again
        over = [p for p, share in shares.items() if share > cap]
        if not over:
            break
        excess = sum(shares[p] - cap for p in over)
        shares |= {p: Fraction(cap) for p in over}
        under = [p for p, share in shares.items() if share < cap]
        if not under:
            unallocated += excess
            break
        total = sum(weight[p] for p in under)
        shares |= {p: shares[p] + excess * weight[p] / total for p in under}
    rest = pool.amount - sum(
        shares.values(), Fraction(0)
    )  # empty tiers, and what nobody under a cap took
    rank = {s.player: s.rank for s in standings}
    # Largest remainder: remainder, then the better rank, then player id; the rest party last.
    parties = [(share - share.__floor__(), 0, rank[p], p) for p, share in shares.items()]
    parties.append((rest - rest.__floor__(), 1, 0, ""))
    parties.sort(key=lambda party: (-party[0], party[1], party[2], party[3]))
    units = {p: share.__floor__() for p, share in shares.items()}
    left = pool.amount - sum(units.values()) - rest.__floor__()
    for _, is_rest, _, p in parties[:left]:
        if not is_rest:
            units[p] += 1
    paid = sorted((rank[p], p, n) for p, n in units.items() if n > 0)
    allocated = sum(n for _, _, n in paid)
    return Allocation(
        items=tuple(Credit(p, n) for _, p, n in paid),
        allocated=allocated,
        unallocated=pool.amount - allocated,
        eligible=len(shares),
    )
