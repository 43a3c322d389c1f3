"""Folding: lock the touched (campaign, player) pairs, run the engine on each event in request
order, and write everything it changed in one statement.

Shared by the write path and the backfill of a campaign created after its events arrived.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any
from zoneinfo import ZoneInfo

import badges
from gamify.boards.updates import BoardUpdate, Standing, Timeline, WindowRow, pair_changes
from gamify.campaigns.compiled import CompiledCampaign
from gamify.campaigns.credits import credit_id, reward_reason
from gamify.campaigns.windows import WindowTotals, period_of, window_totals
from gamify.events import store
from gamify.events.store import AwardRow, OutboxRow, Pair, RewardRow, SavedProgress
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
    for event, counted_in in zip(events, touched, strict=True):
        folding.apply(event, counted_in)
    updates, window_rows = folding.board_changes()
    await store.write(
        conn,
        tenant,
        folding.saved(),
        list(folding.award_rows.values()),
        folding.outbox_rows(),
        window_rows,
        folding.rewards,
    )
    return folding, updates


class Folding:
    """Engine states of the locked pairs, and everything their changes must write."""

    def __init__(self, tenant: str, locked: dict[Pair, store.Locked], by_backfill: bool) -> None:
        self.tenant = tenant
        self.by_backfill = by_backfill
        self.states: dict[Pair, badges.PlayerState | None] = {
            pair: badges.PlayerState.from_bytes(row.state) if row.state else None
            for pair, row in locked.items()
        }
        # What each written row's version becomes: one more than under the lock.
        self.versions = {pair: row.version + 1 for pair, row in locked.items()}
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
        self.rewards: list[RewardRow] = []  # credits owed by the badges awarded here

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
                self.versions[pair],
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
            SavedProgress(
                pair, state.to_bytes(), *self.after.get(pair, (0, None)), self.versions[pair]
            )
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
