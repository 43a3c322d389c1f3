"""Leaderboards: the top of a board page by page, and where one player stands."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from typing import Annotated, Any, TypeVar

import msgspec
from litestar import Controller, Request, get
from litestar.params import FromPath, Parameter

from gamify import auth
from gamify.boards import keys, reader
from gamify.boards.windows import period_of, valid_period
from gamify.engines import CompiledCampaign
from gamify.problems import ApiError, FieldProblem, invalid
from gamify.services import Services, services_of
from gamify.store import players

T = TypeVar("T")
BoardName = Annotated[
    str, Parameter(description="`campaign`, or a window the campaign names (`daily`, `weekly`)")
]
Period = Annotated[
    date | None,
    Parameter(
        description="a window's first local day (a Monday for weekly); default: the current one"
    ),
]


class Board(msgspec.Struct):
    board: str
    total: int
    entries: list[reader.Entry]
    next: str | None
    period: date | None = None


class Standing(msgspec.Struct):
    rank: int
    score: int
    total: int
    percentile: float
    around: list[reader.Entry]


class LeaderboardController(Controller):
    path = "/v1/campaigns/{campaign_id:str}/leaderboard"
    tags = ["leaderboards"]
    guards = [auth.requires("read", player_tokens=True)]

    @get("/", summary="A board, best first; `next` is a stable cursor for the following page")
    async def board(
        self,
        request: Request[Any, auth.Principal, Any],
        campaign_id: FromPath[str],
        board: BoardName = "campaign",
        period: Period = None,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 100,
        after: Annotated[str | None, Parameter(description="`next` of the previous page")] = None,
    ) -> Board:
        services = services_of(request)
        tenant = request.auth.tenant
        compiled, key, window = await _board(services, tenant, campaign_id, board, period)
        cached: Board | None = services.top_pages.get(key, {}).get(limit)
        if after is None and cached is not None:
            return cached
        ready_key = keys.ready(tenant, campaign_id)
        names = _names(services, tenant)
        try:
            found = await _when_ready(
                services,
                tenant,
                campaign_id,
                lambda: reader.page(
                    services.redis, key, ready_key, compiled.bits, limit, after, names
                ),
            )
        except reader.BadCursor as exc:
            raise invalid([FieldProblem("after", str(exc))]) from None
        shown = Board(board, found.total, found.entries, found.next, window)
        if after is None:
            services.top_pages.setdefault(key, {})[limit] = shown
        return shown

    @get("/players/{player:str}", summary="A player's rank, score, percentile and neighbours")
    async def player(
        self,
        request: Request[Any, auth.Principal, Any],
        campaign_id: FromPath[str],
        player: FromPath[str],
        board: BoardName = "campaign",
        period: Period = None,
        around: Annotated[int, Parameter(ge=0, le=50)] = 5,
    ) -> Standing:
        services = services_of(request)
        tenant = request.auth.tenant
        compiled, key, _ = await _board(services, tenant, campaign_id, board, period)
        ready_key = keys.ready(tenant, campaign_id)
        names = _names(services, tenant)
        found = await _when_ready(
            services,
            tenant,
            campaign_id,
            lambda: reader.around(
                services.reads, key, ready_key, compiled.bits, player, around, names
            ),
        )
        if found is None:
            raise ApiError(404, "Not Found", f"{player} has no score on this board")
        return Standing(found.rank, found.score, found.total, found.percentile, found.around)


async def _board(
    services: Services, tenant: str, campaign_id: str, board: str, period: date | None
) -> tuple[CompiledCampaign, str, date | None]:
    compiled = await services.boards.compiled(tenant, campaign_id)
    if compiled is None:
        raise ApiError(404, "Not Found", f"no campaign {campaign_id}")
    if board != "campaign" and board not in compiled.windows:
        named = ", ".join(["campaign", *compiled.windows])
        raise invalid([FieldProblem("board", f"this campaign's boards are {named}")])
    window: date | None = None
    if board != "campaign":
        window = period or period_of(board, datetime.now(UTC), compiled.zone)
        if not valid_period(board, window):
            raise invalid([FieldProblem("period", "a weekly period starts on a Monday")])
    elif period is not None:
        raise invalid([FieldProblem("period", "the campaign board has no periods")])
    return compiled, keys.board(tenant, campaign_id, board, window), window


async def _when_ready(
    services: Services, tenant: str, campaign_id: str, read: Callable[[], Awaitable[T]]
) -> T:
    """`read()`, and if the boards turn out not to be built, again once they are."""
    try:
        return await read()
    except reader.NotReady:
        await _wait_ready(services, tenant, campaign_id)
        return await read()


async def _wait_ready(services: Services, tenant: str, campaign_id: str) -> None:
    if not await services.boards.ensure_ready(tenant, campaign_id):
        raise ApiError(
            503,
            "Service Unavailable",
            "this board is being rebuilt; retry shortly",
            headers={"Retry-After": "1"},
        )


_UNKNOWN: Any = object()


def _names(services: Services, tenant: str) -> reader.Names:
    """Display names, from a short-lived per-instance cache: the top of a board is asked
    for again and again (see NAMES_TTL for how soon a rename shows)."""
    cache = services.names

    async def names(ids: list[str]) -> dict[str, str | None]:
        found: dict[str, str | None] = {}
        missing: list[str] = []
        for player in ids:  # one lookup each: a TTLCache lookup checks expiry in Python
            name = cache.get((tenant, player), _UNKNOWN)
            if name is _UNKNOWN:
                missing.append(player)
            else:
                found[player] = name
        if missing:
            async with services.db.acquire() as conn:
                fetched = await players.display_names(conn, tenant, missing)
            for player in missing:
                found[player] = cache[(tenant, player)] = fetched.get(player)
        return found

    return names
