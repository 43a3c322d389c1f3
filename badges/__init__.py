"""badges: the pure rules engine of gamify.

Turns a campaign's rules and a player's events into badges, progress and score. Pure Python on
msgspec and tzdata: no I/O, no asyncio, no clock. The catalogue (`badges.catalog`) adds
airportsdata.

    rules = decode_rules(campaign_json)          # RulesError lists every bad field path
    engine = compile_rules(rules)                # once per campaign
    state, effects = apply(engine, state, events)  # state: PlayerState, or None for a new player
    stored = state.to_bytes(); state = PlayerState.from_bytes(stored)

Semantics
---------
A player's result is the fold of their events in (occurred_at, id) order, counting only events
with occurred_at inside [starts_at, ends_at + grace] (both ends included). An event id counts
once: the same id again changes nothing (the first version seen wins; within one batch, the
earliest). The result therefore does not depend on the order events arrive in, nor on how they
are batched.

* A badge is awarded once, at the occurred_at of the event that completed it (`awarded_at` ==
  that occurred_at; returned datetimes carry that event's offset or UTC). A `badges` badge is
  awarded when the `min`-th of its badges was.
* Every criterion is monotone: an extra event can award a badge or move its `awarded_at`
  earlier, never take a badge away. That is why `sum` adds only positive numbers (a late refund
  must not revoke a badge) and points are never negative.
* Score = points of the held badges + points of the scoring rules (per matching event).
  `reached_at` = the instant of the last point contribution, when the current score was reached
  (None while the score is 0); on a leaderboard, equal scores rank the earlier `reached_at` first.
* Attribute equality is JSON equality: `1 == 1.0`, but `true != 1` and `"1" != 1`; lists,
  objects and integers beyond 64 bits never match, and a missing attribute matches nothing (not
  even null). `sum` adds finite positive numbers (not booleans); `distinct` counts strings and
  numbers.
* Streak periods are days, or weeks starting on Monday, of the campaign's time zone: a DST day of
  23 or 25 hours is one period like any other.

`within` (rolling windows). A criterion with `within: D` is met at instant t if the matching
events with occurred_at in (t - D, t] satisfy it, and the badge is awarded at the first such t:
`count` needs `threshold` of those events, `sum` their sum, `distinct`/`collection` their
distinct values, `value` any one of them (so `within` changes nothing), `streak` needs those
events to cover `threshold` consecutive periods. A `badges` criterion has no events of its own,
and a rolling window over award times would not be monotone (a late event moving one award
earlier could pull the set apart and revoke the badge), so there `within: D` is a deadline from
the campaign start: the `min`-th badge must be awarded by starts_at + D ("all five in the first
week"). Durations are ISO 8601 weeks, days, hours, minutes and seconds (P30D, P1W, PT12H); a day
is 24 hours; years and months are rejected (no fixed length).

Effects. `apply` returns the awards it made, the held badges whose `awarded_at` moved earlier,
score and `reached_at` before and after, and the progress (`current`/`target`) of the badges the
events advanced (a badge already held cannot advance; `progress()` lists every badge). A caller
that does not read that progress passes `apply(..., progress=False)`: `Effects.progress` is then
empty, and the call cheaper.

Speed. `compile_rules` indexes the rules by event type and by (attribute, value), so an event
reaches only the badges it can change. An event later than everything retained for the player
is folded incrementally; a late one is inserted into the history and only the criteria it counts
for are refolded. An event that only counts for badges the player already holds (earlier) and
earns no scoring points is not retained: it can never matter again. A list of one event, the
service's way of calling, takes a path of its own without the batch machinery (same result).
Retained events whose attributes read by the rules are the same strings share one projected
dict (per event type, the first 4,096 distinct ones): in a process holding thousands of players,
memory traffic, not matching, was the larger part of a fold step.

History cap
-----------
A state retains at most `HISTORY_CAP` (10,000) events per player and campaign (set another with
`compile_rules(rules, history_cap=...)`). Past the cap, the oldest events (a tenth of the cap,
at most 64 at a time, so that no single event pays for a thousand) are folded into a
checkpoint, the exact fold state at that instant, and forgotten; results stay exact, and a late
event newer than the checkpoint is still refolded exactly. What weakens is the handling of a late
event *older than the checkpoint*: it is folded in as if it had occurred at the checkpoint instant
(still inside the campaign), so it counts for every criterion and for scoring, but a badge it
completes is dated at the checkpoint instant rather than earlier, and for streaks and `within`
windows it lands in the checkpoint's period and window instead of its own. Arrival order can then
matter. Ids of forgotten events are not kept, so only the caller's id deduplication protects
against an event replayed after it was forgotten. Scoring points of forgotten events are kept
summed per quarter hour (for `points_timeline` and `window_score`, exact for windows aligned to
quarter hours, which local days and weeks are).

Storage. `PlayerState.to_bytes()` is MessagePack: each retained event keeps its id, instant,
type and only the attributes the rules read, with the type and attribute names replaced by
numbers from the compiled rules (about 30 bytes an event, ~3 KB for a player with 100 events).
`badges.storage` stores a state in parts instead: a small head (accumulators, awards, score,
checkpoint, the newest events) and immutable segments of older events. An event later than
everything retained needs the head only, so its cost does not grow with the history; a late
one, or compaction past the cap, needs segments, and `storage.wanted` says which. The
checkpoint's accumulators and awards are stored apart too (compaction and late events read
them), and so are its points per quarter hour, which grow with the history forgotten (in
chunks only a late event reads).
A state belongs to the rules it was folded with: `apply` raises ValueError for a state folded
with different rules (campaign rules can only change before the start, when no state has counted
anything).
"""

from badges.compiled import HISTORY_CAP, Engine, compile_rules
from badges.criteria import (
    BadgesCriterion,
    CollectionCriterion,
    CountCriterion,
    Criterion,
    DistinctCriterion,
    Scalar,
    StreakCriterion,
    SumCriterion,
    ValueCriterion,
    Where,
)
from badges.decode import decode_rules
from badges.durations import parse_duration
from badges.errors import FieldError, RulesError
from badges.fold import apply, progress
from badges.results import Award, Effects, Progress
from badges.rules import Badge, Event, Reward, Rules, ScoringRule
from badges.scoring import held_badges, points_timeline, score, window_score
from badges.state import PlayerState
from badges.validate import EARLIEST, LATEST, MAX_GRACE, MAX_SPAN, validate

CompiledRules = Engine

__all__ = [
    "EARLIEST",
    "HISTORY_CAP",
    "LATEST",
    "MAX_GRACE",
    "MAX_SPAN",
    "Award",
    "Badge",
    "BadgesCriterion",
    "CollectionCriterion",
    "CompiledRules",
    "CountCriterion",
    "Criterion",
    "DistinctCriterion",
    "Effects",
    "Engine",
    "Event",
    "FieldError",
    "PlayerState",
    "Progress",
    "Reward",
    "Rules",
    "RulesError",
    "Scalar",
    "ScoringRule",
    "StreakCriterion",
    "SumCriterion",
    "ValueCriterion",
    "Where",
    "apply",
    "compile_rules",
    "decode_rules",
    "held_badges",
    "parse_duration",
    "points_timeline",
    "progress",
    "score",
    "validate",
    "window_score",
]
