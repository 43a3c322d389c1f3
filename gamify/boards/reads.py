"""Reading a board for the API: which Redis key a (campaign, board, period) names, the cached
first pages, and waiting out a rebuild when Redis lost the boards."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from typing import TypeVar

import msgspec

from gamify.boards import keys, reader
from gamify.boards.batch import ReadBatcher
from gamify.boards.names import DisplayNames
from gamify.boards.service import Boards
from gamify.campaigns.compiled import CompiledCampaign
from gamify.campaigns.windows import period_of, valid_period
from gamify.platform.problems import ApiError, FieldProblem, invalid

T = TypeVar("T")


class BoardRef(msgspec.Struct, frozen=True):
    tenant: str
    compiled: CompiledCampaign
    key: str
    period: date | None  # the window's, for a daily or weekly board

    @property
    def ready_key(self) -> str:
        return keys.ready(self.tenant, self.compiled.id)


async def resolve(
    boards: Boards, tenant: str, campaign_id: str, board: str, period: date | None
) -> BoardRef:
    """The board asked for; 404 for an unknown campaign, 400 for a board or period it lacks.
    A window board without a period is the current one."""
    compiled = await boards.compiled(tenant, campaign_id)
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
    return BoardRef(tenant, compiled, keys.board(tenant, campaign_id, board, window), window)


async def page(
    boards: Boards,
    reads: ReadBatcher,
    names: DisplayNames,
    ref: BoardRef,
    limit: int,
    after: str | None,
    *,
    fresh: bool = False,
) -> reader.Page:
    """A page of the board; first pages come from a cache of TOP_PAGE_TTL (see Boards), unless
    `fresh` asks for what Redis holds now."""
    cached: reader.Page | None = boards.top_pages.get(ref.key, {}).get(limit)
    if after is None and cached is not None and not fresh:
        return cached
    try:
        found = await _when_ready(
            boards,
            ref,
            lambda: reader.page(
                reads,
                ref.key,
                ref.ready_key,
                ref.compiled.bits,
                limit,
                after,
                names.of(ref.tenant),
            ),
        )
    except reader.BadCursor as exc:
        raise invalid([FieldProblem("after", str(exc))]) from None
    if after is None:
        boards.top_pages.setdefault(ref.key, {})[limit] = found
    return found


async def standing(
    boards: Boards, reads: ReadBatcher, names: DisplayNames, ref: BoardRef, player: str, radius: int
) -> reader.Around:
    """The player's rank, score and neighbours; 404 when the player is not on the board."""
    found = await _when_ready(
        boards,
        ref,
        lambda: reader.around(
            reads, ref.key, ref.ready_key, ref.compiled.bits, player, radius, names.of(ref.tenant)
        ),
    )
    if found is None:
        raise ApiError(404, "Not Found", f"{player} has no score on this board")
    return found


async def _when_ready(boards: Boards, ref: BoardRef, read: Callable[[], Awaitable[T]]) -> T:
    """`read()`, and if the boards turn out not to be built, again once they are."""
    try:
        return await read()
    except reader.NotReady:
        if not await boards.ensure_ready(ref.tenant, ref.compiled.id):
            raise ApiError(
                503,
                "Service Unavailable",
                "this board is being rebuilt; retry shortly",
                headers={"Retry-After": "1"},
            ) from None
        return await read()
