"""Properties: the result is the sorted fold of the events, whatever their arrival order,
batching, duplication or trips through bytes; checked against the naive model of
badge_reference.py on generated campaigns that span the 2013 DST change in Toronto."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from badges import (
    Effects,
    Engine,
    Event,
    PlayerState,
    Rules,
    apply,
    compile_rules,
    decode_rules,
    held_badges,
    progress,
    score,
)
from badges.times import to_us
from tests.badges.badge_reference import Outcome, outcome

STARTS = datetime.fromisoformat("2013-03-08T00:00:00-05:00")
ENDS = datetime.fromisoformat("2013-03-13T00:00:00-04:00")  # DST starts 2013-03-10 02:00
GRACE = timedelta(hours=6)
X_RULE_VALUES: list[Any] = ["p", "q", "r", 1, True, None]
X_EVENT_VALUES: list[Any] = ["p", "q", "r", 1, 1.0, 2, True, False, None, [1], {"p": 1}]
N_EVENT_VALUES: list[Any] = [0, 1, 2, 3, 5, 2.5, -4, "3", True, None]

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def where(draw: st.DrawFn) -> dict[str, Any] | None:
    choice = draw(st.sampled_from(["none", "none", "x", "n"]))
    if choice == "x":
        values = draw(st.lists(st.sampled_from(X_RULE_VALUES), min_size=1, max_size=3))
        return {"x": values if len(values) > 1 else values[0]}
    if choice == "n":
        return {"n": draw(st.lists(st.sampled_from([1, 2, 3, 5]), min_size=1, max_size=2))}
    return None


def unique_values(values: list[Any]) -> list[Any]:
    """Distinct by JSON equality (1 and True are different values, 1 and 1.0 the same)."""
    out: list[Any] = []
    for value in values:
        if not any(type(v) is type(value) and v == value for v in out):
            out.append(value)
    return out


@st.composite
def criteria(draw: st.DrawFn, earlier: list[str]) -> dict[str, Any]:
    kinds = ["value", "count", "sum", "distinct", "collection", "streak"]
    kind = draw(st.sampled_from([*kinds, "badges"] if earlier else kinds))
    if kind == "badges":
        refs = draw(st.lists(st.sampled_from(earlier), min_size=1, max_size=3, unique=True))
        out: dict[str, Any] = {"kind": kind, "values": refs}
        if draw(st.booleans()):
            out["min"] = draw(st.integers(1, len(refs)))
        if draw(st.integers(0, 3)) == 0:
            out["within"] = draw(st.sampled_from(["P1D", "P3D"]))
        return out
    out = {"kind": kind, "event": draw(st.sampled_from(["a", "b"]))}
    if kind in ("value", "collection"):
        values = unique_values(
            draw(st.lists(st.sampled_from(X_RULE_VALUES), min_size=1, max_size=4))
        )
        out |= {"attribute": "x", "values": values}
        if kind == "collection" and draw(st.booleans()):
            out["min"] = draw(st.integers(1, len(values)))
    elif kind == "distinct":
        out |= {"attribute": "x", "threshold": draw(st.integers(1, 4))}
    elif kind == "sum":
        out |= {"attribute": "n", "threshold": draw(st.integers(1, 9))}
    elif kind == "count":
        out["threshold"] = draw(st.integers(1, 4))
    else:
        out |= {
            "threshold": draw(st.integers(1, 3)),
            "period": draw(st.sampled_from(["day", "day", "week"])),
        }
    if (filter_ := draw(where())) is not None:
        out["where"] = filter_
    if draw(st.integers(0, 2)) == 0:
        out["within"] = draw(st.sampled_from(["PT6H", "P1D", "P2D"]))
    return out


@st.composite
def campaigns(draw: st.DrawFn, windows: bool = True) -> Rules:
    badges: list[dict[str, Any]] = []
    for i in range(draw(st.integers(1, 6))):
        criterion = draw(criteria([b["id"] for b in badges]))
        if not windows:
            criterion.pop("within", None)
            if criterion["kind"] == "streak":
                criterion = {"kind": "count", "event": criterion["event"], "threshold": 2}
        badges.append(
            {
                "id": f"b{i}",
                "name": f"Badge {i}",
                "points": draw(st.integers(0, 3)),
                "criteria": criterion,
            }
        )
    scoring = [
        {
            "event": draw(st.sampled_from(["a", "b"])),
            "points": draw(st.integers(0, 2)),
            **({"where": w} if (w := draw(where())) else {}),
        }
        for _ in range(draw(st.integers(0, 2)))
    ]
    return decode_rules(
        {
            "starts_at": STARTS.isoformat(),
            "ends_at": ENDS.isoformat(),
            "timezone": "America/Toronto",
            "grace": "PT6H",
            "badges": badges,
            "scoring": scoring,
        }
    )


# Quarter hours from a day before the start to a day after the end, plus the exact edges.
_SPAN = int((ENDS + GRACE - STARTS + timedelta(days=2)) / timedelta(minutes=15))
instants = st.one_of(
    st.integers(0, _SPAN).map(lambda q: STARTS - timedelta(days=1) + q * timedelta(minutes=15)),
    st.sampled_from(
        [
            STARTS,
            ENDS + GRACE,
            STARTS - timedelta(microseconds=1),
            ENDS + GRACE + timedelta(microseconds=1),
        ]
    ),
)


@st.composite
def event_lists(draw: st.DrawFn, max_size: int = 18) -> list[Event]:
    count = draw(st.integers(0, max_size))
    out = []
    for i in range(count):
        attributes: dict[str, Any] = {}
        if draw(st.integers(0, 5)):
            attributes["x"] = draw(st.sampled_from(X_EVENT_VALUES))
        if draw(st.booleans()):
            attributes["n"] = draw(st.sampled_from(N_EVENT_VALUES))
        kind = draw(st.sampled_from(["a", "a", "b", "c"]))
        out.append(Event(f"e{i:02d}", kind, draw(instants), attributes))
    return out


def run(
    engine: Engine, batches: list[list[Event]], roundtrips: frozenset[int] = frozenset()
) -> tuple[PlayerState | None, list[Effects]]:
    """Apply the batches in turn, sending the state through bytes before those in `roundtrips`."""
    state: PlayerState | None = None
    reports = []
    for i, batch in enumerate(batches):
        if state is not None and i in roundtrips:
            state = PlayerState.from_bytes(state.to_bytes())
        state, effects = apply(engine, state, batch)
        reports.append(effects)
    return state, reports


def observed(state: PlayerState | None) -> Outcome:
    total, reached = score(state)
    return Outcome({a.badge: a.awarded_at for a in held_badges(state)}, total, reached)


def in_order(events: list[Event]) -> list[Event]:
    return sorted(events, key=lambda e: (e.occurred_at, e.id))


@st.composite
def deliveries(draw: st.DrawFn, events: list[Event], duplicates: bool = True) -> list[list[Event]]:
    """The events in any order, some sent twice, cut into batches."""
    arrival = list(draw(st.permutations(events)))
    if duplicates and events:
        for again in draw(st.lists(st.sampled_from(events), max_size=4)):
            arrival.insert(draw(st.integers(0, len(arrival))), again)
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(arrival) - 1)), max_size=6)))
    return [arrival[a:b] for a, b in zip([0, *cuts], [*cuts, len(arrival)], strict=True)]


@SETTINGS
@given(data=st.data())
def test_any_arrival_order_batching_or_duplication_gives_the_sorted_fold(
    data: st.DataObject,
) -> None:
    rules = data.draw(campaigns())
    events = data.draw(event_lists())
    batches = data.draw(deliveries(events))
    roundtrips = frozenset(data.draw(st.sets(st.integers(0, len(batches)))))
    engine = compile_rules(rules)

    expected = outcome(rules, events)
    assert observed(run(engine, [in_order(events)])[0]) == expected
    assert observed(run(engine, batches, roundtrips)[0]) == expected


@SETTINGS
@given(data=st.data())
def test_effects_tell_the_whole_story_one_event_at_a_time(data: st.DataObject) -> None:
    rules = data.draw(campaigns())
    events = data.draw(event_lists())
    arrival = [[e] for batch in data.draw(deliveries(events)) for e in batch]
    engine = compile_rules(rules)
    state, reports = run(engine, arrival)

    held: dict[str, datetime] = {}
    total, reached = 0, None
    for effects in reports:
        assert (effects.score_before, effects.reached_at_before) == (total, reached)
        for award in effects.awarded:
            assert award.badge not in held  # awarded once
            held[award.badge] = award.awarded_at
        for award in effects.moved:
            assert award.awarded_at < held[award.badge]  # only ever earlier
            held[award.badge] = award.awarded_at
        assert effects.score_after >= total  # monotone
        total, reached = effects.score_after, effects.reached_at_after
    assert Outcome(held, total, reached) == outcome(rules, events)
    times = {e.occurred_at for e in events}
    assert all(when in times for when in held.values())  # == the completing event's time
    for line in progress(engine, state):
        assert 0 <= line.current <= line.target
        assert (line.current == line.target) >= (line.badge in held)


@SETTINGS
@given(data=st.data())
def test_past_the_history_cap_an_in_order_feed_stays_exact(data: st.DataObject) -> None:
    rules = data.draw(campaigns())
    events = data.draw(event_lists(max_size=24))
    engine = compile_rules(rules, history_cap=3)
    state, _ = run(engine, [[e] for e in in_order(events)], frozenset({5, 10}))
    assert observed(state) == outcome(rules, events)


@SETTINGS
@given(data=st.data())
def test_past_the_history_cap_late_events_count_but_may_be_dated_later(
    data: st.DataObject,
) -> None:
    rules = data.draw(campaigns(windows=False))
    events = data.draw(event_lists(max_size=24))
    batches = data.draw(deliveries(events, duplicates=False))
    engine = compile_rules(rules, history_cap=3)

    got, expected = observed(run(engine, batches)[0]), outcome(rules, events)
    assert got.badges.keys() == expected.badges.keys()
    assert all(got.badges[b] >= expected.badges[b] for b in got.badges)
    assert got.score == expected.score


@SETTINGS
@given(data=st.data())
def test_past_the_history_cap_late_events_newer_than_the_checkpoint_stay_exact(
    data: st.DataObject,
) -> None:
    rules = data.draw(campaigns())
    events = data.draw(event_lists(max_size=24))
    batches = data.draw(deliveries(events, duplicates=False))
    engine = compile_rules(rules, history_cap=4)

    state: PlayerState | None = None
    older_than_checkpoint = False
    for batch in batches:
        point = None if state is None else state.checkpoint
        if point is not None:
            older_than_checkpoint |= any(
                (to_us(e.occurred_at), e.id) <= (point.t, point.id) for e in batch
            )
        state, _ = apply(engine, state, batch)
    if not older_than_checkpoint:
        assert observed(state) == outcome(rules, events)


@SETTINGS
@given(data=st.data())
def test_the_single_event_path_agrees_with_the_batch_path(data: st.DataObject) -> None:
    """`apply` with a list of one event takes a path of its own: same effects, same state."""
    rules = data.draw(campaigns())
    events = data.draw(event_lists())
    arrival = [e for batch in data.draw(deliveries(events)) for e in batch]
    engine = compile_rules(rules, history_cap=data.draw(st.sampled_from([3, 4, 10_000])))
    single: PlayerState | None = None
    batch: PlayerState | None = None
    quiet: PlayerState | None = None
    quiet_batch: PlayerState | None = None
    for event in arrival:
        single, fast = apply(engine, single, [event])
        batch, slow = apply(engine, batch, (event,))  # not a list: the general path
        quiet, brief = apply(engine, quiet, [event], progress=False)
        quiet_batch, brief_batch = apply(engine, quiet_batch, (event,), progress=False)
        assert msgspec.json.encode(brief) == msgspec.json.encode(brief_batch)
        # JSON, not ==: returned datetimes must also carry the same offsets.
        assert msgspec.json.encode(fast) == msgspec.json.encode(slow)
        assert msgspec.json.encode(brief) == msgspec.json.encode(
            Effects(
                fast.awarded,
                fast.moved,
                fast.score_before,
                fast.score_after,
                fast.reached_at_before,
                fast.reached_at_after,
                [],
            )
        )
        assert single.to_bytes() == batch.to_bytes() == quiet.to_bytes() == quiet_batch.to_bytes()
