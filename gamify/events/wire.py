"""Wire shapes of the award endpoint (API.md, "Events")."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

import msgspec

from gamify.platform.decoding import NUL_ESCAPE, decode_part
from gamify.platform.problems import FieldProblem

MAX_EVENTS = 1000


class EventIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    # No `/`: a player's id is a path segment of the API (`/v1/players/{player}`).
    player: Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[^/]*$")]
    type: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    occurred_at: Annotated[datetime, msgspec.Meta(tz=True)]
    attributes: dict[str, Any] = {}


class EventsIn(msgspec.Struct):
    """The request body, for the OpenAPI document: `decode_events` reads it event by event.

    Other members of the envelope are ignored, as they always were (unlike unknown fields of an
    event), so the document allows them."""

    events: Annotated[list[EventIn], msgspec.Meta(min_length=1, max_length=MAX_EVENTS)]


class AwardOut(msgspec.Struct, frozen=True):
    campaign: str
    badge: str
    awarded_at: datetime


class ScoreOut(msgspec.Struct, frozen=True, omit_defaults=True):
    """A player's score on one board; `period` names the window of a daily or weekly board."""

    campaign: str
    board: str
    score: int
    rank: int | None = None
    previous_rank: int | None = None
    period: date | None = None


class EventResult(msgspec.Struct, frozen=True, omit_defaults=True):
    id: str
    status: Literal["accepted", "duplicate", "rejected"]
    awards: list[AwardOut]
    scores: list[ScoreOut]
    error: str | None = None


class EventResults(msgspec.Struct):
    results: list[EventResult]


class _Envelope(msgspec.Struct):
    events: list[msgspec.Raw]


def decode_events(body: bytes) -> tuple[list[EventIn], list[FieldProblem]]:
    """Every event of the body, or every problem with its path (`events[3].occurred_at`).

    Each event is decoded on its own: a valid one costs one msgspec call, and only an event
    that fails is taken apart to name each of its bad fields (see `platform.decoding`)."""
    # The envelope's Raw events hold no text of their own to search for U+0000.
    envelope, problems = decode_part(body, _Envelope, "", nul_escaped=False)
    if envelope is None:
        return [], problems
    count = len(envelope.events)
    if not 1 <= count <= MAX_EVENTS:
        return [], [FieldProblem("events", f"send 1 to {MAX_EVENTS} events, not {count}")]
    nul_escaped = NUL_ESCAPE in body
    decoded: list[EventIn] = []
    for i, raw in enumerate(envelope.events):
        event, bad = decode_part(raw, EventIn, f"events[{i}]", nul_escaped=nul_escaped)
        if event is None:
            problems += bad
        else:
            decoded.append(event)
    return decoded, problems
