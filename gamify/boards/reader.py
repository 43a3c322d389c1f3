"""Reading the boards: pages with a stable cursor, and the neighbourhood of one player.

Board order is score descending, then member descending (Redis's order for equal scores).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from redis.asyncio import Redis

from gamify.boards import functions
from gamify.boards.batch import ReadBatcher
from gamify.boards.encoding import decode_points

# Equal encoded scores (same points, same second) are rare: fetching this many more than a
# page is enough to step over the ties a cursor sits among.
TIE_SLACK = 64

Names = Callable[[list[str]], Awaitable[dict[str, str | None]]]


class Entry(msgspec.Struct, frozen=True):
    rank: int
    player: str
    display_name: str | None
    score: int


class Page(msgspec.Struct, frozen=True):
    total: int
    entries: list[Entry]
    next: str | None


class Around(msgspec.Struct, frozen=True):
    rank: int
    score: int
    total: int
    percentile: float
    around: list[Entry]


class BadCursor(ValueError):
    pass


class NotReady(Exception):
    """The board is not built (Redis flushed or restarted empty)."""


def encode_cursor(score: float, player: str) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode([int(score), player])).decode()


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        score, player = msgspec.json.decode(
            base64.urlsafe_b64decode(cursor.encode()), type=tuple[int, str]
        )
    except (binascii.Error, msgspec.DecodeError, ValueError, UnicodeEncodeError):
        raise BadCursor("not a cursor this board gave out") from None
    return score, player


async def page(
    redis: Redis, key: str, ready_key: str, bits: int, limit: int, after: str | None, names: Names
) -> Page:
    """One round trip for a first page (the hot one), two for a page after a cursor."""
    cursor = decode_cursor(after) if after is not None else None
    async with redis.pipeline(transaction=False) as pipe:
        pipe.exists(ready_key)
        pipe.zcard(key)
        if cursor is None:
            pipe.zrevrange(key, 0, limit - 1, withscores=True)
        else:
            pipe.zrevrangebyscore(
                key, cursor[0], "-inf", start=0, num=limit + TIE_SLACK, withscores=True
            )
        replies: list[Any] = await pipe.execute()
    ready, total, raw = replies
    if not ready:
        raise NotReady(key)
    members = _members(raw)
    start = 1
    if cursor is not None:
        members = [(m, s) for m, s in members if int(s) < cursor[0] or m < cursor[1]][:limit]
        if members:
            first: Any = await redis.zrevrank(key, members[0][0])
            start = (first or 0) + 1
    if not members:
        return Page(total, [], None)
    shown = await names([player for player, _ in members])
    entries = [
        Entry(start + i, player, shown.get(player), decode_points(score, bits))
        for i, (player, score) in enumerate(members)
    ]
    last_player, last_score = members[-1]
    more = len(members) == limit and entries[-1].rank < total
    return Page(total, entries, encode_cursor(last_score, last_player) if more else None)


def _members(raw: Any) -> list[tuple[str, float]]:
    # redis-py types a WITHSCORES reply loosely; it is a list of (bytes member, float score).
    return [(member.decode(), float(score)) for member, score in raw]


async def around(
    reads: ReadBatcher,
    key: str,
    ready_key: str,
    bits: int,
    player: str,
    radius: int,
    names: Names,
) -> Around | None:
    """The player's standing and neighbours, or None when the player is not on the board;
    raises NotReady when the boards are not built."""
    command = ("FCALL_RO", functions.AROUND, 2, key, ready_key, player, radius)
    reply: list[Any] = await functions.loading(reads.redis, lambda: reads.call(*command))
    if reply == [-1]:
        raise NotReady(key)
    if not reply:
        return None
    rank, score, total, first = int(reply[0]), float(reply[1]), int(reply[2]), int(reply[3])
    shown = reply[4:]
    members = [(shown[i].decode(), float(shown[i + 1])) for i in range(0, len(shown), 2)]
    display = await names([p for p, _ in members])
    entries = [
        Entry(first + 1 + i, p, display.get(p), decode_points(value, bits))
        for i, (p, value) in enumerate(members)
    ]
    percentile = round(100 * (total - rank - 1) / total, 2)
    return Around(rank + 1, decode_points(score, bits), total, percentile, entries)
