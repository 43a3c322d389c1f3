"""The player state: bytes round trip, duplicates, the history cap, and its safety checks."""

from __future__ import annotations

import msgspec
import pytest

from badges import PlayerState, apply, compile_rules, progress
from badges.compiled import SHARED_PROJECTIONS
from tests.badges.badge_kit import Player, at, badge, campaign, event, flight

RULES = campaign(
    badge(
        "yvr",
        points=1,
        kind="value",
        event="flight.completed",
        attribute="destination",
        values=["YVR"],
    ),
    badge("three", points=5, kind="count", event="flight.completed", threshold=3),
    badge("streak", kind="streak", event="flight.completed", threshold=2, within="P3D"),
    scoring=[{"event": "flight.completed", "points": 2, "where": {"cabin": "business"}}],
)


def test_the_state_round_trips_through_bytes_and_keeps_folding() -> None:
    engine = compile_rules(RULES)
    state, _ = apply(
        engine,
        None,
        [flight("2013-06-03T10:00:00Z", "a", destination="YUL", cabin="business", seat="12A")],
    )
    data = state.to_bytes()
    copy = PlayerState.from_bytes(data)
    assert copy == state
    # Only what the rules read is kept, keyed by slot: "cabin" and "destination", not "seat".
    assert sorted(copy.facts[0].attributes.values()) == ["YUL", "business"]
    copy, effects = apply(engine, copy, [flight("2013-06-04T10:00:00Z", "b")])
    assert [(a.badge, a.awarded_at) for a in effects.awarded] == [
        ("streak", at("2013-06-04T10:00:00Z"))
    ]
    assert len(data) < 200


def test_an_empty_state_is_the_same_as_none() -> None:
    engine = compile_rules(RULES)
    one, _ = apply(engine, None, [flight("2013-06-03T10:00:00Z", "a")])
    two, _ = apply(engine, PlayerState.empty(), [flight("2013-06-03T10:00:00Z", "a")])
    assert one == two


def test_the_same_event_id_twice_changes_nothing() -> None:
    player = Player(RULES)
    first = flight("2013-06-03T10:00:00Z", "pnr-1-seg-1", cabin="business")
    player.send(first)
    replay = player.send(first)
    assert (replay.awarded, replay.moved, replay.progress) == ([], [], [])
    assert replay.score_before == replay.score_after == 2
    # Even with another time (the service rejects such a reuse; the engine keeps the first):
    player.send(flight("2013-06-02T10:00:00Z", "pnr-1-seg-1", cabin="business"))
    player.send(first, first)
    assert player.score == 2
    assert player.state is not None and len(player.state.facts) == 1


def test_a_duplicate_is_recognised_after_a_trip_through_bytes() -> None:
    engine = compile_rules(RULES)
    first = flight("2013-06-03T10:00:00Z", "a", cabin="business")
    state, _ = apply(engine, None, [first, flight("2013-06-05T10:00:00Z", "b")])
    state, effects = apply(engine, PlayerState.from_bytes(state.to_bytes()), [first])
    assert effects.score_after == effects.score_before == 2


def test_events_that_no_rule_reads_are_not_kept() -> None:
    engine = compile_rules(RULES)
    state, effects = apply(engine, None, [event("hotel.stayed", "2013-06-03T10:00:00Z")])
    assert state.facts == [] and effects.progress == []


def test_a_state_refuses_other_rules() -> None:
    state, _ = apply(compile_rules(RULES), None, [flight("2013-06-03T10:00:00Z")])
    other = compile_rules(campaign(badge("x", kind="count", event="flight.completed", threshold=1)))
    with pytest.raises(ValueError, match="other campaign rules"):
        apply(other, state, [])
    with pytest.raises(ValueError, match="other campaign rules"):
        progress(other, state)


def test_a_state_outlives_an_earlier_end_and_a_longer_grace() -> None:
    yvr = flight("2013-06-03T10:00:00Z", destination="YVR")
    state, _ = apply(compile_rules(RULES), None, [yvr])
    ended = msgspec.structs.replace(RULES, ends_at=at("2013-06-10T00:00:00Z"), grace="P30D")
    state, effects = apply(compile_rules(ended), state, [flight("2013-06-04T10:00:00Z")])
    assert effects.score_before == 1 and "yvr" in state.awards


def test_progress_lists_every_badge() -> None:
    engine = compile_rules(RULES)
    state, _ = apply(
        engine,
        None,
        [flight("2013-06-03T10:00:00Z"), flight("2013-06-04T10:00:00Z", destination="YVR")],
    )
    assert [(p.badge, p.current, p.target) for p in progress(engine, state)] == [
        ("yvr", 1, 1),
        ("three", 2, 3),
        ("streak", 2, 2),
    ]
    assert [(p.badge, p.current) for p in progress(engine, None)] == [
        ("yvr", 0),
        ("three", 0),
        ("streak", 0),
    ]


class TestHistoryCap:
    """Past the cap, the oldest events are folded into a checkpoint."""

    RULES = campaign(
        badge("five", points=5, kind="count", event="flight.completed", threshold=5),
        badge(
            "yvr",
            points=1,
            kind="value",
            event="flight.completed",
            attribute="destination",
            values=["YVR"],
        ),
        scoring=[{"event": "flight.completed", "points": 1}],
    )

    def days(self, *days: int, **attributes: str) -> list:  # type: ignore[type-arg]
        return [flight(f"2013-06-{d:02d}T10:00:00Z", f"d{d}", **attributes) for d in days]

    def test_the_history_is_capped_and_results_stay_exact(self) -> None:
        engine = compile_rules(self.RULES, history_cap=4)
        player = Player(engine).feed(self.days(1, 2, 3, 4, 5, 6, 7, 8))
        assert player.state is not None and len(player.state.facts) <= 4
        assert player.badges == {"five": at("2013-06-05T10:00:00Z")}
        assert player.score == 5 + 8

    def test_a_late_event_newer_than_the_checkpoint_is_refolded_exactly(self) -> None:
        engine = compile_rules(self.RULES, history_cap=4)
        player = Player(engine).feed(self.days(1, 2, 3, 4, 5, 6, 8))
        player.send(*self.days(7, destination="YVR"))
        assert player.badges["yvr"] == at("2013-06-07T10:00:00Z")

    def test_a_late_event_older_than_the_checkpoint_counts_at_the_checkpoint(self) -> None:
        engine = compile_rules(self.RULES, history_cap=4)
        player = Player(engine).feed(self.days(10, 11, 12, 13, 14, 15, 16))
        state = player.state
        assert state is not None and state.checkpoint is not None
        assert [f.id for f in state.facts] == ["d13", "d14", "d15", "d16"]
        checkpoint_day = at("2013-06-12T10:00:00Z")  # 10, 11 and 12 are in the checkpoint
        assert player.badges == {"five": at("2013-06-14T10:00:00Z")}

        effects = player.send(*self.days(1, destination="YVR"))

        # It counts, for badges and points, but as if it occurred at the checkpoint instead
        # of on June 1st: "five" moves one day earlier, not two.
        assert player.badges == {"yvr": checkpoint_day, "five": at("2013-06-13T10:00:00Z")}
        assert [(a.badge, a.awarded_at) for a in effects.moved] == [
            ("five", at("2013-06-13T10:00:00Z"))
        ]
        assert (effects.score_before, effects.score_after) == (5 + 7, 5 + 1 + 8)


def test_equal_string_attributes_share_one_projection_and_other_values_stay_apart() -> None:
    engine = compile_rules(RULES)
    state, _ = apply(
        engine,
        None,
        [
            flight("2013-06-03T10:00:00Z", "a", destination="YUL", cabin="business"),
            flight("2013-06-04T10:00:00Z", "b", destination="YUL", cabin="business"),
            flight("2013-06-05T10:00:00Z", "c", destination="YUL", cabin=1),
            flight("2013-06-06T10:00:00Z", "d", destination="YVR", cabin=True),  # kept: yvr
        ],
    )
    a, b, c, d = (fact.attributes for fact in state.facts)
    assert a is b  # the same strings: one dict, which no fact ever modifies
    slot = engine.types["flight.completed"].slots["cabin"]
    assert type(c[slot]) is int and d[slot] is True  # 1 and True are not JSON-equal
    assert PlayerState.from_bytes(state.to_bytes()) == state
    kind = engine.types["flight.completed"]
    projected = [kind.project({"destination": "YUL", "cabin": v}) for v in (1, True, 1.0, 1)]
    assert [type(p[slot]) for p in projected] == [int, bool, float, int]


def test_shared_projections_are_bounded() -> None:
    engine = compile_rules(RULES)
    kind = engine.types["flight.completed"]
    for i in range(SHARED_PROJECTIONS + 10):
        kind.project({"destination": f"X{i}"})
    assert len(kind.projections) == SHARED_PROJECTIONS
    assert kind.project({"destination": "new"}) == {kind.slots["destination"]: "new"}
