"""Players: names from the partner, profiles for the app, and player tokens."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post, put
from litestar.params import FromPath, JSONBody
from redis.exceptions import RedisError

import badges
from gamify import auth, tokens
from gamify.boards import keys
from gamify.problems import ApiError
from gamify.services import Services, services_of
from gamify.store import players, progress
from gamify.store.campaigns import OpenCampaign

PlayerId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class PlayerIn(msgspec.Struct, forbid_unknown_fields=True):
    display_name: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    metadata: dict[str, Any] = {}


class PlayerOut(msgspec.Struct):
    player: str
    display_name: str | None
    metadata: dict[str, Any]


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


def _not_found(player: str) -> ApiError:
    return ApiError(404, "Not Found", f"no player {player}")


class PlayerController(Controller):
    path = "/v1/players"
    tags = ["players"]

    @put(
        "/{player:str}",
        guards=[auth.requires("events:write")],
        summary="Set a player's display name and metadata (creates the player)",
    )
    async def put_player(
        self,
        request: Request[Any, auth.Principal, Any],
        player: FromPath[PlayerId],
        data: JSONBody[PlayerIn],
    ) -> PlayerOut:
        services = services_of(request)
        async with services.db.acquire() as conn:
            row = await players.upsert(
                conn, request.auth.tenant, player, data.display_name, data.metadata
            )
        services.names[(request.auth.tenant, player)] = row.display_name
        return PlayerOut(row.id, row.display_name, row.metadata)

    @get(
        "/{player:str}",
        guards=[auth.requires("read", player_tokens=True)],
        summary="A player's score, badges and progress in every campaign",
    )
    async def profile(
        self, request: Request[Any, auth.Principal, Any], player: FromPath[PlayerId]
    ) -> Profile:
        principal = request.auth
        if not principal.may_read_player(player):
            raise _not_found(player)  # another player's profile does not exist for a token
        services = services_of(request)
        async with services.db.acquire() as conn:
            row = await players.get(conn, principal.tenant, player)
            if row is None:
                raise _not_found(player)
            standings = await progress.of_player(conn, principal.tenant, player)
            held = await progress.held(
                conn, principal.tenant, player, [s.campaign for s in standings]
            )
        shown = _standings(services, principal.tenant, standings, held)
        return Profile(
            player, row.display_name, await _ranked(services, principal.tenant, player, shown)
        )

    @post(
        "/{player:str}/token",
        status_code=201,
        guards=[auth.requires("players:token")],
        summary="A short-lived token with which an app reads as this player",
    )
    async def token(
        self, request: Request[Any, auth.Principal, Any], player: FromPath[PlayerId]
    ) -> tokens.IssuedToken:
        secret = services_of(request).settings.secret
        assert secret is not None
        return tokens.issue(secret, request.auth.tenant, player, datetime.now(UTC))


def _standings(
    services: Services,
    tenant: str,
    rows: list[progress.PlayerCampaign],
    held: list[progress.HeldAward],
) -> list[CampaignStanding]:
    by_campaign: dict[str, list[BadgeHeld]] = defaultdict(list)
    for award in held:
        by_campaign[award.campaign].append(BadgeHeld(award.badge, award.awarded_at))
    standings = []
    for row in rows:
        compiled = services.engines.get(
            tenant, OpenCampaign(row.campaign, row.version, row.document)
        )
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
    services: Services, tenant: str, player: str, standings: list[CampaignStanding]
) -> list[CampaignStanding]:
    """With each campaign board's rank; a Redis outage leaves them out, not the profile."""
    if not standings:
        return standings
    try:
        async with services.redis.pipeline(transaction=False) as pipe:
            for standing in standings:
                pipe.zrevrank(keys.board(tenant, standing.campaign), player)
            ranks: list[Any] = await pipe.execute()
    except RedisError:
        return standings
    return [
        msgspec.structs.replace(s, rank=r + 1 if r is not None else None)
        for s, r in zip(standings, ranks, strict=True)
    ]
