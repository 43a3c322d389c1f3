"""The write path: one transaction takes a batch of events and returns what each one earned.

Steps, all inside one transaction (the folding steps 2 to 4 are in events.folding):
1. insert the events (ON CONFLICT DO NOTHING); an id that was already there is a duplicate,
   answered with its stored awards, or rejected when its payload differs;
2. lock the progress rows of the touched (campaign, player) pairs in a fixed order;
3. run the engine on each pair, one event at a time in request order, so each result lists
   exactly the awards its own arrival granted;
4. write states, scores, awards (unique per player, campaign and badge), the awards of each
   event (for replays) and an outbox row for each award and score change.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import msgspec

import badges
from gamify.boards.updates import BoardUpdate
from gamify.campaigns import store as campaigns
from gamify.campaigns.compiled import EngineCache
from gamify.events import store
from gamify.events.folding import fold
from gamify.events.wire import AwardOut, EventIn, EventResult
from gamify.platform.db import Conn

FUTURE_TOLERANCE = timedelta(minutes=5)
MAX_ATTRIBUTES_BYTES = 4096


def payload_hash(event: EventIn) -> bytes:
    """A digest of everything but the id, stable across key order and time zone notation."""
    try:
        occurred: datetime | str = event.occurred_at.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 with an offset: rejected, but hashed all the same
        occurred = event.occurred_at.isoformat()
    canonical = msgspec.json.encode(
        [event.player, event.type, occurred, event.attributes], order="sorted"
    )
    return hashlib.sha256(canonical).digest()


def precheck(event: EventIn, now: datetime) -> str | None:
    """Why a well-formed event cannot be taken, or None."""
    if event.occurred_at < badges.EARLIEST:
        return "occurred_at is before 1970"
    if event.occurred_at > now + FUTURE_TOLERANCE:
        return "occurred_at is more than 5 minutes in the future"
    if len(msgspec.json.encode(event.attributes)) > MAX_ATTRIBUTES_BYTES:
        return f"attributes exceed {MAX_ATTRIBUTES_BYTES} bytes of JSON"
    return None


class Batch:
    """One request's events and, as the steps go, their results."""

    def __init__(self, incoming: list[EventIn], now: datetime) -> None:
        self.incoming = incoming
        self.results: list[EventResult | None] = [None] * len(incoming)
        self.hashes = [payload_hash(e) for e in incoming]
        self.first: dict[str, int] = {}  # id -> index of its first occurrence
        self.stored: dict[str, store.StoredEvent] = {}  # ids stored before this batch
        self.candidates: list[int] = []
        for i, event in enumerate(incoming):
            error = precheck(event, now)
            if error is not None:
                self.results[i] = EventResult(event.id, "rejected", [], [], error)
            elif event.id in self.first:
                continue  # settled once the first occurrence is
            else:
                self.first[event.id] = i
                self.candidates.append(i)

    def settle_repeats(self) -> None:
        """The same id again within one request: a duplicate of what was stored (by an earlier
        request, or by its first occurrence here), or a conflict with it."""
        for i, event in enumerate(self.incoming):
            first = self.first.get(event.id)
            if self.results[i] is not None or first is None or first == i:
                continue
            before = self.stored.get(event.id)
            if before is not None:  # stored earlier: the first occurrence here is a repeat too
                self.results[i] = _repeat(event.id, self.hashes[i], before)
                continue
            original = self.results[first]
            assert original is not None
            if self.hashes[i] != self.hashes[first]:
                self.results[i] = _reused(event.id)
            elif original.status == "rejected":
                self.results[i] = original
            else:
                self.results[i] = EventResult(event.id, "duplicate", original.awards, [])

    def finished(self) -> list[EventResult]:
        assert all(r is not None for r in self.results)
        return [r for r in self.results if r is not None]


def _reused(event_id: str) -> EventResult:
    return EventResult(
        event_id, "rejected", [], [], "this id was already used with a different payload"
    )


class Outcome(msgspec.Struct):
    """What a committed batch answers (scores still without ranks) and owes the boards."""

    results: list[EventResult]
    players: list[str]  # the player of each result
    boards: list[BoardUpdate]


async def ingest(
    conn: Conn, tenant: str, incoming: list[EventIn], cache: EngineCache, now: datetime
) -> Outcome:
    batch = Batch(incoming, now)
    updates: list[BoardUpdate] = []
    async with conn.transaction():
        fresh = await _insert(conn, tenant, batch)
        if fresh:
            updates = await _fold(conn, tenant, batch, fresh, cache)
    batch.settle_repeats()
    return Outcome(batch.finished(), [e.player for e in incoming], updates)


async def _insert(conn: Conn, tenant: str, batch: Batch) -> list[int]:
    """Insert the candidates; settles duplicates and returns the indexes of new events."""
    if not batch.candidates:
        return []
    chosen = [batch.incoming[i] for i in batch.candidates]
    inserted = await store.insert(
        conn,
        tenant,
        [
            # In UTC: Postgres refuses offsets beyond ±15:59, which ISO 8601 allows.
            store.NewEvent(
                e.id, e.player, e.type, e.occurred_at.astimezone(UTC), e.attributes, batch.hashes[i]
            )
            for i, e in zip(batch.candidates, chosen, strict=True)
        ],
    )
    existing = [e.id for e in chosen if e.id not in inserted]
    stored = await store.stored(conn, tenant, existing) if existing else {}
    fresh: list[int] = []
    for i in batch.candidates:
        event = batch.incoming[i]
        if event.id in inserted:
            fresh.append(i)
            continue
        batch.stored[event.id] = stored[event.id]
        batch.results[i] = _repeat(event.id, batch.hashes[i], stored[event.id])
    return fresh


def _repeat(event_id: str, payload_hash: bytes, before: store.StoredEvent) -> EventResult:
    """An id stored before: a duplicate answered as its first arrival was, or a conflict."""
    if before.payload_hash != payload_hash:
        return _reused(event_id)
    awards = msgspec.convert(before.awards, list[AwardOut])
    return EventResult(event_id, "duplicate", awards, [])


async def _fold(
    conn: Conn, tenant: str, batch: Batch, fresh: list[int], cache: EngineCache
) -> list[BoardUpdate]:
    compiled = [cache.get(tenant, c) for c in await campaigns.open_campaigns(conn, tenant)]
    events = [batch.incoming[i] for i in fresh]
    touched = [[c for c in compiled if c.counts(e.occurred_at)] for e in events]
    folding, updates = await fold(conn, tenant, events, touched)
    for i, event, counted_in in zip(fresh, events, touched, strict=True):
        scores = [s for c in counted_in for s in folding.scores(c, event)]
        batch.results[i] = EventResult(
            event.id, "accepted", folding.awards_by_event.get(event.id, []), scores
        )
    return updates
