"""A player's profile: score, badges and progress in every campaign, and the campaign ranks."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

import asyncpg
import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

import badges
from gamify.boards import keys
from gamify.campaigns.compiled import EngineCache
from gamify.campaigns.store import OpenCampaign
from gamify.players import store


class BadgeHeld(msgspec.Struct):
    badge: str
    awarded_at: datetime


class BadgeProgress(msgspec.Struct):
    badge: str
    current: int
    target: int


class CampaignStanding(msgspec.Struct, omit_defaults=True):
    campaign: str
    score: int
    badges: list[BadgeHeld]
    progress: list[BadgeProgress]
    rank: int | None = None


class Profile(msgspec.Struct):
    player: str
    display_name: str | None
    campaigns: list[CampaignStanding]


async def profile(
    pool: asyncpg.Pool, redis: Redis, engines: EngineCache, tenant: str, player: str
) -> Profile | None:
    """The player's profile, or None for a player gamify never heard of."""
    async with pool.acquire() as conn:
        row = await store.get(conn, tenant, player)
        if row is None:
            return None
        standings = await store.of_player(conn, tenant, player)
        held = await store.held(conn, tenant, player, [s.campaign for s in standings])
    shown = _standings(engines, tenant, standings, held)
    return Profile(player, row.display_name, await _ranked(redis, tenant, player, shown))


def _standings(
    engines: EngineCache,
    tenant: str,
    rows: list[store.PlayerCampaign],
    held: list[store.HeldAward],
) -> list[CampaignStanding]:
    by_campaign: dict[str, list[BadgeHeld]] = defaultdict(list)
    for award in held:
        by_campaign[award.campaign].append(BadgeHeld(award.badge, award.awarded_at))
    standings = []
    for row in rows:
        opened = OpenCampaign(row.campaign, row.version, row.document, row.score_bits)
        compiled = engines.get(tenant, opened)
        state = badges.PlayerState.from_bytes(row.state) if row.state else None
        shown = [
            BadgeProgress(p.badge, p.current, p.target)
            for p in badges.progress(compiled.engine, state)
        ]
        standings.append(
            CampaignStanding(row.campaign, row.score, by_campaign[row.campaign], shown)
        )
    return standings


async def _ranked(
    redis: Redis, tenant: str, player: str, standings: list[CampaignStanding]
) -> list[CampaignStanding]:
    """With each campaign board's rank; a Redis outage leaves them out, not the profile."""
    if not standings:
        return standings
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for standing in standings:
                pipe.zrevrank(keys.board(tenant, standing.campaign), player)
            ranks: list[Any] = await pipe.execute()
    except RedisError:
        return standings
    return [
        msgspec.structs.replace(s, rank=r + 1 if r is not None else None)
        for s, r in zip(standings, ranks, strict=True)
    ]
