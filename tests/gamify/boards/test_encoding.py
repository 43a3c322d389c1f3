"""The board score encoding: exact, ordered by the tie rule, identical in Python and SQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gamify.boards import encoding
from gamify.boards.store import ENCODED
from gamify.campaigns.document import time_bits

START = datetime(2013, 6, 1, 4, tzinfo=UTC)
SPAN = timedelta(days=92, hours=12)
BITS = time_bits(SPAN)
moments = st.integers(0, int(SPAN.total_seconds())).map(lambda s: START + timedelta(seconds=s))
points = st.integers(0, encoding.ceiling(BITS) - 1)


def test_a_92_day_campaign_leaves_a_billion_points() -> None:
    assert BITS == 23
    assert encoding.ceiling(BITS) == 2**30


@settings(max_examples=300, deadline=None)
@given(points, moments, points, moments)
def test_more_points_first_then_the_earlier(p1: int, t1: datetime, p2: int, t2: datetime) -> None:
    a = encoding.encode(p1, t1, START, BITS)
    b = encoding.encode(p2, t2, START, BITS)
    assert a < 2**53 and b < 2**53 and float(a) == a
    key1 = (p1, -int((t1 - START).total_seconds()))
    key2 = (p2, -int((t2 - START).total_seconds()))
    assert (a > b) == (key1 > key2)
    assert encoding.decode_points(float(a), BITS) == p1


def test_beyond_the_ceiling_fails_loudly() -> None:
    with pytest.raises(encoding.BoardOverflow):
        encoding.encode(encoding.ceiling(BITS), START, START, BITS)


async def test_postgres_encodes_exactly_like_python(db: asyncpg.Connection) -> None:
    cases = [
        (1, START),
        (7, START + timedelta(seconds=1.7)),
        (2**30 - 1, START + SPAN),
        (5, START - timedelta(hours=1)),
        (3, None),
    ]
    for score, reached in cases:
        sql = await db.fetchval(
            f"SELECT {ENCODED} FROM (SELECT $5::bigint AS score, $6::timestamptz AS reached_at)"
            " AS t WHERE $1::text IS NULL OR $2::text IS NULL OR true",
            None,
            None,
            START,
            BITS,
            score,
            reached,
        )
        assert sql == encoding.encode(score, reached, START, BITS), (score, reached)
