"""A state stored in parts, so that a write does not rewrite a player's whole history.

A state is stored as a small head (accumulators, awards, score, the checkpoint's key and the
newest facts, the tail), immutable segments of older facts, each keyed by its newest fact, and
past the history cap the checkpoint's body (its accumulators and awards) and its ledger (the
forgotten scoring points per quarter hour, in chunks appended by compactions). An event later
than everything retained, the common case, needs only the head: it is appended to the tail,
and the tail is sealed into a new segment every `SEGMENT` facts. A late event needs everything,
because it is inserted into the history and its criteria are refolded from the checkpoint.
Compaction past the cap needs the oldest segments and the checkpoint's body. `wanted` says
what to fetch, `attach` takes it, and `store` says what to write:

    state = storage.load(head)
    need = storage.wanted(engine, state, events)
    if need is not None:                     # segments oldest first (all, or the oldest),
        storage.attach(state, segments, ledger, body)   # the ledger only when all are wanted
    state, effects = apply(engine, state, events)
    stored = storage.store(state)            # the head, and the parts to write and to delete

The caller's part: an event id always comes with the same event (the service's ids are unique
per tenant). A state without its segments knows the ids of its tail only, so the same id with
a later time would be folded twice; the same event again is harmless (it is either late, and
the whole history is fetched, or it counted for nothing).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence

import msgspec

from badges.accumulators import Acc
from badges.compiled import Engine
from badges.fold import COMPACT_STEP, bucket, in_order
from badges.rules import Event
from badges.state import Fact, Key, PlayerState, Segment, ledger_mark
from badges.times import to_us

__all__ = ["SEGMENT", "Stored", "Wanted", "Written", "attach", "load", "store", "wanted"]

SEGMENT = 16  # facts sealed at once: the head carries at most this many
SPLIT = 4  # a segment grown past SPLIT x SEGMENT by late events is written back split
LEDGER_CHUNKS = 32  # ledger chunks that compactions may append before they are merged


class Wanted(msgspec.Struct, frozen=True):
    """Segments to fetch, oldest first: until they hold `facts` facts, or all when None; the
    checkpoint's body either way, when stored apart; and the ledger's chunks when all are
    wanted, or when `ledger` asks for them to be written back as one."""

    facts: int | None
    ledger: bool = False

    @property
    def whole(self) -> bool:
        return self.facts is None

    @property
    def with_ledger(self) -> bool:
        return self.facts is None or self.ledger


class Written(msgspec.Struct, frozen=True):
    newest: Key  # the segment's key: its newest fact
    count: int
    data: bytes


class Stored(msgspec.Struct, frozen=True):
    head: bytes
    written: list[Written]  # new or rewritten segments
    deleted: list[Key]  # segments whose facts all went into the checkpoint
    # The checkpoint's scoring points per quarter hour (see `fold.bucket`), stored apart in
    # numbered chunks, since it grows with the history forgotten: chunks to write, and the
    # first number of those to delete (None: none).
    ledger: dict[int, bytes] = {}
    ledger_cut: int | None = None
    # The checkpoint's accumulators and awards, when they changed: stored apart, since only
    # compaction and late events read them.
    body: bytes | None = None


def load(head: bytes) -> PlayerState:
    """A state from its head, without its segments."""
    return PlayerState.from_bytes(head)


def wanted(engine: Engine, state: PlayerState, events: Iterable[Event]) -> Wanted | None:
    """What of the state stored apart `apply(engine, state, events)` needs attached first, or
    None when the head is enough."""
    memo = state.memo()
    if memo.whole():
        return None
    types = engine.types
    count = 0
    for event in events:
        count += 1
        if event.type in types and not in_order(to_us(event.occurred_at), event.id, state):
            return Wanted(None)
    cap = engine.history_cap
    retained = len(state.facts) + memo.unloaded
    if retained + count <= cap:
        return None  # in order, below the cap: the head is all it takes
    # At most what compaction could drop while these events are folded in order; it needs
    # the checkpoint's body too.
    excess = retained + count - (cap - min(cap // 10, COMPACT_STEP))
    loaded = len(state.facts) if memo.gap is None else memo.gap
    # A compaction appends a ledger chunk: past LEDGER_CHUNKS of them, it reads them all, and
    # `store` writes them back as one.
    merge = state.ledger >= LEDGER_CHUNKS and not memo.ledger_loaded
    if excess <= loaded and memo.checkpoint_loaded and not merge:
        return None
    return Wanted(excess if excess > loaded else 0, ledger=merge)


def attach(
    state: PlayerState,
    segments: Sequence[bytes],
    ledger: Sequence[bytes] = (),
    body: bytes | None = None,
) -> None:
    """Hand over fetched segments, as `wanted` asked for them (oldest first), the checkpoint's
    body, and when it asked for all of them, the ledger's chunks in order."""
    memo = state.memo()
    if body is not None and not memo.checkpoint_loaded and state.checkpoint is not None:
        state.checkpoint.accs, state.checkpoint.awards = _body_decoder.decode(body)
        memo.checkpoint_base = body
        memo.checkpoint_loaded = True
    if ledger and not memo.ledger_loaded and state.checkpoint is not None:
        _attach_ledger(state, ledger)
    known = {segment.newest for segment in memo.segments}
    added: list[Fact] = []
    for data in segments:
        facts = _segment_decoder.decode(data)
        if not facts or _key(facts[-1]) in known:
            continue
        known.add(_key(facts[-1]))
        memo.segments.append(Segment(_key(facts[-1]), len(facts), _key(facts[0])))
        memo.unloaded -= len(facts)
        memo.ids.update(dict.fromkeys(fact.id for fact in facts))
        added += facts
    if not added:
        return
    memo.segments.sort(key=_newest_of)
    # Two sorted runs: the sort merges them in linear time.
    state.facts = sorted(added + state.facts) if state.facts else sorted(added)
    memo.gap = None if memo.unloaded <= 0 else sum(s.count for s in memo.segments)


def _attach_ledger(state: PlayerState, chunks: Sequence[bytes]) -> None:
    assert state.checkpoint is not None
    memo = state.memo()
    stored: list[tuple[int, int]] = []
    for chunk in chunks:
        for t, points in _ledger_decoder.decode(chunk):
            bucket(stored, t, points)  # a chunk's first may share its quarter hour
    memo.ledger_base = ledger_mark(stored)
    for t, points in state.checkpoint.scored:  # added since the head was loaded
        bucket(stored, t, points)
    state.checkpoint.scored = stored
    memo.ledger_loaded = True


def _store_ledger(state: PlayerState) -> tuple[dict[int, bytes], int | None]:
    """The ledger chunks to write and the first to delete; empties the in-memory ledger of a
    state left as if loaded."""
    memo, checkpoint = state.memo(), state.checkpoint
    if checkpoint is None:
        return {}, None
    scored = checkpoint.scored
    if not memo.ledger_loaded:  # only what was added since the head was loaded
        if not scored:
            return {}, None
        state.ledger += 1
        return {state.ledger - 1: _ledger_encoder.encode(scored)}, None
    if ledger_mark(scored) == memo.ledger_base:
        return {}, None
    memo.ledger_base = ledger_mark(scored)
    state.ledger = 1
    return {0: _ledger_encoder.encode(scored)}, 1


def _store_body(state: PlayerState) -> bytes | None:
    """The checkpoint's accumulators and awards when they changed since they were loaded."""
    memo, checkpoint = state.memo(), state.checkpoint
    if checkpoint is None or not memo.checkpoint_loaded:
        return None
    body = _body_encoder.encode((checkpoint.accs, checkpoint.awards))
    if body == memo.checkpoint_base:
        return None
    memo.checkpoint_base = body
    return body


def store(state: PlayerState, segment: int = SEGMENT) -> Stored:
    """What to store: the head, and the segments to write and to delete.

    A state with all its segments stays as it is; one without them is left as if loaded from
    the new head.
    """
    memo = state.memo()
    facts = state.facts
    written: list[Written] = []
    deleted: list[Key] = []
    kept: list[Segment] = []
    at, end = 0, len(facts) if memo.gap is None else memo.gap
    for old in memo.segments:
        stop = bisect_right(facts, old.newest, lo=at, hi=end, key=_key)
        part, at = facts[at:stop], stop
        if not part:
            deleted.append(old.newest)
        elif len(part) == old.count and _key(part[0]) == old.oldest:
            kept.append(old)
        else:
            split = len(part) > SPLIT * segment
            for chunk in _chunks(part, segment) if split else [part]:
                kept.append(_seal(chunk, written))
    if memo.gap is not None and at != end:
        raise AssertionError("attached facts outside every attached segment")
    tail = facts[at:]
    sealed_count = len(tail) - len(tail) % segment
    for chunk in _chunks(tail[:sealed_count], segment):
        kept.append(_seal(chunk, written))
    tail = tail[sealed_count:]
    segmented = memo.unloaded + sum(s.count for s in kept)
    sealed = state.sealed
    if kept and (sealed is None or kept[-1].newest > sealed):
        sealed = kept[-1].newest
    ledger, ledger_cut = _store_ledger(state)
    body = _store_body(state)
    checkpoint = state.checkpoint
    if checkpoint is not None:  # its key alone stays in the head
        checkpoint = msgspec.structs.replace(checkpoint, accs=[], awards={}, scored=[])
    head = msgspec.structs.replace(
        state,
        facts=tail,
        segmented=segmented,
        sealed=sealed if segmented else None,
        checkpoint=checkpoint,
        checkpoint_apart=checkpoint is not None,
    )
    state.segmented, state.sealed = head.segmented, head.sealed
    state.checkpoint_apart = head.checkpoint_apart
    if memo.whole():
        memo.segments = kept
    else:  # left as if loaded from the new head
        state.facts, state.checkpoint = tail, checkpoint
        state.__dict__.pop("_memo")
    return Stored(_head_encoder.encode(head), written, deleted, ledger, ledger_cut, body)


def _seal(chunk: list[Fact], written: list[Written]) -> Segment:
    newest = _key(chunk[-1])
    written.append(Written(newest, len(chunk), _segment_encoder.encode(chunk)))
    return Segment(newest, len(chunk), _key(chunk[0]))


def _chunks(facts: list[Fact], size: int) -> list[list[Fact]]:
    return [facts[i : i + size] for i in range(0, len(facts), size)]


def _key(fact: Fact) -> Key:
    return fact.t, fact.id


def _newest_of(segment: Segment) -> Key:
    return segment.newest


_head_encoder = _segment_encoder = msgspec.msgpack.Encoder()
_segment_decoder = msgspec.msgpack.Decoder(list[Fact])
_ledger_encoder = _body_encoder = msgspec.msgpack.Encoder()
_body_decoder = msgspec.msgpack.Decoder(tuple[list[Acc | None], dict[str, int]])
_ledger_decoder = msgspec.msgpack.Decoder(list[tuple[int, int]])
