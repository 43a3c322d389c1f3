"""Builders that let the tests read like API.md: a campaign as JSON-ish dicts, events by time."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from badges import (
    Effects,
    Engine,
    Event,
    PlayerState,
    Rules,
    apply,
    compile_rules,
    decode_rules,
    held_badges,
)

STARTS = "2013-06-01T00:00:00-04:00"
ENDS = "2013-08-31T23:59:59-04:00"


def campaign(*badges: dict[str, Any], **fields: Any) -> Rules:
    """A campaign like the example of API.md, with these badges (and any field overridden)."""
    data: dict[str, Any] = {
        "id": "earn-your-wings",
        "name": "Earn your wings",
        "starts_at": STARTS,
        "ends_at": ENDS,
        "timezone": "America/Toronto",
        "grace": "PT12H",
        "badges": list(badges),
        "scoring": [],
        "leaderboards": ["campaign"],
    }
    data.update(fields)
    return decode_rules(data)


def badge(badge_id: str, points: int = 0, **criteria: Any) -> dict[str, Any]:
    return {"id": badge_id, "name": badge_id.title(), "points": points, "criteria": criteria}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


_serial = iter(range(1, 10**9))


def flight(when: str, event_id: str | None = None, **attributes: Any) -> Event:
    """A `flight.completed` event at `when` (RFC 3339)."""
    return event("flight.completed", when, event_id, **attributes)


def event(kind: str, when: str, event_id: str | None = None, **attributes: Any) -> Event:
    return Event(event_id or f"ev-{next(_serial)}", kind, at(when), attributes)


class Player:
    """One player's state in one campaign, fed event by event as the service would."""

    def __init__(self, rules: Rules | Engine) -> None:
        self.engine = rules if isinstance(rules, Engine) else compile_rules(rules)
        self.state: PlayerState | None = None
        self.effects: list[Effects] = []

    def send(self, *events: Event) -> Effects:
        # A list, as the service passes: one event takes `apply`'s single-event path.
        self.state, effects = apply(self.engine, self.state, list(events))
        self.effects.append(effects)
        return effects

    def feed(self, events: Iterable[Event]) -> Player:
        for one in events:
            self.send(one)
        return self

    @property
    def badges(self) -> dict[str, datetime]:
        return {award.badge: award.awarded_at for award in held_badges(self.state)}

    @property
    def score(self) -> int:
        return 0 if self.state is None else self.state.score
