"""Throughput of the pure rules engine: events folded per second on one core.

A 40-airport campaign (42 badges: one per airport plus 10- and 25-destination milestones, one
point per flight) over N events (default 1,000,000) for 10,000 players, applied one event per
call as the service does (with `progress=False`: it does not read `Effects.progress`). First with
every event in order, then with 10 % of events late (their occurred_at one hour to three days
before the newest event, like a flight reported days after it landed). Event generation is not
timed. The last line prints both rates.

    .venv/bin/python -m bench.engine [--events N] [--players P] [--roundtrip]
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from badges import Engine, Event, PlayerState, Rules, ScoringRule, apply, compile_rules
from badges.catalog import destination_badges

# fmt: off
AIRPORTS = [
    "YVR", "YYZ", "YUL", "YYC", "YEG", "YOW", "YHZ", "YWG", "YQB", "YYJ",
    "YXE", "YQR", "YYT", "YQM", "YSJ", "YFC", "YQX", "YXU", "YKF", "YQT",
    "YXS", "YZF", "YXY", "YLW", "YKA", "YQU", "YMM", "YXX", "YCD", "YPR",
    "YQG", "YSB", "YAM", "YTS", "YGK", "YQY", "YDF", "YYG", "YTZ", "YHM",
]
ELSEWHERE = [
    "JFK", "LHR", "CDG", "NRT", "SFO", "LAX", "MIA", "CUN", "ORD", "BOS",
    "SEA", "DEN", "LAS", "PHX", "MEX", "HNL", "FRA", "AMS", "DUB", "KEF",
]
# fmt: on
START = datetime(2013, 6, 1, 4, tzinfo=UTC)
END = datetime(2013, 9, 1, 3, 59, 59, tzinfo=UTC)
CHUNK = 1_000  # small enough that events are still in cache when applied, as after decoding


def campaign() -> Rules:
    return Rules(
        starts_at=START,
        ends_at=END,
        timezone="America/Toronto",
        grace="PT12H",
        badges=destination_badges(AIRPORTS, milestones=(10, 25)),
        scoring=[ScoringRule(event="flight.completed", points=1)],
    )


def events(total: int, players: int, late: float, seed: int) -> Iterator[list[tuple[str, Event]]]:
    """Chunks of (player, event) in delivery order."""
    rng = random.Random(seed)
    step = (END - START) / total
    destinations = AIRPORTS + ELSEWHERE
    chunk: list[tuple[str, Event]] = []
    for i in range(total):
        occurred = START + step * i
        if rng.random() < late:
            occurred = max(START, occurred - timedelta(seconds=rng.uniform(3_600, 3 * 86_400)))
        event = Event(
            id=f"e{i}",
            type="flight.completed",
            occurred_at=occurred,
            attributes={"destination": rng.choice(destinations), "miles": rng.randint(200, 4000)},
        )
        chunk.append((f"p{rng.randrange(players)}", event))
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def measure(engine: Engine, total: int, players: int, late: float, roundtrip: bool) -> float:
    """Events per second of `apply`, one event per call, in CPU time of this process (so
    that other work on the machine does not count)."""
    states: dict[str, PlayerState] = {}
    stored: dict[str, bytes] = {}
    elapsed = 0.0
    for chunk in events(total, players, late, seed=42):
        began = time.process_time()
        if roundtrip:
            for player, event in chunk:
                data = stored.get(player)
                state = None if data is None else PlayerState.from_bytes(data)
                state, _ = apply(engine, state, [event], progress=False)
                stored[player] = state.to_bytes()
        else:
            for player, event in chunk:
                states[player], _ = apply(engine, states.get(player), [event], progress=False)
        elapsed += time.process_time() - began
    return total / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--players", type=int, default=10_000)
    parser.add_argument(
        "--roundtrip",
        action="store_true",
        help="decode and encode the state around every call, as the service does",
    )
    args = parser.parse_args()
    engine = compile_rules(campaign())
    print(f"{len(engine.ids)} badges, {args.events:,} events, {args.players:,} players")
    in_order = measure(engine, args.events, args.players, 0.0, args.roundtrip)
    print(f"in order: {in_order:,.0f} events/s")
    late = measure(engine, args.events, args.players, 0.1, args.roundtrip)
    print(f"10% late: {late:,.0f} events/s")
    mode = " (state to bytes and back per event)" if args.roundtrip else ""
    print(f"engine{mode}: {in_order:,.0f} events/s in order, {late:,.0f} events/s with 10% late")


if __name__ == "__main__":
    main()
