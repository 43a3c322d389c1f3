"""The write cost of one event against the history a player already has (issue: write cost).

    .venv/bin/python -m bench.history [--repeat 200]

For a player whose state retains N events (a scoring rule retains every event), the engine's
cost of one new in-order event as the service pays it: decode the stored state, apply, encode
it again. Printed per N with the state's size, and the ratio of the cost at 9,000 retained
events to the cost at 10 (goal: at most 2). CPU time of this process. Not a test.
"""

from __future__ import annotations

import argparse
import time
from datetime import timedelta

from badges import Event, PlayerState, apply, compile_rules
from bench.engine import AIRPORTS, START, campaign

SIZES = (10, 100, 1_000, 5_000, 9_000, 10_000)


def history(size: int) -> bytes:
    """The stored state of a player with `size` flights, one a minute from the start."""
    engine = compile_rules(campaign())
    events = [
        Event(
            id=f"h{i}",
            type="flight.completed",
            occurred_at=START + timedelta(minutes=i),
            attributes={"destination": AIRPORTS[i % len(AIRPORTS)]},
        )
        for i in range(size)
    ]
    state, _ = apply(engine, None, events, progress=False)
    return state.to_bytes()


def cost(stored: bytes, size: int, repeat: int) -> float:
    """Seconds of CPU for one new event, decode to encode, averaged over `repeat` events."""
    engine = compile_rules(campaign())
    total = 0.0
    for n in range(repeat):
        event = Event(
            id=f"new{n}",
            type="flight.completed",
            occurred_at=START + timedelta(minutes=size + n),
            attributes={"destination": "YVR"},
        )
        began = time.process_time()
        state = PlayerState.from_bytes(stored)
        state, _ = apply(engine, state, [event], progress=False)
        state.to_bytes()
        total += time.process_time() - began
    return total / repeat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    costs: dict[int, float] = {}
    print(f"{'events retained':>16}  {'state':>9}  {'per event':>10}")
    for size in SIZES:
        stored = history(size)
        costs[size] = cost(stored, size, args.repeat)
        print(f"{size:>16,}  {len(stored) / 1024:>7.1f} KB  {costs[size] * 1e6:>7.0f} µs")
    print(f"cost at 9,000 ÷ cost at 10: {costs[9_000] / costs[10]:.1f} (goal <= 2)")


if __name__ == "__main__":
    main()
