"""Wire shapes of the award endpoint (API.md, "Events")."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

import msgspec

from gamify.platform.problems import FieldProblem, field_problem_from_msgspec

MAX_EVENTS = 1000


class EventIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    player: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    type: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    occurred_at: Annotated[datetime, msgspec.Meta(tz=True)]
    attributes: dict[str, Any] = {}


class EventsIn(msgspec.Struct, forbid_unknown_fields=True):
    """The request body; decoded event by event so that every bad field is named."""

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
    """Every event of the body, or every problem with its path (`events[3].occurred_at`)."""
    try:
        envelope = msgspec.json.decode(body, type=_Envelope)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return [], [field_problem_from_msgspec(exc)]
    count = len(envelope.events)
    if not 1 <= count <= MAX_EVENTS:
        return [], [FieldProblem("events", f"send 1 to {MAX_EVENTS} events, not {count}")]
    decoded: list[EventIn] = []
    problems: list[FieldProblem] = []
    for i, raw in enumerate(envelope.events):
        try:
            event = msgspec.json.decode(raw, type=EventIn)
        except msgspec.ValidationError as exc:
            problems.append(field_problem_from_msgspec(exc, f"events[{i}]"))
            continue
        decoded.append(event)
        problems += [
            FieldProblem(f"events[{i}].{path}", "may not contain U+0000")
            for path in nul_paths(msgspec.structs.asdict(event))
        ]
    return decoded, problems


def nul_paths(value: Any, path: str = "") -> list[str]:
    """Where U+0000 hides in a JSON value: Postgres can store it in neither text nor jsonb."""
    if isinstance(value, str):
        return [path] if "\x00" in value else []
    if isinstance(value, dict):
        return [
            p
            for key, item in value.items()
            for p in ([f"{path}.{key}".lstrip(".")] if "\x00" in key else [])
            + nul_paths(item, f"{path}.{key}".lstrip("."))
        ]
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in nul_paths(item, f"{path}[{i}]")]
    return []
