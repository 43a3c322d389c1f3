"""The campaign rules the engine reads: a subset of the campaign JSON of API.md.

Decoding a whole campaign into `Rules` ignores the fields the service owns (`id`, `name`,
`leaderboards`, `prize_pool`, `loyalty`, ...).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

from badges.criteria import Criterion, Where

__all__ = ["AwareDatetime", "Badge", "Event", "Reward", "Rules", "ScoringRule"]

AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]


class Reward(msgspec.Struct, kw_only=True):
    """A credit delivered to the loyalty system when the badge is awarded."""

    amount: int
    unit: str


class Badge(msgspec.Struct, kw_only=True):
    id: str
    name: str
    criteria: Criterion
    points: int = 0
    reward: Reward | None = None
    description: str | None = None


class ScoringRule(msgspec.Struct, kw_only=True):
    """`points` for every event of type `event` that passes `where`."""

    event: str
    points: int
    where: Where | None = None


class Rules(msgspec.Struct, kw_only=True):
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    timezone: str
    badges: list[Badge]
    grace: str | None = None
    scoring: list[ScoringRule] = []


class Event(msgspec.Struct, frozen=True):
    """One thing a player did. `id` identifies it: the engine counts an id once."""

    id: str
    type: str
    occurred_at: AwareDatetime
    attributes: dict[str, Any] = {}
