"""One exact Redis score for (points, when reached): more points first, then the earlier.

score = points * 2^k + (2^k - 1 - t), with t the whole seconds from the campaign start to when
the score was reached. Redis scores are doubles, exact up to 2^53, so k is chosen per campaign
from its length (`CompiledCampaign.bits`) and leaves a ceiling of 2^(53 - k) points: about
10^9 for a 90-day campaign, 10^7 for a five-year one. A score at or over the ceiling raises
BoardOverflow, never ranks silently wrong.
"""

from __future__ import annotations

from datetime import datetime

EXACT_BITS = 53


class BoardOverflow(ValueError):
    """Points beyond what the campaign's board encoding can rank exactly."""


def ceiling(bits: int) -> int:
    return 1 << (EXACT_BITS - bits)


def encode(points: int, reached_at: datetime | None, starts_at: datetime, bits: int) -> int:
    if points < 0 or points >= ceiling(bits):
        raise BoardOverflow(f"{points} points is beyond this board's ceiling of {ceiling(bits)}")
    span = (1 << bits) - 1
    elapsed = 0 if reached_at is None else int((reached_at - starts_at).total_seconds())
    elapsed = min(max(elapsed, 0), span)
    return (points << bits) + (span - elapsed)


def decode_points(score: float, bits: int) -> int:
    return int(score) >> bits
