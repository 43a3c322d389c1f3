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

from badges.accumulators import Acc, clone
from badges.compiled import Engine
from badges.matching import project
from badges.results import Award, Effects, Progress
from badges.rules import Event
from badges.state import Checkpoint, Fact, Held, PlayerState
from badges.times import from_us, to_us

__all__ = ["apply", "current", "progress"]

_QUARTER_HOUR = 15 * 60 * 1_000_000


def _key(fact: Fact) -> tuple[int, str]:
    return fact.t, fact.id


def apply(
    engine: Engine, state: PlayerState | None, events: Iterable[Event]
) -> tuple[PlayerState, Effects]:
    """Fold `events` into `state` (updated in place, and returned) and say what changed.

    Events outside [starts_at, ends_at + grace], of types no rule reads, or with an id already
    folded change nothing. Raises ValueError if `state` was built with other rules.
    """
    state = PlayerState() if state is None else state
    _adopt(engine, state)
    run = _Run(engine, state)
    facts = _incoming(engine, state, events)
    if facts:
        if _key(facts[0]) > _last(state):
            for fact in facts:
                _advance(run, fact)
        else:
            _refold(run, facts)
        if len(state.facts) > engine.history_cap:
            _compact(engine, state)
    return state, run.effects()


def _adopt(engine: Engine, state: PlayerState) -> None:
    if state.rules != engine.fingerprint:
        if state.rules:
            raise ValueError("this state was folded with other campaign rules")
        state.rules = engine.fingerprint
    if len(state.accs) < len(engine.ids):
        state.accs.extend([None] * (len(engine.ids) - len(state.accs)))


def _incoming(engine: Engine, state: PlayerState, events: Iterable[Event]) -> list[Fact]:
    """The new events that might count, projected and sorted, each id once."""
    known = state.known_ids()
    facts: list[Fact] = []
    for event in events:
        kind = engine.types.get(event.type)
        if kind is None or event.id in known:
            continue
        t = to_us(event.occurred_at)
        if engine.starts <= t <= engine.ends:
            facts.append(Fact(t, event.id, event.type, project(event.attributes, kind.names)))
    if len(facts) > 1:
        facts.sort(key=_key)
        # The same id twice in one batch: keep the earliest, so the choice is order-free.
        unique: dict[str, Fact] = {}
        for fact in facts:
            unique.setdefault(fact.id, fact)
        if len(unique) < len(facts):
            facts = sorted(unique.values(), key=_key)
    return facts


def _last(state: PlayerState) -> tuple[int, str]:
    last = _key(state.facts[-1]) if state.facts else (-(2**63), "")
    checkpoint = state.checkpoint
    return max(last, (checkpoint.t, checkpoint.id)) if checkpoint else last


class _Run:
    """Bookkeeping of one `apply` call: awards made, times moved, badges touched."""

    def __init__(self, engine: Engine, state: PlayerState) -> None:
        self.engine = engine
        self.state = state
        self.score_before = state.score
        self.reached_before = state.reached
        self.awarded: list[int] = []
        self.moved: list[int] = []
        self.touched: set[int] = set()

    def award(self, index: int, t: int) -> None:
        points = self.engine.points[index]
        self.state.awards[self.engine.ids[index]] = Held(t, points)
        self.awarded.append(index)
        self.touched.add(index)
        self.state.score += points
        if points and (self.state.reached is None or t > self.state.reached):
            self.state.reached = t

    def move(self, index: int, t: int) -> None:
        """An earlier award time; the caller recounts `reached` afterwards."""
        badge = self.engine.ids[index]
        self.state.awards[badge] = Held(t, self.state.awards[badge].points)
        if index not in self.awarded:
            self.moved.append(index)
        self.touched.add(index)

    def derive(self) -> None:
        """Award or move `badges` badges; dependency order makes one pass enough."""
        awards, ids = self.state.awards, self.engine.ids
        for rule in self.engine.derived:
            times = sorted(held.t for r in rule.refs if (held := awards.get(ids[r])) is not None)
            if any(r in self.touched for r in rule.refs):
                self.touched.add(rule.index)
            if len(times) < rule.need:
                continue
            t = times[rule.need - 1]
            if rule.deadline is not None and t > rule.deadline:
                continue
            held = awards.get(ids[rule.index])
            if held is None:
                self.award(rule.index, t)
            elif t < held.t:
                self.move(rule.index, t)

    def effects(self) -> Effects:
        engine, state = self.engine, self.state

        def award(index: int) -> Award:
            held = state.awards[engine.ids[index]]
            return Award(engine.ids[index], from_us(held.t), held.points)

        order = sorted(self.touched)
        return Effects(
            awarded=sorted(map(award, self.awarded), key=lambda a: a.awarded_at),
            moved=sorted(map(award, self.moved), key=lambda a: a.awarded_at),
            score_before=self.score_before,
            score_after=state.score,
            reached_at_before=None if self.reached_before is None else from_us(self.reached_before),
            reached_at_after=None if state.reached is None else from_us(state.reached),
            progress=[
                Progress(engine.ids[i], current(engine, state, i), engine.target(i)) for i in order
            ],
        )


def _advance(run: _Run, fact: Fact) -> None:
    """Fold one event later than everything retained: the incremental path."""
    engine, state = run.engine, run.state
    kind = engine.types[fact.type]
    points = engine.score(kind, fact.attributes) if kind.scoring else 0
    keep, met = points > 0, False
    for index, value in engine.match(kind, fact.attributes):
        run.touched.add(index)
        if engine.ids[index] in state.awards:
            continue  # held at or before the newest retained event, so before this one
        keep = True
        tally = engine.tallies[index]
        acc = state.accs[index] or tally.new()
        if tally.step(acc, fact.t, value):
            state.accs[index] = None
            run.award(index, fact.t)
            met = True
        else:
            state.accs[index] = acc
    if keep:
        # An event that only counts for badges already held can never matter again.
        state.facts.append(fact)
        state.known_ids().add(fact.id)
    if points:
        state.scored += points
        state.score += points
        state.scored_at = state.reached = fact.t
    if met and engine.derived:
        run.derive()


def _refold(run: _Run, facts: list[Fact]) -> None:
    """Insert late events into the history and refold the criteria they count for."""
    engine, state = run.engine, run.state
    checkpoint = state.checkpoint
    pending: set[int] = set()
    for fact in facts:
        if checkpoint is not None and _key(fact) <= (checkpoint.t, checkpoint.id):
            # Older than the checkpoint: the events it folded are gone, so this one counts
            # as if it had occurred at the checkpoint (see the history cap in the docs).
            fact = Fact(checkpoint.t, fact.id, fact.type, fact.attributes)
        kind = engine.types[fact.type]
        points = engine.score(kind, fact.attributes) if kind.scoring else 0
        keep = points > 0
        for index, _ in engine.match(kind, fact.attributes):
            run.touched.add(index)
            held = state.awards.get(engine.ids[index])
            if held is None or held.t > fact.t:
                keep = True
                pending.add(index)
        if keep:
            insort(state.facts, fact, key=_key)
            state.known_ids().add(fact.id)
        if points:
            state.scored += points
            state.scored_at = max(state.scored_at or fact.t, fact.t)
    for index, t in _fold(engine, state, pending).items():
        held = state.awards.get(engine.ids[index])
        if held is None:
            run.award(index, t)
        elif t < held.t:
            run.move(index, t)
    if engine.derived:
        run.derive()
    _recount(state)


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
    for fact in state.facts:
        if not open_:
            break
        for index, value in engine.match(engine.types[fact.type], fact.attributes):
            if index in open_ and engine.tallies[index].step(accs[index], fact.t, value):
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

    A tenth of the cap goes at once, so the work is paid once per cap/10 events, not per event.
    """
    cap = engine.history_cap
    drop = len(state.facts) - (cap - cap // 10)
    gone, state.facts = state.facts[:drop], state.facts[drop:]
    checkpoint = state.checkpoint or Checkpoint(
        gone[0].t, gone[0].id, [None] * len(engine.ids), {}, []
    )
    known = state.known_ids()
    for fact in gone:
        kind = engine.types[fact.type]
        for index, value in engine.match(kind, fact.attributes):
            badge = engine.ids[index]
            if badge in checkpoint.awards:
                continue
            tally = engine.tallies[index]
            acc = checkpoint.accs[index] or tally.new()
            if tally.step(acc, fact.t, value):
                checkpoint.awards[badge] = fact.t
                checkpoint.accs[index] = None
            else:
                checkpoint.accs[index] = acc
        points = engine.score(kind, fact.attributes) if kind.scoring else 0
        if points:
            _bucket(checkpoint.scored, fact.t, points)
        if _key(fact) > (checkpoint.t, checkpoint.id):
            checkpoint.t, checkpoint.id = fact.t, fact.id
        known.discard(fact.id)
    state.checkpoint = checkpoint


def _bucket(scored: list[tuple[int, int]], t: int, points: int) -> None:
    """Scoring points of forgotten events, kept per quarter hour for leaderboard windows (every
    time zone offset in use is a multiple of 15 minutes, so local days and weeks split cleanly)."""
    if scored and scored[-1][0] // _QUARTER_HOUR == t // _QUARTER_HOUR:
        newest, total = scored[-1]
        scored[-1] = (max(newest, t), total + points)
    else:
        scored.append((t, points))


def current(engine: Engine, state: PlayerState, index: int) -> int:
    """Progress of badge `index`, capped at its target."""
    target = engine.target(index)
    if engine.ids[index] in state.awards:
        return target
    rule = engine.derived_at.get(index)
    if rule is not None:
        times = [h.t for r in rule.refs if (h := state.awards.get(engine.ids[r])) is not None]
        return min(target, sum(1 for t in times if rule.deadline is None or t <= rule.deadline))
    acc = state.accs[index] if index < len(state.accs) else None
    return 0 if acc is None else min(target, engine.tallies[index].current(acc))


def progress(engine: Engine, state: PlayerState | None) -> list[Progress]:
    """Progress towards every badge of the campaign, in the campaign's order."""
    state = PlayerState() if state is None else state
    return [
        Progress(badge, current(engine, state, i), engine.target(i))
        for i, badge in enumerate(engine.ids)
    ]
