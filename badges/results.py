"""What `apply` reports, and what the player profile shows."""

from __future__ import annotations

from datetime import datetime

import msgspec

__all__ = ["Award", "Effects", "Progress"]


class Award(msgspec.Struct, frozen=True, gc=False):
    """`awarded_at` equals (==) the occurred_at of the event that completed the badge."""

    badge: str
    awarded_at: datetime
    points: int


class Progress(msgspec.Struct, frozen=True, gc=False):
    """`current` never exceeds `target`; a held badge shows `current == target`."""

    badge: str
    current: int
    target: int


class Effects(msgspec.Struct, gc=False):
    """The difference one `apply` call made.

    `moved` lists held badges whose `awarded_at` moved earlier because of a late event (with the
    new time). `progress` covers the badges the events advanced: those they counted for that
    were not already held (earlier), and `badges` badges one of whose badges was awarded or
    moved here; a badge awarded here shows `current == target`.
    """

    awarded: list[Award]
    moved: list[Award]
    score_before: int
    score_after: int
    reached_at_before: datetime | None
    reached_at_after: datetime | None
    progress: list[Progress]

    @property
    def changed(self) -> bool:
        """Whether the player's badges or score changed (progress alone does not count)."""
        return bool(self.awarded or self.moved) or (
            self.score_before != self.score_after or self.reached_at_before != self.reached_at_after
        )
