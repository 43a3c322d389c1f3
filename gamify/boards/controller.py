"""HTTP: leaderboards: the top of a board page by page, and where one player stands."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, get
from litestar.params import Parameter

from gamify.boards import reader, reads
from gamify.boards.batch import ReadBatcher
from gamify.boards.names import DisplayNames
from gamify.boards.service import Boards
from gamify.campaigns.schema import CampaignId
from gamify.platform.container import container_of
from gamify.platform.openapi import ProblemOperation
from gamify.tenants.guards import Principal, requires

# As an event names its player (events/wire.py); Postgres text cannot hold U+0000.
PlayerId = Annotated[
    str,
    Parameter(
        min_length=1,
        max_length=128,
        pattern=r"^[^\x00]*$",
        description="the partner's player id: 1 to 128 characters, U+0000 excepted",
    ),
]
BoardName = Annotated[
    Literal["campaign", "daily", "weekly"],
    Parameter(
        description="`campaign`, or a window the campaign names (`daily`, `weekly`); "
        "another is a 400"
    ),
]
Period = Annotated[
    date | None,
    Parameter(
        description="a window's first local day (a Monday for weekly); default: the current "
        "one. The campaign board has no periods: a period with it is a 400"
    ),
]
Cursor = Annotated[
    str | None,
    Parameter(
        pattern=r"^[A-Za-z0-9_-]+={0,2}$",
        description="`next` of the previous page (opaque; one this board did not give is a 400)",
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

    @get(
        "/",
        summary="A board, best first; `next` is a stable cursor for the following page",
        operation_class=ProblemOperation,
    )
    async def board(
        self,
        request: Request[Any, Principal, Any],
        campaign_id: CampaignId,
        board: BoardName = "campaign",
        period: Period = None,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 100,
        after: Cursor = None,
    ) -> Board:
        container = container_of(request)
        boards = container.get(Boards)
        ref = await reads.resolve(boards, request.auth.tenant, campaign_id, board, period)
        found = await reads.page(
            boards, container.get(ReadBatcher), container.get(DisplayNames), ref, limit, after
        )
        return Board(board, found.total, found.entries, found.next, ref.period)

    @get(
        "/players/{player:str}",
        summary="A player's rank, score, percentile and neighbours",
        operation_class=ProblemOperation,
    )
    async def player(
        self,
        request: Request[Any, Principal, Any],
        campaign_id: CampaignId,
        player: PlayerId,
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
