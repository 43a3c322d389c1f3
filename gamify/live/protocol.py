"""The WebSocket protocol's wire shapes (API.md, "WebSocket"): client ops and server messages."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

import msgspec

from gamify.boards.reader import Entry

# A client frame longer than this is answered with an error, unread: ops are a few dozen bytes.
MAX_FRAME_BYTES = 4096
MAX_TOP = 100

Topic = Literal["me", "leaderboard"]
Slug = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class _Op(msgspec.Struct, frozen=True, tag_field="op"):
    pass


class Subscribe(_Op, frozen=True, tag="subscribe"):
    topic: Topic
    campaign: Slug | None = None
    board: Slug = "campaign"
    period: date | None = None
    top: Annotated[int, msgspec.Meta(ge=1, le=MAX_TOP)] = 10


class Unsubscribe(_Op, frozen=True, tag="unsubscribe"):
    topic: Topic
    campaign: Slug | None = None
    board: Slug = "campaign"
    period: date | None = None
    top: int = 10


class Resume(_Op, frozen=True, tag="resume"):
    after: Annotated[int, msgspec.Meta(ge=0)]


class PingOp(_Op, frozen=True, tag="ping"):
    pass


ClientOp = Subscribe | Unsubscribe | Resume | PingOp
_decoder = msgspec.json.Decoder(ClientOp)


def decode(frame: str | bytes) -> ClientOp | str:
    """The op a client frame holds, or why it holds none (sent back as an `error`)."""
    if len(frame) > MAX_FRAME_BYTES:
        return f"a frame may hold at most {MAX_FRAME_BYTES} bytes"
    try:
        return _decoder.decode(frame)
    except msgspec.ValidationError as exc:
        return f"not an op this server knows: {exc}"
    except msgspec.DecodeError:
        return "a frame must be a JSON object with an `op`"


# Messages to one player: each is appended to the player's stream, which gives it its seq.
class _Message(msgspec.Struct, frozen=True, tag_field="type", omit_defaults=True):
    pass


class RankChanged(_Message, frozen=True, tag="rank_changed"):
    campaign: str
    board: str
    rank: int
    previous_rank: int | None
    score: int
    period: date | None = None


class Overtaken(_Message, frozen=True, tag="overtaken"):
    campaign: str
    board: str
    by: str
    rank: int
    period: date | None = None


class BadgeAwarded(_Message, frozen=True, tag="badge_awarded"):
    campaign: str
    badge: str
    awarded_at: datetime


class Payout(_Message, frozen=True, tag="payout"):
    campaign: str
    amount: int
    unit: str
    status: str


Message = RankChanged | Overtaken | BadgeAwarded | Payout


# Messages to one connection.
class Leaderboard(_Message, frozen=True, tag="leaderboard"):
    campaign: str
    board: str
    version: int
    entries: list[Entry]
    period: date | None = None


class Resumed(_Message, frozen=True, tag="resumed"):
    after: int
    recovered: bool


class Error(_Message, frozen=True, tag="error"):
    detail: str


class Pong(_Message, frozen=True, tag="pong"):
    pass


class Ping(_Message, frozen=True, tag="ping"):
    """Sent on a connection idle for a while: a send is how a dead peer is found out."""


encode = msgspec.json.Encoder().encode
