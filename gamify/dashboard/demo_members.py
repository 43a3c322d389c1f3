"""Simulated loyalty members and their flights, for the demo: pure, seeded, no I/O.

A few members fly a lot and most fly now and then (Pareto weights), and big airports are
picked far more often than small ones, so the milestones and the rare destinations are earned
by few, as in a real programme. Member numbers rank the members by how often they fly, and a
member's name depends only on its number: the same member has the same name in every run.

The first `history` flights are spread over the campaign's past, from its start to the moment
the demo began, so the weekly boards and the days before today have players; later flights
land now.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec

_FIRST = (
    "Amélie Olivia Liam Noah Emma Jacob Chloé William Zoé Lucas Maya Ethan Léa Nathan Ava "
    "Logan Mia Félix Charlotte Owen Alice Samuel Rosalie Benjamin Sophie Thomas Camille Jack "
    "Florence Gabriel Hannah Raphaël Aisha Arjun Mei Kenji Priya Omar Ingrid Mateo"
)
_LAST = (
    "Tremblay Gagnon Roy Côté Bouchard Gauthier Morin Lavoie Fortin Gagné Smith Brown Wilson "
    "MacDonald Taylor Campbell Anderson Leblanc Martin Thompson White Johnson Lee Wong Singh "
    "Patel Chen Nguyen Kowalski Murphy O'Brien Stewart Fraser Bélanger Pelletier Bergeron "
    "Lapointe Girard Caron Poirier"
)
FIRST, LAST = tuple(_FIRST.split()), tuple(_LAST.split())
PARETO = 1.5


class Flight(msgspec.Struct, frozen=True):
    """A `flight.completed` event as the airline's systems would post it."""

    id: str
    player: str
    type: str
    occurred_at: datetime
    attributes: dict[str, Any]


def member_id(number: int) -> str:
    return f"m-{number:05d}"


def display_name(number: int) -> str:
    # A fixed shuffle of the name pairs, so neighbours do not share a first name.
    pair = (number * 7919) % (len(FIRST) * len(LAST))
    return f"{FIRST[pair % len(FIRST)]} {LAST[pair // len(FIRST)]}"


class Flights:
    """An endless stream of flights for `members` members to `destinations`."""

    def __init__(
        self,
        members: int,
        destinations: Sequence[str],
        *,
        run: str,
        starts_at: datetime,
        began: datetime,
        history: int,
        seed: int | None = None,
    ) -> None:
        # Unseeded by default: a run replaying the last one's flights would award nothing.
        self._rng = random.Random(seed)
        # Member 1 flies most, member 2 next, and so on: neighbours fly about as often, so
        # they keep passing each other on the boards.
        shape = random.Random(members)
        weights = sorted((shape.paretovariate(PARETO) for _ in range(members)), reverse=True)
        self._members = list(itertools.accumulate(weights))
        self._destinations = list(destinations)
        # Zipf: the n-th busiest airport is picked 1/n as often as the busiest.
        ranks = range(1, len(destinations) + 1)
        self._places = list(itertools.accumulate(1 / rank for rank in ranks))
        self._run = run
        self._starts_at = starts_at
        self._began = began
        self._history = history
        self._made = 0

    def take(self, count: int, now: datetime) -> list[Flight]:
        return [self._next(now) for _ in range(count)]

    def _next(self, now: datetime) -> Flight:
        self._made += 1
        number = self._rng.choices(range(len(self._members)), cum_weights=self._members)[0] + 1
        destination = self._rng.choices(self._destinations, cum_weights=self._places)[0]
        return Flight(
            id=f"fl-{self._run}-{self._made}",
            player=member_id(number),
            type="flight.completed",
            occurred_at=self._when(now),
            attributes={"destination": destination},
        )

    def _when(self, now: datetime) -> datetime:
        if self._made > self._history or self._began <= self._starts_at:
            return now
        return self._starts_at + (self._began - self._starts_at) * (self._made / self._history)
