"""Reading the boards: pages with a stable cursor, and the neighbourhood of one player.

Board order is score descending, then member descending (Redis's order for equal scores).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from gamify.boards import functions
from gamify.boards.batch import ReadBatcher
from gamify.boards.encoding import decode_points

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
    reads: ReadBatcher,
    key: str,
    ready_key: str,
    bits: int,
    limit: int,
    after: str | None,
    names: Names,
) -> Page:
    """The entries after the cursor (or the first page), exact for any number of ties: one
    Function call reads rank and page in one atomic step (see gamify_page)."""
    cursor = () if after is None else tuple(str(part) for part in decode_cursor(after))
    command = ("FCALL_RO", functions.PAGE, 2, key, ready_key, limit, *cursor)
    reply: list[Any] = await functions.loading(reads.redis, lambda: reads.call(*command))
    if reply == [-1]:
        raise NotReady(key)
    total, start, shown = int(reply[0]), int(reply[1]), reply[2:]
    members = [(shown[i].decode(), float(shown[i + 1])) for i in range(0, len(shown), 2)]
    if not members:
        return Page(total, [], None)
    display = await names([player for player, _ in members])
    entries = [
        Entry(start + 1 + i, player, display.get(player), decode_points(score, bits))
        for i, (player, score) in enumerate(members)
    ]
    last_player, last_score = members[-1]
    more = start + len(members) < total
    return Page(total, entries, encode_cursor(last_score, last_player) if more else None)


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
