"""A player's state in one campaign: what is stored per (player, campaign) row.

Everything is an array-like msgspec Struct of integers and short strings, so the MessagePack
bytes are compact and decode in microseconds for a typical player. Instants are microseconds
since the epoch (see `times.py`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from badges.accumulators import Acc

__all__ = ["Checkpoint", "Fact", "Held", "Key", "Memo", "PlayerState", "Segment"]

Key = tuple[int, str]  # (t, id): the fold order of facts


class Fact(msgspec.Struct, array_like=True, gc=False, order=True):
    """An event as the history keeps it (never modified): its type as the number the compiled
    rules gave it, and only the attributes the rules read, keyed by slot (see `project`).

    Facts order by (t, id), the fold order: `t` and `id` come first, and no two retained facts
    share an id (the rest would be compared only then)."""

    t: int
    id: str
    type: int
    attributes: dict[int, Any]


class Held(msgspec.Struct, array_like=True, frozen=True, gc=False):
    t: int
    points: int


class Checkpoint(msgspec.Struct, array_like=True):
    """The exact fold of the events dropped from the history (see the history cap in the
    package docs): a refold starts here instead of from nothing."""

    t: int  # (t, id) of the newest event folded in
    id: str
    accs: list[Acc | None]
    awards: dict[str, int]  # badge id -> award time, for badges met inside the checkpoint
    scored: list[tuple[int, int]]  # scoring points per quarter hour: (newest time, points)


class PlayerState(msgspec.Struct, array_like=True, dict=True):
    """Use `PlayerState.empty()` for a new player (or pass None to `apply`).

    `apply` updates a state in place and returns it: copying thousands of history entries on
    every call would cost more than the fold. `from_bytes(s.to_bytes())` is a deep copy.
    """

    rules: int = 0  # fingerprint of the compiled rules this state was folded with
    facts: list[Fact] = []  # the retained history, sorted by (t, id)
    accs: list[Acc | None] = []  # per badge, the fold so far; None = nothing yet, or met
    awards: dict[str, Held] = {}
    score: int = 0
    reached: int | None = None
    scored: int = 0  # points from scoring rules, included in `score`
    scored_at: int | None = None  # newest event that earned scoring points
    checkpoint: Checkpoint | None = None
    # How much of the history is sealed in segments stored apart from this state (see
    # `badges.storage`): `facts` then holds only what follows them, unless they were attached.
    segmented: int = 0  # facts in sealed segments
    sealed: Key | None = None  # the newest sealed fact
    # Chunks of the checkpoint's `scored` stored apart: it grows with the history forgotten.
    ledger: int = 0
    # Whether the checkpoint's accumulators and awards are stored apart (this state then holds
    # its key only): only compaction and late events read them.
    checkpoint_apart: bool = False

    @classmethod
    def empty(cls) -> PlayerState:
        return cls()

    def to_bytes(self) -> bytes:
        """The whole state; for a state loaded without its segments, its head (see
        `badges.storage`)."""
        if self.segmented or self.ledger or self.checkpoint_apart:  # stored in parts
            memo: Memo | None = self.__dict__.get("_memo")
            if memo is not None and memo.whole():
                whole = msgspec.structs.replace(
                    self, segmented=0, sealed=None, ledger=0, checkpoint_apart=False
                )
                return _encoder.encode(whole)
        return _encoder.encode(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> PlayerState:
        state: PlayerState = _decoder.decode(data)
        return state

    def check(self, fingerprint: int) -> None:
        """Raise ValueError unless the state is empty or was folded with these rules."""
        if self.rules and self.rules != fingerprint:
            raise ValueError("this state was folded with other campaign rules")

    def memo(self) -> Memo:
        """What `apply` remembers between calls without encoding it (kept in the instance
        dict, which msgspec does not encode); rebuilt after `from_bytes`."""
        memo: Memo | None = self.__dict__.get("_memo")
        if memo is None:
            memo = self.__dict__["_memo"] = Memo(self)
        return memo


class Memo:
    """Ids of the retained history, and instants as datetimes (`reached` is reported before and
    after every call, and converting microseconds to a datetime costs as much as a fold step)."""

    __slots__ = (
        "checkpoint_base",
        "checkpoint_loaded",
        "gap",
        "ids",
        "ledger_base",
        "ledger_loaded",
        "moments",
        "reached",
        "reached_at",
        "segments",
        "unloaded",
    )

    def __init__(self, state: PlayerState) -> None:
        # A dict of strings to None, not a set: the collector stops tracking such a dict, so a
        # full collection does not visit every retained id of every player in memory.
        self.ids = dict.fromkeys(fact.id for fact in state.facts)
        self.reached: int | None = None
        self.reached_at: datetime | None = None
        # Instants converted by `points_timeline`, which the service calls before and after
        # every `apply`: the second call converts only what the apply added.
        self.moments: dict[int, datetime] = {}
        # Sealed segments (see `badges.storage`): those attached, as they were stored, and the
        # facts of the others. `gap` is how many facts at the front of `facts` are the oldest
        # retained (the attached leading segments) before the unattached ones: None when none
        # is missing. A state decoded from bytes holds none of its segments.
        self.segments: list[Segment] = []
        self.unloaded = state.segmented
        self.gap: int | None = 0 if state.segmented else None
        # The checkpoint's `scored` of a state decoded from bytes holds only what was added
        # since, until its stored chunks are attached; `ledger_base` is what is stored.
        self.ledger_loaded = not state.ledger
        scored = state.checkpoint.scored if state.checkpoint is not None else []
        self.ledger_base = ledger_mark(scored) if self.ledger_loaded else (0, None)
        # Likewise the checkpoint's body, with what is stored of it (see `badges.storage`).
        self.checkpoint_loaded = not state.checkpoint_apart
        self.checkpoint_base = b""

    def whole(self) -> bool:
        """Whether every retained fact is in `facts`, and the whole checkpoint at hand."""
        return self.gap is None and self.ledger_loaded and self.checkpoint_loaded


def ledger_mark(scored: list[tuple[int, int]]) -> tuple[int, tuple[int, int] | None]:
    """What tells a ledger changed: buckets are only appended, or the last one grows."""
    return len(scored), scored[-1] if scored else None


class Segment(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """An attached segment as it was stored: rewritten when its facts no longer match."""

    newest: Key  # its key in storage: segments split the history by their newest fact
    count: int
    oldest: Key


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(PlayerState)
