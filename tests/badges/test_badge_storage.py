"""A state stored as a head and segments folds exactly as the state kept whole in memory: same
effects, same state, whatever the arrival order, batching, duplication, cap and segment size;
and an event in order needs no segment until the cap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from badges import (
    Effects,
    Engine,
    Event,
    PlayerState,
    apply,
    compile_rules,
    points_timeline,
    storage,
)
from badges.state import Key
from tests.badges.badge_kit import at, badge, campaign
from tests.badges.badge_reference import outcome
from tests.badges.test_badge_properties import (
    SETTINGS,
    campaigns,
    deliveries,
    event_lists,
    observed,
    run,
)


class Shelf:
    """Segments as the service's table keeps them: by their newest fact."""

    def __init__(self) -> None:
        self.segments: dict[Key, tuple[int, bytes]] = {}
        self.ledger: dict[int, bytes] = {}
        self.body: bytes | None = None
        self.fetches = 0

    def keep(self, stored: storage.Stored) -> None:
        for segment in stored.written:
            self.segments[segment.newest] = (segment.count, segment.data)
        for key in stored.deleted:
            del self.segments[key]
        if stored.ledger_cut is not None:
            self.ledger = {n: c for n, c in self.ledger.items() if n < stored.ledger_cut}
        self.ledger |= stored.ledger
        if stored.body is not None:
            self.body = stored.body

    def chunks(self) -> list[bytes]:
        return [self.ledger[n] for n in sorted(self.ledger)]

    def fetch(self, wanted: storage.Wanted) -> list[bytes]:
        self.fetches += 1
        out: list[bytes] = []
        held = 0
        for _, (count, data) in sorted(self.segments.items()):
            if wanted.facts is not None and held >= wanted.facts:
                break
            out.append(data)
            held += count
        return out


def stored_run(
    engine: Engine, batches: list[list[Event]], shelf: Shelf, segment: int
) -> tuple[PlayerState | None, list[Effects]]:
    """Apply the batches in turn as the service does: load the head, attach what is wanted,
    apply, store."""
    head: bytes | None = None
    reports = []
    for batch in batches:
        state = None if head is None else storage.load(head)
        if state is not None and (wanted := storage.wanted(engine, state, batch)) is not None:
            ledger = shelf.chunks() if wanted.with_ledger else []
            storage.attach(state, shelf.fetch(wanted), ledger, shelf.body)
        state, effects = apply(engine, state, batch)
        reports.append(effects)
        stored = storage.store(state, segment)
        assert len(storage.load(stored.head).facts) < segment
        shelf.keep(stored)
        head = stored.head
    if head is None:
        return None, reports
    state = storage.load(head)
    segments = [data for _, (_, data) in sorted(shelf.segments.items())]
    storage.attach(state, segments, shelf.chunks(), shelf.body)
    return state, reports


def in_utc(reports: list[Effects]) -> Any:
    """Effects with every instant in UTC: a state loaded from bytes reports its instants in
    UTC, one kept in memory with the offset its event had (as after `PlayerState.from_bytes`)."""

    def convert(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.astimezone(UTC)
        if isinstance(value, list):
            return [convert(v) for v in value]
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        return value

    return convert(msgspec.to_builtins(reports, builtin_types=(datetime,)))


def whole(state: PlayerState | None) -> bytes:
    """The state's meaning, without where its facts are kept."""
    if state is None:
        return b""
    meaning = msgspec.structs.replace(
        state, segmented=0, sealed=None, ledger=0, checkpoint_apart=False
    )
    return msgspec.json.encode(meaning)


@SETTINGS
@given(data=st.data())
def test_a_stored_state_folds_exactly_as_one_kept_in_memory(data: st.DataObject) -> None:
    rules = data.draw(campaigns())
    events = data.draw(event_lists(max_size=24))
    batches = data.draw(deliveries(events))
    engine = compile_rules(rules, history_cap=data.draw(st.sampled_from([3, 4, 10_000])))
    segment = data.draw(st.integers(1, 3))

    in_memory, expected = run(engine, batches)
    stored, reports = stored_run(engine, batches, Shelf(), segment)

    assert in_utc(reports) == in_utc(expected)
    assert whole(stored) == whole(in_memory)
    if engine.history_cap == 10_000:
        assert observed(stored) == outcome(rules, events)


@SETTINGS
@given(data=st.data())
def test_events_in_order_fetch_no_segment_below_the_cap(data: st.DataObject) -> None:
    rules = data.draw(campaigns())
    events = sorted(data.draw(event_lists(max_size=24)), key=lambda e: (e.occurred_at, e.id))
    shelf = Shelf()
    stored_run(compile_rules(rules), [[e] for e in events], shelf, segment=2)
    assert shelf.fetches == 0


# Every flight scores, so every one is retained.
RULES = campaign(
    badge("five", points=5, kind="count", event="flight.completed", threshold=5),
    scoring=[{"event": "flight.completed", "points": 1}],
)
BASE = at("2013-06-02T10:00:00Z")


def test_a_history_past_the_cap_fetches_only_its_oldest_segments() -> None:
    engine = compile_rules(RULES, history_cap=100)
    events = [
        Event(f"f{i:05d}", "flight.completed", BASE + timedelta(minutes=i), {}) for i in range(300)
    ]
    shelf = Shelf()
    fetched: list[int] = []
    head: bytes | None = None
    for event in events:
        state = None if head is None else storage.load(head)
        if state is not None and (wanted := storage.wanted(engine, state, [event])) is not None:
            assert wanted.facts is not None  # only the oldest, never all
            segments = shelf.fetch(wanted)
            fetched.append(len(segments))
            storage.attach(state, segments, body=shelf.body)
        state, _ = apply(engine, state, [event], progress=False)
        stored = storage.store(state, 8)
        shelf.keep(stored)
        head = stored.head
    # Past the cap of 100, 90 are kept: the 101st event of the history, and every 11th after
    # it, compacts 11 facts, which lie in at most 3 segments of 8.
    assert len(fetched) == len(range(101, 301, 11))
    assert max(fetched) <= 3
    assert sum(count for count, _ in shelf.segments.values()) <= 100
    # The points of forgotten events are kept apart from the head, and add up.
    assert shelf.ledger and head is not None
    assert len(head) < 600
    state = storage.load(head)
    segments = [d for _, (_, d) in sorted(shelf.segments.items())]
    storage.attach(state, segments, shelf.chunks(), shelf.body)
    in_memory: PlayerState | None = None
    for event in events:  # the same compactions as the stored run's
        in_memory, _ = apply(engine, in_memory, [event], progress=False)
    assert points_timeline(engine, state) == points_timeline(engine, in_memory)


def test_a_late_event_without_the_segments_attached_is_refused() -> None:
    engine = compile_rules(RULES)
    state, _ = apply(
        engine,
        None,
        [Event(f"f{i}", "flight.completed", BASE + timedelta(hours=i), {}) for i in range(4)],
    )
    head = storage.load(storage.store(state, 2).head)
    late = Event("late", "flight.completed", BASE + timedelta(minutes=30), {})
    assert storage.wanted(engine, head, [late]) == storage.Wanted(None)
    with pytest.raises(ValueError, match="whole history"):
        apply(engine, head, [late])


def test_a_state_stored_whole_by_an_earlier_release_is_split_on_its_next_write() -> None:
    """States written before segments existed hold every fact in one array of nine fields: they
    load whole, and the next store seals their history into segments."""
    engine = compile_rules(RULES)
    events = [
        Event(f"f{i:03d}", "flight.completed", BASE + timedelta(minutes=i), {}) for i in range(40)
    ]
    state, _ = apply(engine, None, events, progress=False)
    fields = msgspec.to_builtins(state)[:9]  # the layout before `segmented`, `sealed`, `ledger`
    old = storage.load(msgspec.msgpack.encode(fields))
    assert old.memo().whole() and len(old.facts) == 40

    late = Event("late", "flight.completed", BASE + timedelta(seconds=30), {})
    assert storage.wanted(engine, old, [late]) is None
    old, _ = apply(engine, old, [late], progress=False)
    stored = storage.store(old, 8)
    assert sum(s.count for s in stored.written) == 40 and not stored.deleted
    assert len(storage.load(stored.head).facts) == 1


def test_ledger_chunks_appended_by_compactions_are_merged_past_a_bound() -> None:
    """Every compaction appends a ledger chunk; past LEDGER_CHUNKS of them, the next one reads
    them all and they are written back as one, so a member's rows stay bounded."""
    engine = compile_rules(RULES, history_cap=20)  # a compaction every 3 events past 20
    events = [
        Event(f"f{i:05d}", "flight.completed", BASE + timedelta(minutes=i), {}) for i in range(200)
    ]
    shelf = Shelf()
    head: bytes | None = None
    most = 0
    for event in events:
        state = None if head is None else storage.load(head)
        if state is not None and (wanted := storage.wanted(engine, state, [event])) is not None:
            ledger = shelf.chunks() if wanted.with_ledger else []
            storage.attach(state, shelf.fetch(wanted), ledger, shelf.body)
        state, _ = apply(engine, state, [event], progress=False)
        stored = storage.store(state, 4)
        shelf.keep(stored)
        head = stored.head
        most = max(most, len(shelf.ledger))
    assert most == storage.LEDGER_CHUNKS
    assert head is not None
    whole = storage.load(head)
    segments = [d for _, (_, d) in sorted(shelf.segments.items())]
    storage.attach(whole, segments, shelf.chunks(), shelf.body)
    in_memory: PlayerState | None = None
    for event in events:
        in_memory, _ = apply(engine, in_memory, [event], progress=False)
    assert points_timeline(engine, whole) == points_timeline(engine, in_memory)


def test_a_whole_state_stored_in_parts_goes_through_bytes_whole() -> None:
    """`to_bytes` of a state with every part at hand is the whole state, even when no segment
    was sealed and only the checkpoint is stored apart."""
    engine = compile_rules(RULES, history_cap=4)
    events = [Event(f"f{i}", "flight.completed", BASE + timedelta(hours=i), {}) for i in range(6)]
    state, _ = apply(engine, None, events, progress=False)
    storage.store(state, 100)  # nothing sealed; the checkpoint's body stored apart
    assert state.checkpoint_apart and not state.segmented and state.memo().whole()
    again = PlayerState.from_bytes(state.to_bytes())
    assert again.memo().whole()
    late = Event("late", "flight.completed", BASE + timedelta(hours=5, minutes=30), {})
    assert whole(apply(engine, again, [late])[0]) == whole(apply(engine, state, [late])[0])
