"""HTTP: players: names from the partner, profiles for the app, and player tokens."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post, put

from gamify.boards.controller import PlayerId
from gamify.boards.names import DisplayNames
from gamify.campaigns.compiled import EngineCache
from gamify.platform.container import container_of
from gamify.platform.decoding import decoded
from gamify.platform.openapi import ProblemOperation, body_operation
from gamify.platform.problems import ApiError
from gamify.players import store
from gamify.players.profiles import Profile, profile
from gamify.tenants import tokens
from gamify.tenants.guards import Principal, requires


class PlayerIn(msgspec.Struct, forbid_unknown_fields=True):
    display_name: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    metadata: dict[str, Any] = {}


class PlayerOut(msgspec.Struct):
    player: str
    display_name: str | None
    metadata: dict[str, Any]


def _not_found(player: str) -> ApiError:
    return ApiError(404, "Not Found", f"no player {player}")


class PlayerController(Controller):
    path = "/v1/players"
    tags = ["players"]

    @put(
        "/{player:str}",
        guards=[requires("events:write")],
        summary="Set a player's display name and metadata (creates the player)",
        operation_class=body_operation(PlayerIn),
    )
    async def put_player(
        self, request: Request[Any, Principal, Any], player: PlayerId
    ) -> PlayerOut:
        data = decoded(await request.body(), PlayerIn)
        container = container_of(request)
        tenant = request.auth.tenant
        async with container.db.acquire() as conn:
            row = await store.upsert(conn, tenant, player, data.display_name, data.metadata)
        container.get(DisplayNames).remember(tenant, player, row.display_name)
        return PlayerOut(row.id, row.display_name, row.metadata)

    @get(
        "/{player:str}",
        guards=[requires("read", player_tokens=True)],
        summary="A player's score, badges and progress in every campaign",
        operation_class=ProblemOperation,
    )
    async def profile(self, request: Request[Any, Principal, Any], player: PlayerId) -> Profile:
        principal = request.auth
        if not principal.may_read_player(player):
            raise _not_found(player)  # another player's profile does not exist for a token
        container = container_of(request)
        found = await profile(
            container.db, container.redis, container.get(EngineCache), principal.tenant, player
        )
        if found is None:
            raise _not_found(player)
        return found

    @post(
        "/{player:str}/token",
        status_code=201,
        guards=[requires("players:token")],
        summary="A short-lived token with which an app reads as this player",
        operation_class=ProblemOperation,
    )
    async def token(
        self, request: Request[Any, Principal, Any], player: PlayerId
    ) -> tokens.IssuedToken:
        secret = container_of(request).secret
        return tokens.issue(secret, request.auth.tenant, player, datetime.now(UTC))
