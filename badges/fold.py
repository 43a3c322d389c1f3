"""`apply`: fold a player's events into their state, incrementally when it can.

The result is defined as the fold of the player's events in (occurred_at, id) order. An event
later than everything retained is simply folded on (the common case: a handful of dict lookups).
An earlier one is inserted into the history and every criterion it counts for is refolded from
the checkpoint (or from nothing); the others cannot have changed. Either way the state ends up as
if all events had arrived in order.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Iterable
from datetime import datetime

from badges.accumulators import Acc, clone
from badges.compiled import Engine, TypeIndex
from badges.matching import MISSING
from badges.results import Award, Effects, Progress
from badges.rules import Event
from badges.state import Checkpoint, Fact, Held, Memo, PlayerState
from badges.times import from_us, to_us

__all__ = ["COMPACT_STEP", "apply", "bucket", "current", "in_order", "progress"]

_QUARTER_HOUR = 15 * 60 * 1_000_000
# The most events one compaction folds into the checkpoint (see `_compact`).
COMPACT_STEP = 64


def _key(fact: Fact) -> tuple[int, str]:
    return fact.t, fact.id


def apply(
    engine: Engine, state: PlayerState | None, events: Iterable[Event], *, progress: bool = True
) -> tuple[PlayerState, Effects]:
    """Fold `events` into `state` (updated in place, and returned) and say what changed.

    Events outside [starts_at, ends_at + grace], of types no rule reads, or with an id already
    folded change nothing. With `progress=False`, `Effects.progress` is left empty, which saves
    the work of computing it. Raises ValueError if `state` was built with other rules, TypeError
    for a naive `occurred_at`.
    """
    if state is None:
        state = PlayerState(rules=engine.fingerprint, accs=[None] * len(engine.ids))
    elif state.rules != engine.fingerprint:
        _adopt(engine, state)
    if type(events) is list and len(events) == 1:
        # One event per call is how the service feeds the engine: a path of its own, without
        # the batch machinery, pays for itself (see `_apply_one`).
        return state, _apply_one(engine, state, events[0], progress)
    run = _Run(engine, state, progress)
    facts = _incoming(run, events)
    if facts:
        if in_order(facts[0].t, facts[0].id, state):
            for fact in facts:
                _advance(run, fact)
        else:
            _refold(run, facts)
        _cap(engine, state)
    return state, run.effects()


def _cap(engine: Engine, state: PlayerState) -> None:
    if len(state.facts) + state.memo().unloaded > engine.history_cap:
        _compact(engine, state)


def _partial(state: PlayerState) -> ValueError:
    return ValueError(
        "a late event needs the whole history: attach the state's segments first "
        "(see badges.storage.wanted)"
    )


def _apply_one(engine: Engine, state: PlayerState, event: Event, progress: bool) -> Effects:
    """`apply` for one event: the same result as the general path (tests compare them)."""
    memo = state.memo()
    reached_before = _reached_at(state, memo, None)
    kind = engine.types.get(event.type)
    if kind is not None and event.id not in memo.ids:
        occurred = event.occurred_at
        t = to_us(occurred)
        if engine.starts <= t <= engine.ends:
            fact = Fact(t, event.id, kind.code, kind.project(event.attributes))
            if in_order(t, event.id, state):
                effects = _advance_one(
                    engine, state, memo, kind, fact, occurred, reached_before, progress
                )
            else:
                run = _Run(engine, state, progress)
                run.instants[t] = occurred
                _refold(run, [fact])
                effects = run.effects()
            _cap(engine, state)
            return effects
    return Effects([], [], state.score, state.score, reached_before, reached_before, [])


def _reached_at(
    state: PlayerState, memo: Memo, instants: dict[int, datetime] | None
) -> datetime | None:
    """`state.reached` as a datetime, remembered: it is reported before and after every call."""
    reached = state.reached
    # `is`, not ==: the memo holds the very int it converted, and comparing values would read
    # that int, one more cache miss among thousands of players' states.
    if memo.reached is not reached:
        memo.reached = reached
        if reached is None:
            memo.reached_at = None
        else:
            memo.reached_at = (instants and instants.get(reached)) or from_us(reached)
    return memo.reached_at


def _advance_one(
    engine: Engine,
    state: PlayerState,
    memo: Memo,
    kind: TypeIndex,
    fact: Fact,
    occurred: datetime,
    reached_before: datetime | None,
    progress: bool,
) -> Effects:
    """`_advance` for the one event of a call, reporting straight into `Effects`: the service's
    common case, spared building a `_Run` and reading it back."""
    t, attributes = fact.t, fact.attributes
    score_before = state.score
    points = engine.score(kind, attributes) if kind.scoring else kind.points
    found = engine.match(kind, attributes, state.awards)
    met: list[int] = []
    touched: dict[int, int | None] = {}
    if found:
        accs, tallies = state.accs, engine.tallies
        for index, value in found:
            tally = tallies[index]
            if not tally.instant:
                acc = accs[index]
                if acc is None:
                    acc = accs[index] = tally.new()
                if not tally.step(acc, t, value):
                    if progress:
                        current = tally.current(acc)
                        touched[index] = current if current < tally.target else tally.target
                    continue
                accs[index] = None
            met.append(index)
            _award(engine, state, index, t)
    if found or points:
        # An event that only counts for badges already held can never matter again.
        state.facts.append(fact)
        memo.ids[fact.id] = None
    if points:
        state.scored += points
        state.score += points
        state.scored_at = state.reached = t
    if met and engine.derived:
        # Rare enough to hand over to the general bookkeeping, told what this event did.
        run = _Run(engine, state, progress, score_before, reached_before)
        run.instants[t] = occurred
        run.awarded = met
        run.touched = touched
        for index in met:
            touched[index] = engine.targets[index]
        run.derive()
        return run.effects()
    ids, badge_points = engine.ids, engine.points
    awarded = [Award(ids[index], occurred, badge_points[index]) for index in met]
    lines: list[Progress] = []
    if progress:
        for index in met:
            touched[index] = engine.targets[index]
        if touched:
            lines = _progress_lines(engine, state, touched)
    if state.reached is t:  # this event reached the score: report its own datetime
        memo.reached, memo.reached_at = t, occurred
    reached_after = _reached_at(state, memo, None)
    return Effects(awarded, [], score_before, state.score, reached_before, reached_after, lines)


def _adopt(engine: Engine, state: PlayerState) -> None:
    state.check(engine.fingerprint)
    state.rules = engine.fingerprint
    state.accs = [None] * len(engine.ids)


def _incoming(run: _Run, events: Iterable[Event]) -> list[Fact]:
    """The new events that might count, projected and sorted, each id once."""
    engine, known, instants = run.engine, run.memo.ids, run.instants
    types, starts, ends = engine.types, engine.starts, engine.ends
    facts: list[Fact] = []
    for event in events:
        kind = types.get(event.type)
        if kind is None or event.id in known:
            continue
        occurred = event.occurred_at
        t = to_us(occurred)
        if starts <= t <= ends:
            facts.append(Fact(t, event.id, kind.code, kind.project(event.attributes)))
            instants[t] = occurred
    if len(facts) > 1:
        facts.sort(key=_key)
        # The same id twice in one batch: keep the earliest, so the choice is order-free.
        unique: dict[str, Fact] = {}
        for fact in facts:
            unique.setdefault(fact.id, fact)
        if len(unique) < len(facts):
            facts = sorted(unique.values(), key=_key)
    return facts


def in_order(t: int, event_id: str, state: PlayerState) -> bool:
    """Whether an event at `t` (microseconds) with this id sorts after everything the state has
    folded: then it is folded on, else refolded in (see `badges.storage.wanted` too)."""
    facts = state.facts
    if facts:
        last = facts[-1]
        if t < last.t or (t == last.t and event_id <= last.id):
            return False
    sealed = state.sealed
    if sealed is not None and (t, event_id) <= sealed:
        return False
    point = state.checkpoint
    return point is None or t > point.t or (t == point.t and event_id > point.id)


class _Run:
    """Bookkeeping of one `apply` call: awards made, times moved, badges touched."""

    __slots__ = (
        "awarded",
        "engine",
        "instants",
        "memo",
        "moved",
        "progress",
        "reached_at_before",
        "score_before",
        "state",
        "touched",
    )

    def __init__(
        self,
        engine: Engine,
        state: PlayerState,
        progress: bool,
        score_before: int | None = None,
        reached_at_before: datetime | None = None,
    ) -> None:
        """`score_before` and `reached_at_before` when `state` has already changed."""
        self.engine = engine
        self.state = state
        self.memo = memo = state.memo()
        # The call's events' own datetimes by instant: an award or reached_at equal to one of
        # them is reported with it rather than converted from microseconds.
        self.instants: dict[int, datetime] = {}
        if score_before is None:
            self.score_before = state.score
            self.reached_at_before = _reached_at(state, memo, None)
        else:
            self.score_before = score_before
            self.reached_at_before = reached_at_before
        self.awarded: list[int] = []
        self.moved: list[int] = []
        # Badges to report progress for, with their `current` when the fold already knows it
        # (filled either way, but only read if the caller wants `Effects.progress`).
        self.touched: dict[int, int | None] = {}
        self.progress = progress

    def reached_at(self) -> datetime | None:
        return _reached_at(self.state, self.memo, self.instants)

    def award(self, index: int, t: int) -> None:
        _award(self.engine, self.state, index, t)
        self.awarded.append(index)
        self.touched[index] = self.engine.targets[index]

    def move(self, index: int, t: int) -> None:
        """An earlier award time; the caller recounts `reached` afterwards."""
        badge = self.engine.ids[index]
        self.state.awards[badge] = Held(t, self.state.awards[badge].points)
        if index not in self.awarded:
            self.moved.append(index)
        self.touched[index] = self.engine.targets[index]

    def derive(self) -> None:
        """Award or move `badges` badges; dependency order makes one pass enough."""
        awards, ids = self.state.awards, self.engine.ids
        changed = set(self.awarded).union(self.moved)
        for rule in self.engine.derived:
            times = sorted(held.t for r in rule.refs if (held := awards.get(ids[r])) is not None)
            if ids[rule.index] not in awards and not changed.isdisjoint(rule.refs):
                self.touched[rule.index] = None
            if len(times) < rule.need:
                continue
            t = times[rule.need - 1]
            if rule.deadline is not None and t > rule.deadline:
                continue
            held = awards.get(ids[rule.index])
            if held is None:
                self.award(rule.index, t)
                changed.add(rule.index)
            elif t < held.t:
                self.move(rule.index, t)
                changed.add(rule.index)

    def effects(self) -> Effects:
        return Effects(
            self._awards(self.awarded) if self.awarded else [],
            self._awards(self.moved) if self.moved else [],
            self.score_before,
            self.state.score,
            self.reached_at_before,
            self.reached_at(),
            _progress_lines(self.engine, self.state, self.touched)
            if self.progress and self.touched
            else [],
        )

    def _awards(self, indexes: list[int]) -> list[Award]:
        awards = []
        for index in indexes:
            badge = self.engine.ids[index]
            held = self.state.awards[badge]
            awards.append(Award(badge, self.instants.get(held.t) or from_us(held.t), held.points))
        if len(awards) > 1:
            awards.sort(key=_award_time)
        return awards


def _award(engine: Engine, state: PlayerState, index: int, t: int) -> None:
    points = engine.points[index]
    state.awards[engine.ids[index]] = Held(t, points)
    state.score += points
    if points and (state.reached is None or t > state.reached):
        state.reached = t


def _progress_lines(
    engine: Engine, state: PlayerState, touched: dict[int, int | None]
) -> list[Progress]:
    """Progress of the `touched` badges, in the campaign's order."""
    ids, targets = engine.ids, engine.targets
    return [
        Progress(ids[i], current(engine, state, i) if known is None else known, targets[i])
        for i, known in (sorted(touched.items()) if len(touched) > 1 else touched.items())
    ]


def _award_time(award: Award) -> datetime:
    return award.awarded_at


def _advance(run: _Run, fact: Fact) -> None:
    """Fold one event later than everything retained: the incremental path."""
    engine, state, t = run.engine, run.state, fact.t
    kind = engine.kinds[fact.type]
    points = engine.score(kind, fact.attributes) if kind.scoring else kind.points
    met = False
    accs, tallies, touched = state.accs, engine.tallies, run.touched
    # Held badges were awarded at or before the newest retained event, so before this one:
    # nothing this event does can change them.
    found = engine.match(kind, fact.attributes, state.awards)
    for index, value in found:
        tally = tallies[index]
        if tally.instant:
            run.award(index, t)
            met = True
            continue
        acc = accs[index]
        if acc is None:
            acc = accs[index] = tally.new()
        if tally.step(acc, t, value):
            accs[index] = None
            run.award(index, t)
            met = True
        elif run.progress:
            current = tally.current(acc)
            touched[index] = current if current < tally.target else tally.target
    if found or points:
        # An event that only counts for badges already held can never matter again.
        state.facts.append(fact)
        run.memo.ids[fact.id] = None
    if points:
        state.scored += points
        state.score += points
        state.scored_at = state.reached = t
    if met and engine.derived:
        run.derive()


def _refold(run: _Run, facts: list[Fact]) -> None:
    """Insert late events into the history and refold the criteria they count for."""
    engine, state = run.engine, run.state
    if run.memo.gap is not None or not run.memo.checkpoint_loaded:
        raise _partial(state)
    checkpoint = state.checkpoint
    pending: set[int] = set()
    for fact in facts:
        if checkpoint is not None and _key(fact) <= (checkpoint.t, checkpoint.id):
            # Older than the checkpoint: the events it folded are gone, so this one counts
            # as if it had occurred at the checkpoint (see the history cap in the docs).
            fact = Fact(checkpoint.t, fact.id, fact.type, fact.attributes)
        kind = engine.kinds[fact.type]
        points = engine.score(kind, fact.attributes) if kind.scoring else kind.points
        keep = points > 0
        for index, value in engine.match(kind, fact.attributes):
            held = state.awards.get(engine.ids[index])
            if held is None or held.t > fact.t:
                keep = True
                run.touched[index] = None
                if index not in pending and _settled(run, index, held, fact.t, value):
                    continue
                pending.add(index)
        if keep:
            insort(state.facts, fact)  # Facts order by (t, id); retained ids are unique
            run.memo.ids[fact.id] = None
        if points:
            state.scored += points
            state.score += points
            if state.scored_at is None or fact.t > state.scored_at:
                state.scored_at = fact.t
            if state.reached is None or fact.t > state.reached:
                state.reached = fact.t
    met = _fold(engine, state, pending) if pending else {}
    for index, t in met.items():
        held = state.awards.get(engine.ids[index])
        if held is None:
            run.award(index, t)
        elif t < held.t:
            run.move(index, t)
    if engine.derived:
        run.derive()
    if run.moved:
        _recount(state)


def _settled(run: _Run, index: int, held: Held | None, t: int, value: object) -> bool:
    """Whether a late event's effect on criterion `index` is known without a refold: a `value`
    criterion is met by its earliest match, and an unmet order-free tally (count, integer sum,
    distinct) ends the same whatever the order, so only becoming met needs the order."""
    tally = run.engine.tallies[index]
    if tally.instant:
        if held is None:
            run.award(index, t)
        else:
            run.move(index, t)
        return True
    if held is not None:
        return False
    accs = run.state.accs
    acc = accs[index]
    if acc is None:
        acc = accs[index] = tally.new()
    return tally.insert(acc, value) is False


def _fold(engine: Engine, state: PlayerState, indexes: set[int]) -> dict[int, int]:
    """Refold the criteria `indexes` over checkpoint + history; the award time of those met.

    Leaves their accumulators in `state.accs` as the fold ends them.
    """
    checkpoint = state.checkpoint
    met: dict[int, int] = {}
    accs: dict[int, Acc | None] = {}
    for index in indexes:
        tally = engine.tallies[index]
        if checkpoint is None:
            accs[index] = tally.new()
        elif (t := checkpoint.awards.get(engine.ids[index])) is not None:
            met[index] = t
        else:
            acc = checkpoint.accs[index]
            accs[index] = tally.new() if acc is None else clone(acc)
    open_ = set(accs)
    tests = [(index, engine.singles[index], engine.tallies[index]) for index in accs]
    for fact in state.facts:
        if not open_:
            break
        for index, single, tally in tests:
            if index in open_:
                value = single(fact.type, fact.attributes)
                if value is not MISSING and tally.step(accs[index], fact.t, value):
                    met[index] = fact.t
                    open_.discard(index)
    for index, acc in accs.items():
        state.accs[index] = None if index in met else acc
    return met


def _recount(state: PlayerState) -> None:
    """Score and reached_at from scratch (a moved award can move reached_at earlier)."""
    held = state.awards.values()
    state.score = state.scored + sum(h.points for h in held)
    times = [h.t for h in held if h.points]
    if state.scored and state.scored_at is not None:
        times.append(state.scored_at)
    state.reached = max(times) if times else None


def _compact(engine: Engine, state: PlayerState) -> None:
    """Fold the oldest events into the checkpoint and forget them.

    A tenth of the cap goes at once, at most `COMPACT_STEP` events: the work is paid once per
    that many events, and no single event pays for a thousand. Only the oldest facts in `facts`
    can go: those of segments not attached stay until they are (see `badges.storage.wanted`).
    """
    cap = engine.history_cap
    memo = state.memo()
    if not memo.checkpoint_loaded:  # its body is stored apart: wait until it is attached
        return
    drop = len(state.facts) + memo.unloaded - (cap - min(cap // 10, COMPACT_STEP))
    if memo.gap is not None:
        drop = min(drop, memo.gap)
        memo.gap -= max(drop, 0)
    if drop <= 0:
        return
    gone, state.facts = state.facts[:drop], state.facts[drop:]
    checkpoint = state.checkpoint or Checkpoint(
        gone[0].t, gone[0].id, [None] * len(engine.ids), {}, []
    )
    known = memo.ids
    for fact in gone:
        kind = engine.kinds[fact.type]
        for index, value in engine.match(kind, fact.attributes, checkpoint.awards):
            badge = engine.ids[index]
            tally = engine.tallies[index]
            acc = checkpoint.accs[index]
            if acc is None:
                acc = tally.new()
            if tally.step(acc, fact.t, value):
                checkpoint.awards[badge] = fact.t
                checkpoint.accs[index] = None
            else:
                checkpoint.accs[index] = acc
        points = engine.score(kind, fact.attributes)
        if points:
            bucket(checkpoint.scored, fact.t, points)
        if _key(fact) > (checkpoint.t, checkpoint.id):
            checkpoint.t, checkpoint.id = fact.t, fact.id
        known.pop(fact.id, None)
    state.checkpoint = checkpoint


def bucket(scored: list[tuple[int, int]], t: int, points: int) -> None:
    """Scoring points of forgotten events, kept per quarter hour for leaderboard windows (every
    time zone offset in use is a multiple of 15 minutes, so local days and weeks split cleanly)."""
    if scored and scored[-1][0] // _QUARTER_HOUR == t // _QUARTER_HOUR:
        newest, total = scored[-1]
        scored[-1] = (max(newest, t), total + points)
    else:
        scored.append((t, points))


def current(engine: Engine, state: PlayerState, index: int) -> int:
    """Progress of badge `index`, capped at its target."""
    target = engine.targets[index]
    if engine.ids[index] in state.awards:
        return target
    if engine.derived and (rule := engine.derived_at.get(index)) is not None:
        times = [h.t for r in rule.refs if (h := state.awards.get(engine.ids[r])) is not None]
        return min(target, sum(1 for t in times if rule.deadline is None or t <= rule.deadline))
    acc = state.accs[index] if index < len(state.accs) else None
    return 0 if acc is None else min(target, engine.tallies[index].current(acc))


def progress(engine: Engine, state: PlayerState | None) -> list[Progress]:
    """Progress towards every badge of the campaign, in the campaign's order."""
    state = PlayerState() if state is None else state
    state.check(engine.fingerprint)
    return [
        Progress(badge, current(engine, state, i), engine.targets[i])
        for i, badge in enumerate(engine.ids)
    ]
