"""Per (player, campaign) engine state, the awards it holds, and the outbox of what changed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from gamify.boards.updates import WindowRow
from gamify.db import Conn

# Batches travel as one JSON array each (see store.events). One statement creates the missing
# rows and locks all of them, walking the pairs in (campaign, player) order so that concurrent
# writers queue instead of deadlocking; the no-op DO UPDATE takes the lock on existing rows.
LOCK = """
INSERT INTO progress (tenant_id, campaign_id, player_id, state)
SELECT $1, p.campaign, p.player, '\\x'::bytea
FROM json_to_recordset($2::text::json) AS p (campaign text, player text)
ORDER BY p.campaign, p.player
ON CONFLICT (tenant_id, campaign_id, player_id) DO UPDATE SET state = progress.state
RETURNING campaign_id, player_id, state
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
    INSERT INTO progress AS p (tenant_id, campaign_id, player_id, state, score, reached_at)
    SELECT $1, s.campaign, s.player, decode(s.state, 'base64'), s.score, s.reached_at
    FROM json_to_recordset($2::text::json)
         AS s (campaign text, player text, state text, score bigint, reached_at timestamptz)
    ON CONFLICT (tenant_id, campaign_id, player_id) DO UPDATE
    SET state = EXCLUDED.state, score = EXCLUDED.score, reached_at = EXCLUDED.reached_at,
        updated_at = now()
), awarded AS (
    INSERT INTO awards AS a (tenant_id, campaign_id, player_id, badge_id, awarded_at,
                             first_awarded_at, points, event_id)
    SELECT $1, w.campaign, w.player, w.badge, w.awarded_at, w.first_awarded_at, w.points,
           w.event_id
    FROM json_to_recordset($3::text::json)
         AS w (campaign text, player text, badge text, awarded_at timestamptz,
               first_awarded_at timestamptz, points int, event_id text)
    ON CONFLICT (tenant_id, campaign_id, player_id, badge_id) DO UPDATE
    SET awarded_at = LEAST(a.awarded_at, EXCLUDED.awarded_at)
), queued AS (
    INSERT INTO outbox (tenant_id, kind, campaign_id, player_id, payload)
    SELECT $1, o.kind, o.campaign, o.player, o.payload
    FROM json_to_recordset($4::text::json)
         AS o (kind text, campaign text, player text, payload jsonb)
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


class Pair(msgspec.Struct, frozen=True, order=True):
    campaign: str
    player: str


class SavedProgress(msgspec.Struct, frozen=True):
    pair: Pair
    state: bytes
    score: int
    reached_at: datetime | None


class AwardRow(msgspec.Struct, frozen=True):
    pair: Pair
    badge: str
    awarded_at: datetime
    first_awarded_at: datetime
    points: int
    event_id: str


class OutboxRow(msgspec.Struct, frozen=True):
    kind: str
    pair: Pair
    payload: dict[str, Any]


def _utc(moment: datetime | None) -> datetime | None:
    # Postgres refuses offsets beyond ±15:59, which ISO 8601 (and so an event) allows.
    return moment.astimezone(UTC) if moment is not None else None


def _json(rows: list[Any]) -> str:
    return msgspec.json.encode(rows).decode()


async def lock(conn: Conn, tenant: str, pairs: list[Pair]) -> dict[Pair, bytes]:
    """Lock the progress rows of `pairs` (creating missing ones); returns their states."""
    ordered = [{"campaign": p.campaign, "player": p.player} for p in sorted(set(pairs))]
    rows = await conn.fetch(LOCK, tenant, _json(ordered))
    return {Pair(r["campaign_id"], r["player_id"]): bytes(r["state"]) for r in rows}


async def write(
    conn: Conn,
    tenant: str,
    saved: list[SavedProgress],
    awards: list[AwardRow],
    outbox: list[OutboxRow],
    windows: list[WindowRow],
) -> None:
    """States and scores, awards, outbox rows and window scores of one folded batch."""
    if not (saved or awards or outbox or windows):
        return
    await conn.execute(
        WRITE,
        tenant,
        _json([_saved_row(s) for s in saved]),
        _json([_award_row(a) for a in awards]),
        _json([_outbox_row(r) for r in outbox]),
        _json([_window_row(r) for r in windows]),
    )


def _saved_row(s: SavedProgress) -> dict[str, Any]:
    return {
        "campaign": s.pair.campaign,
        "player": s.pair.player,
        "state": s.state,
        "score": s.score,
        "reached_at": _utc(s.reached_at),
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


PROFILE = """
SELECT p.campaign_id, p.state, p.score, c.version, c.document
FROM progress p JOIN campaigns c ON c.tenant_id = p.tenant_id AND c.id = p.campaign_id
WHERE p.tenant_id = $1 AND p.player_id = $2
ORDER BY p.campaign_id
"""
# By campaign as well: the primary key leads (tenant, campaign, player), and without the
# campaign a server older than PostgreSQL 18 (no skip scans) reads every award of the tenant.
HELD = """
SELECT campaign_id, badge_id, awarded_at FROM awards
WHERE tenant_id = $1 AND campaign_id = ANY($3::text[]) AND player_id = $2
ORDER BY campaign_id, awarded_at, badge_id
"""


class PlayerCampaign(msgspec.Struct, frozen=True):
    campaign: str
    version: int
    document: dict[str, Any]
    state: bytes
    score: int


class HeldAward(msgspec.Struct, frozen=True):
    campaign: str
    badge: str
    awarded_at: datetime


async def of_player(conn: Conn, tenant: str, player: str) -> list[PlayerCampaign]:
    rows = await conn.fetch(PROFILE, tenant, player)
    return [
        PlayerCampaign(r["campaign_id"], r["version"], r["document"], bytes(r["state"]), r["score"])
        for r in rows
    ]


async def held(conn: Conn, tenant: str, player: str, campaigns: list[str]) -> list[HeldAward]:
    """The badges `player` holds in `campaigns`."""
    rows = await conn.fetch(HELD, tenant, player, campaigns)
    return [HeldAward(r["campaign_id"], r["badge_id"], r["awarded_at"]) for r in rows]
