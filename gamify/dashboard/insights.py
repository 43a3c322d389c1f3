"""What the campaign pages chart: the badges the players on a board hold, the badge funnel over
time and participation, read from Postgres (awards, progress, events) and shaped here.

Days are the campaign's local days, as the engine and the window boards count them
(`campaigns.windows.period_of`): the SQL buckets rows by each day's first instant, which
Python's zoneinfo computes, so a 23- or 25-hour day is one day like any other.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import asyncpg
import msgspec

from gamify.campaigns import store as campaigns
from gamify.campaigns.changes import not_found
from gamify.campaigns.windows import period_of
from gamify.dashboard import store
from gamify.platform.db import Conn

MAX_PLAYERS = 100  # as many as a leaderboard snapshot holds
MAX_DAYS = 366
# A player id as the award endpoint takes it (events/wire.py): another can hold no badge.
MAX_PLAYER_ID = 128


class HeldBadge(msgspec.Struct):
    badge: str
    awarded_at: datetime


class PlayerBadges(msgspec.Struct):
    player: str
    badges: Annotated[list[HeldBadge], msgspec.Meta(description="held, oldest first")]


class BadgesHeld(msgspec.Struct):
    campaign: str
    players: Annotated[
        list[PlayerBadges], msgspec.Meta(description="each player asked for once, in that order")
    ]


class FunnelDay(msgspec.Struct):
    day: date
    awarded: int  # players awarded the badge that local day
    holders: int  # players holding it at the end of that day


class FunnelBadge(msgspec.Struct):
    badge: str
    name: str
    points: int
    holders: int
    days: Annotated[
        list[FunnelDay], msgspec.Meta(description="the local days it was awarded on, in order")
    ]


class Funnel(msgspec.Struct):
    campaign: str
    timezone: str
    participants: Annotated[
        int, msgspec.Meta(description="players with an event in the campaign's period")
    ]
    badges: Annotated[list[FunnelBadge], msgspec.Meta(description="in the campaign's order")]


class ActiveDay(msgspec.Struct):
    day: date
    players: int  # players with at least one event that local day
    events: int


class Participation(msgspec.Struct):
    campaign: str
    timezone: str
    days: Annotated[
        list[ActiveDay],
        msgspec.Meta(description="every local day of the period, oldest first, idle ones too"),
    ]


async def badges_held(
    pool: asyncpg.Pool, tenant: str, campaign_id: str, players: list[str]
) -> BadgesHeld:
    """The badges each player holds in the campaign; 404 for a campaign the tenant lacks."""
    asked = list(dict.fromkeys(players))
    # Postgres text cannot hold U+0000, and no stored player has such an id or a longer one.
    possible = [p for p in asked if "\x00" not in p and len(p) <= MAX_PLAYER_ID]
    async with pool.acquire() as conn:
        await _campaign(conn, tenant, campaign_id)
        held = await store.held_badges(conn, tenant, campaign_id, possible)
    return BadgesHeld(
        campaign_id,
        [PlayerBadges(p, [HeldBadge(badge, at) for badge, at in held.get(p, [])]) for p in asked],
    )


async def funnel(pool: asyncpg.Pool, tenant: str, campaign_id: str) -> Funnel:
    async with pool.acquire() as conn:
        row = await _campaign(conn, tenant, campaign_id)
        zone = ZoneInfo(row.document["timezone"])
        days = local_days(period_of("daily", row.starts_at, zone), _last_day(row, zone))
        awarded = await store.awards_by_day(conn, tenant, campaign_id, day_starts(days, zone))
        participants = await store.participants(conn, tenant, campaign_id)
    badges = funnel_badges(row.document["badges"], days, awarded)
    return Funnel(campaign_id, zone.key, participants, badges)


def funnel_badges(
    badges: list[dict[str, Any]], days: list[date], awarded: list[tuple[str, int, int]]
) -> list[FunnelBadge]:
    """Each badge, as the campaign document lists them, with its awards per day (`awarded`:
    badge, index into `days`, count) summed up into holders."""
    by_badge: dict[str, dict[int, int]] = defaultdict(dict)
    for badge_id, day, count in awarded:
        by_badge[badge_id][day] = count
    shaped = []
    for badge in badges:
        holders, per_day = 0, []
        for day, count in sorted(by_badge[badge["id"]].items()):
            holders += count
            per_day.append(FunnelDay(days[day], count, holders))
        shaped.append(
            FunnelBadge(badge["id"], badge["name"], badge.get("points", 0), holders, per_day)
        )
    return shaped


async def participation(
    pool: asyncpg.Pool, tenant: str, campaign_id: str, days: int, now: datetime
) -> Participation:
    """Active players on each of the campaign's last `days` local days up to today (or up to
    its last day, once it closed)."""
    async with pool.acquire() as conn:
        row = await _campaign(conn, tenant, campaign_id)
        zone = ZoneInfo(row.document["timezone"])
        last = min(period_of("daily", now, zone), _last_day(row, zone))
        first = max(period_of("daily", row.starts_at, zone), last - timedelta(days=days - 1))
        period = local_days(first, last)
        active = (
            await store.active_by_day(
                conn, tenant, row.starts_at, row.closes_at, day_starts(period, zone)
            )
            if period
            else {}
        )
    return Participation(
        campaign_id,
        zone.key,
        [ActiveDay(day, *active.get(i, (0, 0))) for i, day in enumerate(period)],
    )


def local_days(first: date, last: date) -> list[date]:
    """Every day from first to last, both included (none when last is before first)."""
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def day_starts(days: list[date], zone: ZoneInfo) -> list[datetime]:
    """The first instant of each day, and the end of the last one.

    A midnight that a clock change skips is read with the offset before the change, which
    makes it the change's own instant: the first of that day, as `period_of` dates it."""
    if not days:
        return []
    bounds = [*days, days[-1] + timedelta(days=1)]
    return [datetime.combine(day, time(), zone).astimezone(UTC) for day in bounds]


def _last_day(row: campaigns.CampaignRow, zone: ZoneInfo) -> date:
    return period_of("daily", row.closes_at, zone)


async def _campaign(conn: Conn, tenant: str, campaign_id: str) -> campaigns.CampaignRow:
    row = await campaigns.get(conn, tenant, campaign_id)
    if row is None:
        raise not_found(campaign_id)
    return row
