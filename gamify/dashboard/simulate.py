"""Rules simulation: what a campaign document would have given over a period of stored events,
written nowhere.

The campaign is checked as `POST /v1/campaigns` checks it, then its rules are replayed over the
period as if the campaign had run exactly then (starts_at = `from`, ends_at = `to`, no grace;
its time zone, badges and scoring as written). Without a period, over the campaign's own
[starts_at, ends_at + grace]. Both ends count, as a campaign's do.

The pure engine folds the tenant's stored events one player at a time, streamed from Postgres
by a server-side cursor in a read-only snapshot: memory holds one chunk of events and one
player's state, plus a few numbers per player (a score, and with a prize pool a standing). A
simulation takes at most MAX_EVENTS events and says so when the period holds more. It runs in
the worker's event loop one chunk at a time, the cursor's fetches letting requests through
between chunks, and one simulation at a time per worker.

Ranks follow the board's rule: more points first, then whoever reached them first (to the
second, counted from the start), then the greater player id, as Redis orders equal scores.
"""

from __future__ import annotations

import asyncio
import heapq
import math
from array import array
from collections import Counter
from datetime import datetime, timedelta
from typing import Annotated, Any

import asyncpg
import msgspec

import badges
from gamify.boards.names import DisplayNames
from gamify.campaigns import document
from gamify.dashboard import store
from gamify.payouts.split import Pool, Standing, allocate, parse_pool
from gamify.platform.decoding import decode_all, join
from gamify.platform.problems import ApiError, FieldProblem, invalid

MAX_EVENTS = 1_000_000
MAX_DAYS = 3650
CHUNK = 1000  # events folded between two fetches: about 10 ms of a worker's CPU
TOP = 10
BUCKETS = 10
PERCENTILES = (50, 75, 90, 99)

AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]


class SimulationIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A campaign document and the period of stored events to replay it over: `from` and `to`
    (RFC 3339, both ends included), or the last `days` up to now, or neither (the campaign's
    own dates)."""

    campaign: Annotated[
        dict[str, Any], msgspec.Meta(description="A campaign, as POST /v1/campaigns takes it")
    ]
    from_: AwareDatetime | None = msgspec.field(default=None, name="from")
    to: AwareDatetime | None = None
    days: Annotated[int, msgspec.Meta(ge=1, le=MAX_DAYS)] | None = None


class Period(msgspec.Struct):
    from_: datetime = msgspec.field(name="from")
    to: datetime


class BadgeCount(msgspec.Struct):
    badge: str
    name: str
    players: int  # who would hold it at the end of the period


class Bucket(msgspec.Struct):
    min: int  # both bounds included
    max: int
    players: int


class Percentiles(msgspec.Struct):
    p50: int
    p75: int
    p90: int
    p99: int


class Scores(msgspec.Struct):
    """Scores of every player with an event in the period, 0 included (nearest-rank
    percentiles; up to 10 buckets of equal width from 0 to the highest score)."""

    ranked: int  # players with at least one point: those a board would list
    min: int
    max: int
    mean: float
    percentiles: Percentiles
    buckets: list[Bucket]


class Entry(msgspec.Struct):
    rank: int
    player: str
    display_name: str | None
    score: int
    badges: list[str]  # held, oldest first


class PayoutItem(msgspec.Struct):
    rank: int
    player: str
    amount: int


class PayoutSummary(msgspec.Struct):
    """The prize pool split as settlement would split it at the end of the period; `items` are
    the first 10 credits in board order."""

    amount: int
    unit: str
    split: str
    allocated: int
    unallocated: int
    eligible: int
    credited: int  # players credited more than 0
    items: list[PayoutItem]


class SimulationOut(msgspec.Struct):
    period: Period
    events: int  # stored events in the period
    players: int  # players with at least one of them
    badges: list[BadgeCount]  # every badge of the campaign, in its order
    scores: Scores
    top: list[Entry]
    payouts: PayoutSummary | None  # None without a prize pool


# ---------------------------------------------------------------------------------------------
# The request.


class Plan(msgspec.Struct, frozen=True):
    """A checked request: the engine compiled for the period, and what the answer needs."""

    campaign: document.Campaign
    engine: badges.Engine
    start: datetime
    end: datetime


def plan(body: bytes, now: datetime) -> Plan:
    """Check the body; raises a 400 naming every bad field (the campaign's under `campaign.`)."""
    request, problems = decode_all(body, SimulationIn)
    raw = request.campaign if request is not None else _campaign_part(body)
    campaign: document.Campaign | None = None
    if raw is not None:
        try:
            campaign = document.parse(raw)
        except document.CampaignInvalid as exc:
            problems += [_under_campaign(e) for e in exc.errors]
    if request is not None:
        problems += _period_problems(request)
    if problems or request is None or campaign is None:
        raise invalid(problems)
    start, end = _period(request, campaign, now)
    rules = campaign.rules
    if request.from_ is not None or request.days is not None:
        rules = msgspec.structs.replace(rules, starts_at=start, ends_at=end, grace=None)
    return Plan(campaign, badges.compile_rules(rules), start, end)


def _campaign_part(body: bytes) -> Any:
    """The campaign of a body whose other parts are wrong, to name its problems as well."""
    try:
        whole = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None
    part = whole.get("campaign") if isinstance(whole, dict) else None
    return part if isinstance(part, dict) else None  # else already named by its decoding


def _under_campaign(problem: FieldProblem) -> FieldProblem:
    field = "" if problem.field == "body" else problem.field
    return FieldProblem(join("campaign", field), problem.message)


def _period_problems(request: SimulationIn) -> list[FieldProblem]:
    start, end = request.from_, request.to
    if request.days is not None and (start is not None or end is not None):
        return [FieldProblem("days", "give days, or from and to, not both")]
    if (start is None) != (end is None):
        missing = "to" if end is None else "from"
        return [FieldProblem(missing, "from and to go together")]
    if start is None or end is None:
        return []
    problems = [
        FieldProblem(name, "must lie between 1970 and 2200 (UTC)")
        for name, moment in (("from", start), ("to", end))
        if not badges.EARLIEST <= moment < badges.LATEST
    ]
    if end <= start:
        problems.append(FieldProblem("to", "must be after from"))
    elif end - start > badges.MAX_SPAN:
        problems.append(FieldProblem("to", "a period lasts at most 10 years"))
    return problems


def _period(
    request: SimulationIn, campaign: document.Campaign, now: datetime
) -> tuple[datetime, datetime]:
    if request.from_ is not None and request.to is not None:
        return request.from_, request.to
    if request.days is not None:
        return now - timedelta(days=request.days), now
    return campaign.rules.starts_at, campaign.rules.ends_at + campaign.grace


def too_many(limit: int) -> ApiError:
    return ApiError(
        422,
        "Unprocessable Content",
        f"the period holds more than {limit:,} stored events, the most a simulation takes: "
        "choose a shorter one",
    )


# ---------------------------------------------------------------------------------------------
# The fold: pure, one player at a time.


class Fold:
    """Feed it each player's events in turn (`feed`, in chunks); `finish` sums up.

    What it keeps per player: the score (for the distribution), the ten best (a heap), and
    with a prize pool the player's standing (the split needs every one)."""

    def __init__(self, engine: badges.Engine, start: datetime, standings: bool) -> None:
        self.engine = engine
        self.start = start
        self.events = 0
        self.holders: Counter[str] = Counter()
        self.scores = array("q")
        # The best TOP as (score, -seconds, player, badges held): the root is the worst of them.
        self.best: list[tuple[int, int, str, dict[str, datetime]]] = []
        self.standings: list[tuple[str, int, int | None, int]] | None = [] if standings else None
        # The current player, read from what `apply` reports rather than asked of the state
        # afterwards: a million one-event players spend most of their time here.
        self._player: str | None = None
        self._state: badges.PlayerState | None = None
        self._score = 0
        self._reached_at: datetime | None = None
        self._held: dict[str, datetime] = {}  # badge -> awarded_at

    def feed(self, player: str, events: list[badges.Event]) -> None:
        if player != self._player:
            self._close()
            self._player, self._state, self._held = player, None, {}
        self._state, effects = badges.apply(self.engine, self._state, events, progress=False)
        self._score, self._reached_at = effects.score_after, effects.reached_at_after
        for award in (*effects.awarded, *effects.moved):
            self._held[award.badge] = award.awarded_at
        self.events += len(events)

    def _close(self) -> None:
        """Note what the current player ended with."""
        if self._player is None:
            return
        score, held = self._score, self._held
        self.holders.update(held.keys())  # (a mapping would add its values)
        self.scores.append(score)
        seconds = None if self._reached_at is None else self._seconds(self._reached_at)
        if score > 0 and seconds is not None:
            entry = (score, -seconds, self._player, held)
            if len(self.best) < TOP:
                heapq.heappush(self.best, entry)
            elif entry > self.best[0]:
                heapq.heapreplace(self.best, entry)
        if self.standings is not None:
            self.standings.append((self._player, score, seconds, len(held)))

    def _seconds(self, reached_at: datetime) -> int:
        # As the board encodes it (boards.encoding): whole seconds from the start.
        return max(0, int((reached_at - self.start).total_seconds()))

    def finish(self) -> Fold:
        self._close()
        self._player, self._state = None, None
        return self

    def top(self) -> list[tuple[int, str, int, list[str]]]:
        """(rank, player, score, badges oldest first) of the best, best first."""
        ordered = sorted(self.best, key=lambda entry: entry[:3], reverse=True)
        return [
            (i, p, score, sorted(held, key=lambda badge: (held[badge], badge)))
            for i, (score, _, p, held) in enumerate(ordered, 1)
        ]

    def ranked_standings(self) -> list[Standing]:
        """Every player in board order with their rank (score 0 last, by player id); the
        fold's own standings are let go, a million players' worth of memory."""
        rows, self.standings = self.standings or [], None
        rows.sort(key=lambda r: r[0], reverse=True)
        rows.sort(key=lambda r: (-r[1], r[2] is None, r[2] or 0))
        return [Standing(p, score, held, rank) for rank, (p, score, _, held) in enumerate(rows, 1)]


class Summary(msgspec.Struct):
    scores: Scores
    top: list[tuple[int, str, int, list[str]]]  # (rank, player, score, badges)
    payouts: PayoutSummary | None


def summarise(campaign: document.Campaign, fold: Fold) -> Summary:
    prize = campaign.document.get("prize_pool")
    return Summary(
        score_summary(fold.scores),
        fold.top(),
        payout_summary(parse_pool(prize), prize["unit"], fold.ranked_standings())
        if prize
        else None,
    )


def score_summary(scores: array[int]) -> Scores:
    if not scores:
        return Scores(0, 0, 0, 0.0, Percentiles(0, 0, 0, 0), [])
    ordered = sorted(scores)
    n, top = len(ordered), ordered[-1]

    def nearest_rank(p: int) -> int:
        return ordered[math.ceil(p * n / 100) - 1]

    width = math.ceil((top + 1) / BUCKETS)
    counts = Counter(score // width for score in ordered)
    buckets = [
        Bucket(i * width, min((i + 1) * width - 1, top), counts.get(i, 0))
        for i in range(top // width + 1)
    ]
    return Scores(
        ranked=n - ordered.count(0),
        min=ordered[0],
        max=top,
        mean=round(sum(ordered) / n, 2),
        percentiles=Percentiles(*(nearest_rank(p) for p in PERCENTILES)),
        buckets=buckets,
    )


def payout_summary(pool: Pool, unit: str, standings: list[Standing]) -> PayoutSummary:
    allocation = allocate(pool, standings)
    shown = allocation.items[:TOP]
    wanted = {credit.player for credit in shown}
    ranks = {s.player: s.rank for s in standings if s.player in wanted}
    return PayoutSummary(
        amount=pool.amount,
        unit=unit,
        split=pool.split,
        allocated=allocation.allocated,
        unallocated=allocation.unallocated,
        eligible=allocation.eligible,
        credited=len(allocation.items),
        items=[PayoutItem(ranks[c.player], c.player, c.amount) for c in shown],
    )


# ---------------------------------------------------------------------------------------------
# Running one.


class Simulations:
    """This instance's simulations, one at a time: each takes a worker's CPU for as long as its
    fold lasts (8 to 30 s for a million events), and several at once would take it all."""

    def __init__(self, pool: asyncpg.Pool, names: DisplayNames, limit: int = MAX_EVENTS) -> None:
        self.pool = pool
        self.names = names
        self.limit = limit
        self._one_at_a_time = asyncio.Lock()

    async def run(self, tenant: str, body: bytes, now: datetime) -> SimulationOut:
        checked = plan(body, now)
        campaign = checked.campaign
        async with self._one_at_a_time:
            has_pool = bool(campaign.document.get("prize_pool"))
            fold = await self._fold(tenant, checked, standings=has_pool)
            # Ranking and splitting among a million players is seconds of CPU in one piece: in
            # a thread, the event loop still gets its turns (the GIL changes hands every 5 ms).
            summary = await asyncio.to_thread(summarise, campaign, fold)
        names = await self.names.of(tenant)([player for _, player, _, _ in summary.top])
        return SimulationOut(
            period=Period(checked.start, checked.end),
            events=fold.events,
            players=len(fold.scores),
            badges=[BadgeCount(b.id, b.name, fold.holders[b.id]) for b in campaign.rules.badges],
            scores=summary.scores,
            top=[Entry(r, p, names.get(p), s, held) for r, p, s, held in summary.top],
            payouts=summary.payouts,
        )

    async def _fold(self, tenant: str, checked: Plan, *, standings: bool) -> Fold:
        fold = Fold(checked.engine, checked.start, standings)
        start, end = checked.start, checked.end
        # One snapshot for the count and the stream, and nothing can be written through it.
        async with (
            self.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            if await store.count_events(conn, tenant, start, end, self.limit + 1) > self.limit:
                raise too_many(self.limit)
            async for player, events in store.events_by_player(conn, tenant, start, end, CHUNK):
                fold.feed(player, events)
        return fold.finish()
