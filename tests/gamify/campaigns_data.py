"""Campaign documents the tests share, after API.md's "Earn your wings"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

DESTINATIONS = ["YVR", "YYC", "YEG", "YWG", "YUL", "YOW", "YHZ", "YQB", "YYJ", "YXE", "LHR", "CDG"]


def earn_your_wings(
    *, starts_at: datetime | None = None, days: int = 90, campaign_id: str = "earn-your-wings"
) -> dict[str, Any]:
    """The API.md campaign, live now unless `starts_at` says otherwise."""
    start = starts_at or datetime.now(UTC) - timedelta(days=30)
    destination_badges = [
        {
            "id": code.lower(),
            "name": code,
            "points": 1,
            "criteria": {
                "kind": "value",
                "event": "flight.completed",
                "attribute": "destination",
                "values": [code],
            },
        }
        for code in DESTINATIONS
    ]
    return {
        "id": campaign_id,
        "name": "Earn your wings",
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(days=days)).isoformat(),
        "timezone": "America/Toronto",
        "grace": "PT12H",
        "badges": [
            *destination_badges,
            {
                "id": "explorer",
                "name": "Ten destinations",
                "points": 5,
                "criteria": {
                    "kind": "distinct",
                    "event": "flight.completed",
                    "attribute": "destination",
                    "threshold": 10,
                },
            },
        ],
        "scoring": [{"event": "flight.completed", "points": 0}],
        "leaderboards": ["campaign", "weekly"],
        "prize_pool": {
            "amount": 10_000_000,
            "unit": "miles",
            "split": "proportional",
            "basis": "badges",
            "eligibility": {"min_badges": 1},
        },
        "loyalty": {"url": "https://loyalty.example/credits", "secret": "whsec_0123456789abcdef"},
    }
