"""HTTP: leaderboards: the top of a board page by page, and where one player stands."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get
from litestar.params import FromPath, Parameter

from gamify.boards import reader, reads
from gamify.boards.batch import ReadBatcher
from gamify.boards.names import DisplayNames
from gamify.boards.service import Boards
from gamify.platform.container import container_of
from gamify.tenants.guards import Principal, requires

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
    guards = [requires("read", player_tokens=True)]

    @get("/", summary="A board, best first; `next` is a stable cursor for the following page")
    async def board(
        self,
        request: Request[Any, Principal, Any],
        campaign_id: FromPath[str],
        board: BoardName = "campaign",
        period: Period = None,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 100,
        after: Annotated[str | None, Parameter(description="`next` of the previous page")] = None,
    ) -> Board:
        container = container_of(request)
        boards = container.get(Boards)
        ref = await reads.resolve(boards, request.auth.tenant, campaign_id, board, period)
        found = await reads.page(
            boards, container.get(ReadBatcher), container.get(DisplayNames), ref, limit, after
        )
        return Board(board, found.total, found.entries, found.next, ref.period)

    @get("/players/{player:str}", summary="A player's rank, score, percentile and neighbours")
    async def player(
        self,
        request: Request[Any, Principal, Any],
        campaign_id: FromPath[str],
        player: FromPath[str],
        board: BoardName = "campaign",
        period: Period = None,
        around: Annotated[int, Parameter(ge=0, le=50)] = 5,
    ) -> Standing:
        container = container_of(request)
        boards = container.get(Boards)
        ref = await reads.resolve(boards, request.auth.tenant, campaign_id, board, period)
        found = await reads.standing(
            boards, container.get(ReadBatcher), container.get(DisplayNames), ref, player, around
        )
        return Standing(found.rank, found.score, found.total, found.percentile, found.around)
