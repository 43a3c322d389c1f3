"""The write path's SQL: events stored once per (tenant, id), and per (campaign, player) the
engine state, the awards it holds, the window scores and the outbox of what changed.

A replay is answered from what the first arrival earned (STORED).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from badges import storage
from gamify.boards.updates import WindowRow
from gamify.campaigns.store import TENANT_GUARD
from gamify.platform.db import Conn

# A batch travels as one JSON array: Postgres parses it far faster than asyncpg encodes a
# dozen parallel arrays element by element. New players first, then the events; both sorted,
# so that two requests carrying the same ids wait on each other instead of deadlocking. The
# tenant's campaign guard is taken shared first (see campaigns.store.TENANT_GUARD): the open
# campaigns are read by a later statement of the transaction, which sees every campaign
# committed before the guard was granted.
INSERT = f"""
WITH guard AS MATERIALIZED (
    SELECT pg_advisory_xact_lock_shared({TENANT_GUARD})
), input AS (
    SELECT * FROM json_to_recordset($2::text::json)
        AS e (id text, player text, type text, occurred_at timestamptz, attributes jsonb,
              hash text)
), new_players AS (
    INSERT INTO players (tenant_id, id)
    SELECT $1, player FROM input GROUP BY player ORDER BY player
    ON CONFLICT (tenant_id, id) DO NOTHING
)
INSERT INTO events (tenant_id, id, player_id, type, occurred_at, attributes, payload_hash)
SELECT $1, id, player, type, occurred_at, attributes, decode(hash, 'base64')
FROM input CROSS JOIN guard ORDER BY id
ON CONFLICT (tenant_id, id) DO NOTHING
RETURNING id
"""
STORED = """
SELECT e.id, e.payload_hash,
       coalesce(jsonb_agg(jsonb_build_object('campaign', a.campaign_id, 'badge', a.badge_id,
                                             'awarded_at', a.first_awarded_at)
                          ORDER BY a.campaign_id, a.first_awarded_at, a.badge_id)
                FILTER (WHERE a.badge_id IS NOT NULL), '[]') AS awards
FROM events e
-- What the first arrival answered: not what a backfill credited to the event later.
LEFT JOIN awards a ON a.tenant_id = e.tenant_id AND a.event_id = e.id AND NOT a.by_backfill
WHERE e.tenant_id = $1 AND e.id = ANY($2::text[])
GROUP BY e.id, e.payload_hash
"""
# Batches travel as one JSON array each (see INSERT). The progress rows of a batch's pairs are
# locked, and their heads read, walking the pairs in (campaign, player) order so that
# concurrent writers queue instead of deadlocking (LATERAL: each row is found through the
# primary key, and locked in that order). Rows still missing are then created, locked by
# their insert; one another writer created meanwhile is locked by a last HEADS of its own,
# whose snapshot sees it. A conflict among three writers over new rows can still deadlock:
# Postgres detects it, and the coalescer retries.
HEADS = """
SELECT p.campaign_id, p.player_id, p.state, p.version, p.windows
FROM json_to_recordset($2::text::json) AS k (campaign text, player text)
CROSS JOIN LATERAL (
    SELECT * FROM progress p
    WHERE p.tenant_id = $1 AND p.campaign_id = k.campaign AND p.player_id = k.player
    FOR UPDATE
) p
"""
CREATE = """
INSERT INTO progress (tenant_id, campaign_id, player_id, state)
SELECT $1, p.campaign, p.player, '\\x'::bytea
FROM json_to_recordset($2::text::json) AS p (campaign text, player text)
ORDER BY p.campaign, p.player
ON CONFLICT (tenant_id, campaign_id, player_id) DO NOTHING
RETURNING campaign_id, player_id
"""
# The history segments a fold needs (see badges.storage.Wanted): per pair, oldest first, all
# of them or as many as hold the facts asked for.
SEGMENTS = """
SELECT campaign_id, player_id, facts FROM (
    SELECT s.campaign_id, s.player_id, s.newest_t, s.newest_id, s.facts, w.facts AS wanted,
           sum(s.count) OVER (PARTITION BY s.campaign_id, s.player_id
                              ORDER BY s.newest_t, s.newest_id) - s.count AS before
    FROM json_to_recordset($2::text::json) AS w (campaign text, player text, facts bigint)
    CROSS JOIN LATERAL (
        SELECT * FROM progress_segments s
        WHERE s.tenant_id = $1 AND s.campaign_id = w.campaign AND s.player_id = w.player
    ) s
) found
WHERE wanted IS NULL OR before < wanted
ORDER BY campaign_id, player_id, newest_t, newest_id
"""
# The checkpoint parts a fold needs (see badges.storage.Stored): chunk -1 is its body, read by
# compaction and late events; 0 on its ledger, read by late events and merges (`all`).
CHECKPOINTS = """
SELECT l.campaign_id, l.player_id, l.chunk, l.buckets
FROM json_to_recordset($2::text::json) AS w (campaign text, player text, "all" boolean)
CROSS JOIN LATERAL (
    SELECT * FROM progress_ledgers l
    WHERE l.tenant_id = $1 AND l.campaign_id = w.campaign AND l.player_id = w.player
      AND (w.all OR l.chunk = -1)
) l
ORDER BY l.campaign_id, l.player_id, l.chunk
"""
# Everything a folded batch writes, in one statement (one round trip instead of four); each
# part travels as its own JSON array.
# - progress: an upsert rather than UPDATE ... FROM, so that each row is found through the
#   primary key: the planner guesses 100 rows for a JSON array and would hash-join it against a
#   sequential scan of the whole table.
# - awards: a moved award keeps its row and takes the earlier time; the primary key makes a
#   second award of the same badge impossible whatever the code above it does.
# - window_scores: absolute, the rows a rebuild of the window boards reads.
WRITE = """
WITH saved AS (
    INSERT INTO progress AS p (tenant_id, campaign_id, player_id, state, score, reached_at,
                               version, windows)
    SELECT $1, s.campaign, s.player, decode(s.state, 'base64'), s.score, s.reached_at, s.version,
           decode(s.windows, 'base64')
    FROM json_to_recordset($2::text::json)
         AS s (campaign text, player text, state text, score bigint, reached_at timestamptz,
               version bigint, windows text)
    ON CONFLICT (tenant_id, campaign_id, player_id) DO UPDATE
    SET state = EXCLUDED.state, score = EXCLUDED.score, reached_at = EXCLUDED.reached_at,
        version = EXCLUDED.version, windows = EXCLUDED.windows, updated_at = now()
), sealed AS (
    -- New segments, and those a late event or a compaction changed (same key: newest fact).
    INSERT INTO progress_segments AS g (tenant_id, campaign_id, player_id, newest_t, newest_id,
                                        count, facts)
    SELECT $1, g.campaign, g.player, g.newest_t, g.newest_id, g.count, decode(g.facts, 'base64')
    FROM json_to_recordset($7::text::json)
         AS g (campaign text, player text, newest_t bigint, newest_id text, count int,
               facts text)
    ON CONFLICT (tenant_id, campaign_id, player_id, newest_t, newest_id) DO UPDATE
    SET count = EXCLUDED.count, facts = EXCLUDED.facts
), cut AS (
    -- A ledger written again whole: its chunks from `first` on go.
    DELETE FROM progress_ledgers l
    USING json_to_recordset($10::text::json) AS c (campaign text, player text, first int)
    WHERE l.tenant_id = $1 AND l.campaign_id = c.campaign AND l.player_id = c.player
      AND l.chunk >= c.first
), ledgered AS (
    INSERT INTO progress_ledgers AS l (tenant_id, campaign_id, player_id, chunk, buckets)
    SELECT $1, n.campaign, n.player, n.chunk, decode(n.buckets, 'base64')
    FROM json_to_recordset($9::text::json)
         AS n (campaign text, player text, chunk int, buckets text)
    ON CONFLICT (tenant_id, campaign_id, player_id, chunk) DO UPDATE
    SET buckets = EXCLUDED.buckets
), forgotten AS (
    -- Segments folded whole into the checkpoint.
    DELETE FROM progress_segments g
    WHERE (g.tenant_id, g.campaign_id, g.player_id, g.newest_t, g.newest_id) IN (
        SELECT $1, d.campaign, d.player, d.newest_t, d.newest_id
        FROM json_to_recordset($8::text::json)
             AS d (campaign text, player text, newest_t bigint, newest_id text)
    )
), awarded AS (
    INSERT INTO awards AS a (tenant_id, campaign_id, player_id, badge_id, awarded_at,
                             first_awarded_at, points, event_id, by_backfill)
    SELECT $1, w.campaign, w.player, w.badge, w.awarded_at, w.first_awarded_at, w.points,
           w.event_id, w.by_backfill
    FROM json_to_recordset($3::text::json)
         AS w (campaign text, player text, badge text, awarded_at timestamptz,
               first_awarded_at timestamptz, points int, event_id text, by_backfill boolean)
    ON CONFLICT (tenant_id, campaign_id, player_id, badge_id) DO UPDATE
    SET awarded_at = LEAST(a.awarded_at, EXCLUDED.awarded_at)
), queued AS (
    INSERT INTO outbox (tenant_id, kind, campaign_id, player_id, payload)
    SELECT $1, o.kind, o.campaign, o.player, o.payload
    FROM json_to_recordset($4::text::json)
         AS o (kind text, campaign text, player text, payload jsonb)
), rewarded AS (
    -- A badge's reward, owed once: the unique (tenant, campaign, player, reason) keeps a
    -- badge awarded again (it never is) or a replay from owing it twice.
    INSERT INTO payouts (id, tenant_id, campaign_id, player_id, reason, amount, unit)
    SELECT r.id, $1, r.campaign, r.player, r.reason, r.amount, r.unit
    FROM json_to_recordset($6::text::json)
         AS r (id text, campaign text, player text, reason text, amount bigint, unit text)
    ON CONFLICT DO NOTHING
)
INSERT INTO window_scores AS ws (tenant_id, campaign_id, board, period, player_id, score,
                                 reached_at)
SELECT $1, w.campaign, w.board, w.period, w.player, w.score, w.reached_at
FROM json_to_recordset($5::text::json)
     AS w (campaign text, board text, period date, player text, score bigint,
           reached_at timestamptz)
ON CONFLICT (tenant_id, campaign_id, board, period, player_id) DO UPDATE
SET score = EXCLUDED.score, reached_at = EXCLUDED.reached_at, updated_at = now()
"""

# The backfill (events.backfill): what a campaign still owes is in its row.
PENDING_BACKFILLS = """
SELECT tenant_id, id FROM campaigns WHERE backfill_pending ORDER BY tenant_id, id
"""
CLAIM_BACKFILL = """
SELECT coalesce(backfill_after, '') AS after FROM campaigns
WHERE tenant_id = $1 AND id = $2 AND backfill_pending
FOR UPDATE
"""
PLAYERS_BETWEEN = """
SELECT DISTINCT player_id FROM events
WHERE tenant_id = $1 AND occurred_at BETWEEN $2 AND $3 AND player_id > $4
ORDER BY player_id
LIMIT $5
"""
EVENTS_OF = """
SELECT id, player_id, type, occurred_at, attributes FROM events
WHERE tenant_id = $1 AND player_id = ANY($2::text[]) AND occurred_at BETWEEN $3 AND $4
ORDER BY occurred_at, id
"""
ADVANCE_BACKFILL = "UPDATE campaigns SET backfill_after = $3 WHERE tenant_id = $1 AND id = $2"
FINISH_BACKFILL = """
UPDATE campaigns SET backfill_pending = false, backfill_after = NULL
WHERE tenant_id = $1 AND id = $2
"""


class NewEvent(msgspec.Struct, frozen=True):
    id: str
    player: str
    type: str
    occurred_at: datetime
    attributes: dict[str, Any]
    hash: bytes


class ReportedEvent(msgspec.Struct, frozen=True):
    id: str
    player: str
    type: str
    occurred_at: datetime
    attributes: dict[str, Any]


class StoredEvent(msgspec.Struct, frozen=True):
    id: str
    payload_hash: bytes
    awards: list[dict[str, Any]]


async def insert(conn: Conn, tenant: str, events: list[NewEvent]) -> set[str]:
    """Insert what is new (and its new players); returns the ids this call inserted."""
    rows = await conn.fetch(INSERT, tenant, msgspec.json.encode(events).decode())
    return {row["id"] for row in rows}


async def stored(conn: Conn, tenant: str, ids: list[str]) -> dict[str, StoredEvent]:
    """Events already stored, with the awards their own arrival granted."""
    rows = await conn.fetch(STORED, tenant, ids)
    return {r["id"]: StoredEvent(r["id"], bytes(r["payload_hash"]), r["awards"]) for r in rows}


class Pair(msgspec.Struct, frozen=True, order=True):
    campaign: str
    player: str


class Locked(msgspec.Struct, frozen=True):
    state: bytes  # the engine state's head (see badges.storage); empty for a new row
    version: int  # moved by every write of the row (see migrations/0005)
    windows: bytes | None  # see events.window_heads


class SavedProgress(msgspec.Struct, frozen=True):
    pair: Pair
    state: bytes
    score: int
    reached_at: datetime | None
    version: int
    windows: bytes | None


class SegmentRow(msgspec.Struct, frozen=True):
    campaign: str
    player: str
    newest_t: int  # the segment's key: its newest fact (see badges.storage)
    newest_id: str
    count: int
    facts: bytes


class SegmentKey(msgspec.Struct, frozen=True):
    campaign: str
    player: str
    newest_t: int
    newest_id: str


class LedgerChunk(msgspec.Struct, frozen=True):
    campaign: str
    player: str
    chunk: int
    buckets: bytes


class LedgerCut(msgspec.Struct, frozen=True):
    campaign: str
    player: str
    first: int


class History(msgspec.Struct):
    """What a fold fetched of a pair's stored history."""

    segments: list[bytes]
    ledger: list[bytes]
    body: bytes | None = None  # the checkpoint's accumulators and awards


class AwardRow(msgspec.Struct, frozen=True):
    pair: Pair
    badge: str
    awarded_at: datetime
    first_awarded_at: datetime
    points: int
    event_id: str
    by_backfill: bool  # credited by a backfill, after the event's own arrival


class RewardRow(msgspec.Struct, frozen=True):
    """A credit a badge's `reward` owes, for the payouts dispatcher to deliver."""

    id: str
    campaign: str
    player: str
    reason: str
    amount: int
    unit: str


class OutboxRow(msgspec.Struct, frozen=True):
    kind: str
    pair: Pair
    payload: dict[str, Any]


def _utc(moment: datetime | None) -> datetime | None:
    # Postgres refuses offsets beyond ±15:59, which ISO 8601 (and so an event) allows.
    return moment.astimezone(UTC) if moment is not None else None


def _json(rows: list[Any]) -> str:
    return msgspec.json.encode(rows).decode()


async def lock(conn: Conn, tenant: str, pairs: list[Pair]) -> dict[Pair, Locked]:
    """Lock the progress rows of `pairs` (creating missing ones); returns their heads."""
    ordered = sorted(set(pairs))
    locked = await _heads(conn, tenant, ordered)
    missing = [pair for pair in ordered if pair not in locked]
    if missing:
        rows = await conn.fetch(CREATE, tenant, _pairs_json(missing))
        for r in rows:
            locked[Pair(r["campaign_id"], r["player_id"])] = Locked(b"", 0, None)
        raced = [pair for pair in missing if pair not in locked]
        if raced:
            locked |= await _heads(conn, tenant, raced)
    return locked


async def _heads(conn: Conn, tenant: str, pairs: list[Pair]) -> dict[Pair, Locked]:
    rows = await conn.fetch(HEADS, tenant, _pairs_json(pairs))
    return {
        Pair(r["campaign_id"], r["player_id"]): Locked(
            bytes(r["state"]), r["version"], None if r["windows"] is None else bytes(r["windows"])
        )
        for r in rows
    }


def _pairs_json(pairs: list[Pair]) -> str:
    return _json([{"campaign": p.campaign, "player": p.player} for p in pairs])


async def history(
    conn: Conn, tenant: str, wanted: dict[Pair, storage.Wanted]
) -> dict[Pair, History]:
    """The history segments each pair wants, oldest first, its checkpoint's body, and when it
    wants them, its ledger's chunks in order."""
    asked = [
        {"campaign": p.campaign, "player": p.player, "facts": w.facts} for p, w in wanted.items()
    ]
    found = {pair: History([], []) for pair in wanted}
    for r in await conn.fetch(SEGMENTS, tenant, _json(asked)):
        found[Pair(r["campaign_id"], r["player_id"])].segments.append(bytes(r["facts"]))
    parts = [
        {"campaign": p.campaign, "player": p.player, "all": w.with_ledger}
        for p, w in wanted.items()
    ]
    for r in await conn.fetch(CHECKPOINTS, tenant, _json(parts)):
        history = found[Pair(r["campaign_id"], r["player_id"])]
        if r["chunk"] < 0:
            history.body = bytes(r["buckets"])
        else:
            history.ledger.append(bytes(r["buckets"]))
    return found


async def write(
    conn: Conn,
    tenant: str,
    saved: list[SavedProgress],
    awards: list[AwardRow],
    outbox: list[OutboxRow],
    windows: list[WindowRow],
    rewards: list[RewardRow],
    written: list[SegmentRow],
    deleted: list[SegmentKey],
    ledgers: list[LedgerChunk],
    cuts: list[LedgerCut],
) -> None:
    """States and scores, awards, outbox rows, window scores, reward credits and history
    segments of one folded batch."""
    if not (saved or awards or outbox or windows):
        return
    await conn.execute(
        WRITE,
        tenant,
        _json([_saved_row(s) for s in saved]),
        _json([_award_row(a) for a in awards]),
        _json([_outbox_row(r) for r in outbox]),
        _json([_window_row(r) for r in windows]),
        _json(rewards),
        _json(written),
        _json(deleted),
        _json(ledgers),
        _json(cuts),
    )


def _saved_row(s: SavedProgress) -> dict[str, Any]:
    return {
        "campaign": s.pair.campaign,
        "player": s.pair.player,
        "state": s.state,
        "score": s.score,
        "reached_at": _utc(s.reached_at),
        "version": s.version,
        "windows": s.windows,
    }


def _award_row(a: AwardRow) -> dict[str, Any]:
    return {
        "campaign": a.pair.campaign,
        "player": a.pair.player,
        "badge": a.badge,
        "awarded_at": _utc(a.awarded_at),
        "first_awarded_at": _utc(a.first_awarded_at),
        "points": a.points,
        "event_id": a.event_id,
        "by_backfill": a.by_backfill,
    }


def _outbox_row(r: OutboxRow) -> dict[str, Any]:
    return {
        "kind": r.kind,
        "campaign": r.pair.campaign,
        "player": r.pair.player,
        "payload": r.payload,
    }


def _window_row(r: WindowRow) -> dict[str, Any]:
    return {
        "campaign": r.campaign,
        "board": r.board,
        "period": r.period,
        "player": r.player,
        "score": r.score,
        "reached_at": _utc(r.reached_at),
    }


async def pending_backfills(conn: Conn) -> list[tuple[str, str]]:
    """Every (tenant, campaign) that still owes a backfill."""
    return [(r["tenant_id"], r["id"]) for r in await conn.fetch(PENDING_BACKFILLS)]


async def claim_backfill(conn: Conn, tenant: str, campaign: str) -> str | None:
    """Lock the campaign's backfill mark: the last player folded ('' for none yet), or None
    when nothing is owed."""
    after: str | None = await conn.fetchval(CLAIM_BACKFILL, tenant, campaign)
    return after


async def players_between(
    conn: Conn, tenant: str, start: datetime, end: datetime, after: str, limit: int
) -> list[str]:
    """The next players after `after` with events in [start, end], in id order."""
    rows = await conn.fetch(PLAYERS_BETWEEN, tenant, start, end, after, limit)
    return [r["player_id"] for r in rows]


async def events_of(
    conn: Conn, tenant: str, players: list[str], start: datetime, end: datetime
) -> list[ReportedEvent]:
    """The stored events of `players` in [start, end], in time order."""
    rows = await conn.fetch(EVENTS_OF, tenant, players, start, end)
    return [
        ReportedEvent(r["id"], r["player_id"], r["type"], r["occurred_at"], r["attributes"])
        for r in rows
    ]


async def advance_backfill(conn: Conn, tenant: str, campaign: str, last_player: str) -> None:
    await conn.execute(ADVANCE_BACKFILL, tenant, campaign, last_player)


async def finish_backfill(conn: Conn, tenant: str, campaign: str) -> None:
    await conn.execute(FINISH_BACKFILL, tenant, campaign)
