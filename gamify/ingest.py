"""The write path: one transaction takes a batch of events and returns what each one earned.

Steps, all inside one transaction (see DESIGN.md):
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
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

import badges
from gamify.boards.updates import BoardUpdate, Standing, Timeline, WindowRow, pair_changes
from gamify.boards.windows import WindowTotals, period_of, window_totals
from gamify.db import Conn
from gamify.engines import CompiledCampaign, EngineCache
from gamify.store import campaigns, events, progress
from gamify.store.progress import AwardRow, OutboxRow, Pair, SavedProgress
from gamify.wire import AwardOut, EventIn, EventResult, ScoreOut

FUTURE_TOLERANCE = timedelta(minutes=5)
MAX_ATTRIBUTES_BYTES = 4096


def payload_hash(event: EventIn) -> bytes:
    """A digest of everything but the id, stable across key order and time zone notation."""
    canonical = msgspec.json.encode(
        [event.player, event.type, event.occurred_at.astimezone(UTC), event.attributes],
        order="sorted",
    )
    return hashlib.sha256(canonical).digest()


def precheck(event: EventIn, now: datetime) -> str | None:
    """Why a well-formed event cannot be taken, or None."""
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
        """The same id again within one request: a duplicate of the first, or a conflict."""
        for i, event in enumerate(self.incoming):
            first = self.first.get(event.id)
            if self.results[i] is not None or first is None or first == i:
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
    inserted = await events.insert(
        conn,
        tenant,
        [
            # In UTC: Postgres refuses offsets beyond ±15:59, which ISO 8601 allows.
            events.NewEvent(
                e.id, e.player, e.type, e.occurred_at.astimezone(UTC), e.attributes, batch.hashes[i]
            )
            for i, e in zip(batch.candidates, chosen, strict=True)
        ],
    )
    existing = [e.id for e in chosen if e.id not in inserted]
    stored = await events.stored(conn, tenant, existing) if existing else {}
    fresh: list[int] = []
    for i in batch.candidates:
        event = batch.incoming[i]
        if event.id in inserted:
            fresh.append(i)
            continue
        before = stored[event.id]
        if before.payload_hash != batch.hashes[i]:
            batch.results[i] = _reused(event.id)
        else:
            awards = msgspec.convert(before.awards, list[AwardOut])
            batch.results[i] = EventResult(event.id, "duplicate", awards, [])
    return fresh


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


async def fold(
    conn: Conn, tenant: str, events: list[EventIn], touched: list[list[CompiledCampaign]]
) -> tuple[_Folding, list[BoardUpdate]]:
    """Lock the touched pairs, fold each event into the campaigns it counts in, write it all.

    `touched[i]` lists the campaigns `events[i]` counts in. Shared by the write path and the
    backfill of a campaign created after its events were reported.
    """
    pairs = sorted(
        {Pair(c.id, e.player) for e, cs in zip(events, touched, strict=True) for c in cs}
    )
    stored_states = await progress.lock(conn, tenant, pairs) if pairs else {}
    folding = _Folding(tenant, stored_states)
    for event, counted_in in zip(events, touched, strict=True):
        folding.apply(event, counted_in)
    updates, window_rows = folding.board_changes()
    await progress.write(
        conn,
        tenant,
        folding.saved(),
        list(folding.award_rows.values()),
        folding.outbox_rows(),
        window_rows,
    )
    return folding, updates


class _Folding:
    """Engine states of the locked pairs, and everything their changes must write."""

    def __init__(self, tenant: str, stored: dict[Pair, bytes]) -> None:
        self.tenant = tenant
        self.states: dict[Pair, badges.PlayerState | None] = {
            pair: badges.PlayerState.from_bytes(raw) if raw else None
            for pair, raw in stored.items()
        }
        self.compiled: dict[Pair, CompiledCampaign] = {}
        self.before: dict[Pair, Standing] = {}
        self.after: dict[Pair, Standing] = {}
        self.timelines_before: dict[Pair, Timeline] = {}
        self.timelines_after: dict[Pair, Timeline] = {}
        self.totals: dict[tuple[Pair, str], WindowTotals] = {}
        # One row per (pair, badge): a badge awarded and then moved earlier within the same
        # request is written once, at its earliest time, credited to the event that granted it.
        self.award_rows: dict[tuple[Pair, str], AwardRow] = {}
        self.new_awards: set[tuple[Pair, str]] = set()
        self.awards_by_event: dict[str, list[AwardOut]] = defaultdict(list)

    def apply(self, event: EventIn, touched: list[CompiledCampaign]) -> None:
        engine_event = badges.Event(event.id, event.type, event.occurred_at, event.attributes)
        for compiled in touched:
            pair = Pair(compiled.id, event.player)
            if pair not in self.compiled:
                self._first_touch(pair, compiled)
            # Nothing here reads per-badge progress (profiles compute it from the state).
            state, effects = badges.apply(
                compiled.engine, self.states.get(pair), [engine_event], progress=False
            )
            self.states[pair] = state
            self.before.setdefault(pair, (effects.score_before, effects.reached_at_before))
            self.after[pair] = (effects.score_after, effects.reached_at_after)
            for award in [*effects.awarded, *effects.moved]:
                key = (pair, award.badge)
                granted = self.award_rows.get(key)
                self.award_rows[key] = AwardRow(
                    pair,
                    award.badge,
                    award.awarded_at,
                    granted.first_awarded_at if granted else award.awarded_at,
                    award.points,
                    granted.event_id if granted else event.id,
                )
            if effects.awarded:
                self.new_awards.update((pair, a.badge) for a in effects.awarded)
                granted_here = self.awards_by_event[event.id]
                granted_here += [
                    AwardOut(compiled.id, a.badge, a.awarded_at) for a in effects.awarded
                ]
                # The order a replay answers in (see store.events.STORED).
                granted_here.sort(key=lambda a: (a.campaign, a.awarded_at, a.badge))

    def _first_touch(self, pair: Pair, compiled: CompiledCampaign) -> None:
        state = self.states.get(pair)
        self.compiled[pair] = compiled
        if compiled.windows:
            # `apply` changes the state in place: the timeline must be read first.
            self.timelines_before[pair] = badges.points_timeline(compiled.engine, state)

    def _timeline(self, pair: Pair) -> Timeline:
        return badges.points_timeline(self.compiled[pair].engine, self.states.get(pair))

    def board_changes(self) -> tuple[list[BoardUpdate], list[WindowRow]]:
        updates: list[BoardUpdate] = []
        rows: list[WindowRow] = []
        for pair, compiled in self.compiled.items():
            after_timeline = self._timeline(pair) if compiled.windows else []
            update, windows = pair_changes(
                self.tenant,
                compiled,
                pair.player,
                self.before[pair],
                self.after[pair],
                self.timelines_before.get(pair, []),
                after_timeline,
            )
            self.timelines_after[pair] = after_timeline
            if update is not None:
                updates.append(update)
            rows += windows
        return updates, rows

    def scores(self, compiled: CompiledCampaign, event: EventIn) -> list[ScoreOut]:
        """The player's scores on the boards this event counts on (ranks come later)."""
        pair = Pair(compiled.id, event.player)
        found = [ScoreOut(compiled.id, "campaign", self.after[pair][0])]
        for window in compiled.windows:
            period = period_of(window, event.occurred_at, compiled.zone)
            totals = self._window_totals(pair, window, compiled.zone)
            found.append(
                ScoreOut(compiled.id, window, totals.get(period, (0, None))[0], period=period)
            )
        return found

    def _window_totals(self, pair: Pair, window: str, zone: ZoneInfo) -> WindowTotals:
        # Once per pair and window: a batch may hold many events of one player, and each
        # walk covers the player's whole timeline.
        key = (pair, window)
        if key not in self.totals:
            self.totals[key] = window_totals(window, self.timelines_after.get(pair, []), zone)
        return self.totals[key]

    def saved(self) -> list[SavedProgress]:
        return [
            SavedProgress(pair, state.to_bytes(), *self.after.get(pair, (0, None)))
            for pair, state in self.states.items()
            if state is not None and pair in self.after
        ]

    def outbox_rows(self) -> list[OutboxRow]:
        # Score changes need no outbox: the progress rows are the truth the boards are
        # rebuilt from. Awards do: each one may owe a message and a credit.
        return [
            OutboxRow(
                "badge_awarded" if key in self.new_awards else "badge_moved",
                award.pair,
                _award_payload(award),
            )
            for key, award in self.award_rows.items()
        ]


def _award_payload(award: AwardRow) -> dict[str, Any]:
    return {
        "campaign": award.pair.campaign,
        "player": award.pair.player,
        "badge": award.badge,
        "awarded_at": award.awarded_at.isoformat(),
        "points": award.points,
        "event": award.event_id,
    }
