"""Folding: lock the touched (campaign, player) pairs, run the engine on each event in request
order, and write everything it changed in one statement.

Shared by the write path and the backfill of a campaign created after its events arrived.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import badges
from badges import storage
from gamify.boards.updates import BoardUpdate, Standing, WindowRow, pair_changes
from gamify.campaigns.compiled import CompiledCampaign
from gamify.campaigns.credits import credit_id, reward_reason
from gamify.campaigns.windows import period_of, window_totals
from gamify.events import store, window_heads
from gamify.events.store import (
    AwardRow,
    LedgerChunk,
    LedgerCut,
    OutboxRow,
    Pair,
    RewardRow,
    SavedProgress,
    SegmentKey,
    SegmentRow,
)
from gamify.events.wire import AwardOut, EventIn, ScoreOut
from gamify.platform.db import Conn


async def fold(
    conn: Conn,
    tenant: str,
    events: list[EventIn],
    touched: list[list[CompiledCampaign]],
    *,
    by_backfill: bool = False,
) -> tuple[Folding, list[BoardUpdate]]:
    """Lock the touched pairs, fold each event into the campaigns it counts in, write it all.

    `touched[i]` lists the campaigns `events[i]` counts in. Shared by the write path and the
    backfill of a campaign created after its events were reported.
    """
    pairs = sorted(
        {Pair(c.id, e.player) for e, cs in zip(events, touched, strict=True) for c in cs}
    )
    locked = await store.lock(conn, tenant, pairs) if pairs else {}
    folding = Folding(tenant, locked, by_backfill)
    # The engine's view of each event, made once: `wanted` reads them, then the folds.
    engine_events = [
        badges.Event(e.id, e.type, e.occurred_at, e.attributes) if cs else None
        for e, cs in zip(events, touched, strict=True)
    ]
    wanted = folding.wanted(events, engine_events, touched)
    if wanted:
        folding.attach(await store.history(conn, tenant, wanted))
    for event, engine_event, counted_in in zip(events, engine_events, touched, strict=True):
        if engine_event is not None:
            folding.apply(event, engine_event, counted_in)
    updates, window_rows = folding.board_changes()
    written, deleted, ledgers, cuts = folding.parts()
    await store.write(
        conn,
        tenant,
        folding.saved(),
        list(folding.award_rows.values()),
        folding.outbox_rows(),
        window_rows,
        folding.rewards,
        written,
        deleted,
        ledgers,
        cuts,
    )
    return folding, updates


class Folding:
    """Engine states of the locked pairs, and everything their changes must write."""

    def __init__(self, tenant: str, locked: dict[Pair, store.Locked], by_backfill: bool) -> None:
        self.tenant = tenant
        self.by_backfill = by_backfill
        # Heads only: the segments of a player's history are fetched when an event needs them
        # (see badges.storage).
        self.states: dict[Pair, badges.PlayerState | None] = {
            pair: storage.load(row.state) if row.state else None for pair, row in locked.items()
        }
        self.stored_windows = {pair: row.windows for pair, row in locked.items()}
        # What each written row's version becomes: one more than under the lock.
        self.versions = {pair: row.version + 1 for pair, row in locked.items()}
        self.compiled: dict[Pair, CompiledCampaign] = {}
        self.before: dict[Pair, Standing] = {}
        self.after: dict[Pair, Standing] = {}
        # Window board totals before and after the batch: every period of the player's
        # timeline when the whole history is at hand, else the newest period, which is all an
        # in-order event can change (see window_heads).
        self.totals_before: dict[Pair, window_heads.Totals] = {}
        self.totals_after: dict[Pair, window_heads.Totals] = {}
        self.incremental: set[Pair] = set()
        # One row per (pair, badge): a badge awarded and then moved earlier within the same
        # request is written once, at its earliest time, credited to the event that granted it.
        self.award_rows: dict[tuple[Pair, str], AwardRow] = {}
        self.new_awards: set[tuple[Pair, str]] = set()
        self.awards_by_event: dict[str, list[AwardOut]] = defaultdict(list)
        self.rewards: list[RewardRow] = []  # credits owed by the badges awarded here
        self.stored: dict[Pair, storage.Stored] = {}

    def wanted(
        self,
        events: list[EventIn],
        engine_events: list[badges.Event | None],
        touched: list[list[CompiledCampaign]],
    ) -> dict[Pair, storage.Wanted]:
        """What of each pair's stored history its events need before they are folded."""
        batches: dict[Pair, list[badges.Event]] = defaultdict(list)
        campaigns: dict[Pair, CompiledCampaign] = {}
        for event, engine_event, counted_in in zip(events, engine_events, touched, strict=True):
            for compiled in counted_in:
                assert engine_event is not None  # made for every event that counts somewhere
                pair = Pair(compiled.id, event.player)
                batches[pair].append(engine_event)
                campaigns[pair] = compiled
        wanted: dict[Pair, storage.Wanted] = {}
        for pair, batch in batches.items():
            state = self.states.get(pair)
            if state is None:
                continue
            compiled = campaigns[pair]
            need = storage.wanted(compiled.engine, state, batch)
            if not self._windows_known(pair, compiled, state):
                need = storage.Wanted(None)
            if need is not None:
                wanted[pair] = need
        return wanted

    def _windows_known(
        self, pair: Pair, compiled: CompiledCampaign, state: badges.PlayerState
    ) -> bool:
        """Whether the window totals can be followed without the whole history."""
        if not compiled.windows or state.memo().whole():
            return True
        return window_heads.known(self.stored_windows[pair], compiled.windows) is not None

    def attach(self, fetched: dict[Pair, store.History]) -> None:
        for pair, history in fetched.items():
            state = self.states.get(pair)
            if state is not None:
                storage.attach(state, history.segments, history.ledger, history.body)

    def apply(
        self, event: EventIn, engine_event: badges.Event, touched: list[CompiledCampaign]
    ) -> None:
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
            if pair in self.incremental and effects.score_after > effects.score_before:
                window_heads.add(
                    self.totals_after[pair],
                    compiled.zone,
                    event.occurred_at,
                    effects.score_after - effects.score_before,
                )
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
                    granted.by_backfill if granted else self.by_backfill,
                )
            if effects.awarded:
                self.new_awards.update((pair, a.badge) for a in effects.awarded)
                self._owe_rewards(pair, compiled, [a.badge for a in effects.awarded])
                granted_here = self.awards_by_event[event.id]
                granted_here += [
                    AwardOut(compiled.id, a.badge, a.awarded_at) for a in effects.awarded
                ]
                # The order a replay answers in (see events.store.STORED).
                granted_here.sort(key=lambda a: (a.campaign, a.awarded_at, a.badge))

    def _owe_rewards(self, pair: Pair, compiled: CompiledCampaign, awarded: list[str]) -> None:
        for badge in awarded:
            if badge in compiled.rewards:
                amount, unit = compiled.rewards[badge]
                reason = reward_reason(badge)
                self.rewards.append(
                    RewardRow(
                        credit_id(self.tenant, pair.campaign, pair.player, reason),
                        pair.campaign,
                        pair.player,
                        reason,
                        amount,
                        unit,
                    )
                )

    def _first_touch(self, pair: Pair, compiled: CompiledCampaign) -> None:
        self.compiled[pair] = compiled
        if not compiled.windows:
            return
        state = self.states.get(pair)
        if state is not None and not state.memo().whole():
            newest = window_heads.known(self.stored_windows[pair], compiled.windows)
            assert newest is not None  # else `wanted` had the whole history fetched
            self.incremental.add(pair)
            self.totals_before[pair] = newest
            self.totals_after[pair] = {board: dict(p) for board, p in newest.items()}
        else:
            # `apply` changes the state in place: the timeline must be read first.
            self.totals_before[pair] = self._totals(pair, state)

    def _totals(self, pair: Pair, state: badges.PlayerState | None) -> window_heads.Totals:
        compiled = self.compiled[pair]
        timeline = badges.points_timeline(compiled.engine, state)
        return {w: window_totals(w, timeline, compiled.zone) for w in compiled.windows}

    def board_changes(self) -> tuple[list[BoardUpdate], list[WindowRow]]:
        updates: list[BoardUpdate] = []
        rows: list[WindowRow] = []
        for pair, compiled in self.compiled.items():
            if compiled.windows and pair not in self.incremental:
                self.totals_after[pair] = self._totals(pair, self.states.get(pair))
            update, windows = pair_changes(
                self.tenant,
                compiled,
                pair.player,
                self.versions[pair],
                self.before[pair],
                self.after[pair],
                self.totals_before.get(pair, {}),
                self.totals_after.get(pair, {}),
            )
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
            totals = self.totals_after.get(pair, {}).get(window, {})
            found.append(
                ScoreOut(compiled.id, window, totals.get(period, (0, None))[0], period=period)
            )
        return found

    def parts(
        self,
    ) -> tuple[list[SegmentRow], list[SegmentKey], list[LedgerChunk], list[LedgerCut]]:
        """The history segments and ledger chunks to write and to delete (stores each state:
        call once)."""
        written: list[SegmentRow] = []
        deleted: list[SegmentKey] = []
        ledgers: list[LedgerChunk] = []
        cuts: list[LedgerCut] = []
        for pair, state in self.states.items():
            if state is None or pair not in self.after:
                continue
            stored = self.stored[pair] = storage.store(state)
            campaign, player = pair.campaign, pair.player
            written += [
                SegmentRow(campaign, player, *s.newest, s.count, s.data) for s in stored.written
            ]
            deleted += [SegmentKey(campaign, player, *key) for key in stored.deleted]
            ledgers += [LedgerChunk(campaign, player, n, data) for n, data in stored.ledger.items()]
            if stored.body is not None:  # chunk -1: see store.CHECKPOINTS
                ledgers.append(LedgerChunk(campaign, player, -1, stored.body))
            if stored.ledger_cut is not None:
                cuts.append(LedgerCut(campaign, player, stored.ledger_cut))
        return written, deleted, ledgers, cuts

    def saved(self) -> list[SavedProgress]:
        return [
            SavedProgress(
                pair,
                self.stored[pair].head,
                *self.after[pair],
                self.versions[pair],
                window_heads.encode(self.totals_after[pair])
                if self.compiled[pair].windows
                else None,
            )
            for pair in self.stored
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
