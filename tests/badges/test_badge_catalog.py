"""Destination badges built from airportsdata, ready for a campaign."""

from __future__ import annotations

import msgspec
import pytest

from badges import Rules, decode_rules, validate
from badges.catalog import airport_codes, destination_badges
from tests.badges.badge_kit import Player, at, flight


def test_a_badge_per_airport_named_by_city_and_milestones() -> None:
    badges = destination_badges(["YVR", "yul", "YYZ", "YTZ", "LHR"], milestones=(2, 5))
    assert [(b.id, b.name) for b in badges] == [
        ("yvr", "Vancouver"),
        ("yul", "Montréal"),
        ("yyz", "Toronto (YYZ)"),  # two airports serve Toronto
        ("ytz", "Toronto (YTZ)"),
        ("lhr", "London"),
        ("destinations-2", "2 destinations"),
        ("destinations-5", "5 destinations"),
    ]
    assert badges[0].description == "Vancouver International Airport"


def test_the_catalogue_is_data_a_campaign_can_use() -> None:
    campaign = {
        "starts_at": "2013-06-01T00:00:00-04:00",
        "ends_at": "2013-08-31T23:59:59-04:00",
        "timezone": "America/Toronto",
        "badges": msgspec.to_builtins(destination_badges(["YVR", "YUL"], milestones=(2,))),
    }
    rules = decode_rules(msgspec.json.encode(campaign))
    assert validate(rules) == []
    player = Player(rules).feed(
        [
            flight("2013-06-03T10:00:00Z", destination="YUL"),
            flight("2013-06-04T10:00:00Z", destination="JFK"),  # any destination counts
        ]
    )
    assert player.badges == {
        "yul": at("2013-06-03T10:00:00Z"),
        "destinations-2": at("2013-06-04T10:00:00Z"),
    }
    assert player.score == 1 + 5


def test_all_airports_of_a_country() -> None:
    codes = airport_codes("ca")
    assert {"YVR", "YYZ", "YUL"} <= set(codes)
    badges = destination_badges(country="CA", milestones=())
    assert len(badges) == len(codes) > 100
    rules = Rules(
        starts_at=at("2013-06-01T00:00:00Z"),
        ends_at=at("2013-07-01T00:00:00Z"),
        timezone="UTC",
        badges=badges,
    )
    assert validate(rules) == []


def test_unknown_codes_are_refused() -> None:
    with pytest.raises(ValueError, match="ZZZ"):
        destination_badges(["YVR", "ZZZ"])
    with pytest.raises(ValueError, match="codes or a country"):
        destination_badges()
