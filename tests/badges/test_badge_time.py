"""Time: streak days across DST changes in America/Toronto, and the campaign's edges."""

from __future__ import annotations

from datetime import timedelta

from tests.badges.badge_kit import Player, at, badge, campaign, event, flight

SPRING = {"starts_at": "2013-03-01T00:00:00-05:00", "ends_at": "2013-03-31T00:00:00-04:00"}
FALL = {"starts_at": "2013-10-25T00:00:00-04:00", "ends_at": "2013-11-30T00:00:00-05:00"}


def three_days(**fields: str) -> Player:
    return Player(
        campaign(badge("three-days", kind="streak", event="app.opened", threshold=3), **fields)
    )


def test_a_streak_over_the_23_hour_day_of_spring_forward() -> None:
    # 2013-03-10 is 23 hours long in Toronto: 02:00 EST jumps to 03:00 EDT.
    player = three_days(**SPRING).feed(
        [
            event("app.opened", "2013-03-09T23:30:00-05:00"),
            event("app.opened", "2013-03-10T00:30:00-05:00"),  # one hour later, the next day
            event("app.opened", "2013-03-11T23:59:00-04:00"),
        ]
    )
    assert player.badges == {"three-days": at("2013-03-11T23:59:00-04:00")}


def test_late_evening_utc_is_still_the_same_toronto_day_after_spring_forward() -> None:
    player = three_days(**SPRING).feed(
        [
            event("app.opened", "2013-03-09T12:00:00-05:00"),
            event("app.opened", "2013-03-10T12:00:00-04:00"),
            event("app.opened", "2013-03-11T03:30:00Z"),  # 2013-03-10 23:30 EDT: same day
        ]
    )
    assert player.badges == {}
    player.send(event("app.opened", "2013-03-11T04:00:00Z"))  # 2013-03-11 00:00 EDT
    assert player.badges == {"three-days": at("2013-03-11T00:00:00-04:00")}


def test_a_streak_over_the_25_hour_day_of_fall_back() -> None:
    # 2013-11-03 is 25 hours long: 01:00-02:00 happens twice (EDT, then EST).
    player = three_days(**FALL).feed(
        [
            event("app.opened", "2013-11-02T23:00:00-04:00"),
            event("app.opened", "2013-11-03T01:30:00-04:00"),  # the first 01:30
            event("app.opened", "2013-11-03T23:30:00-05:00"),  # 24 hours after the first: same day
        ]
    )
    assert player.badges == {}
    player.send(event("app.opened", "2013-11-04T00:10:00-05:00"))
    assert player.badges == {"three-days": at("2013-11-04T00:10:00-05:00")}


def test_weeks_start_on_monday_in_toronto_even_when_utc_says_otherwise() -> None:
    rules = campaign(
        badge("two-weeks", kind="streak", event="app.opened", threshold=2, period="week"),
        **SPRING,
    )
    player = Player(rules).feed(
        [
            event("app.opened", "2013-03-11T03:30:00Z"),  # Sunday 2013-03-10 23:30 in Toronto
            event("app.opened", "2013-03-11T03:45:00Z"),  # still Sunday: the same week
        ]
    )
    assert player.badges == {}
    player.send(event("app.opened", "2013-03-11T04:00:00Z"))  # Monday 00:00: the next week
    assert player.badges == {"two-weeks": at("2013-03-11T04:00:00Z")}


def test_events_exactly_at_starts_at_and_at_ends_at_plus_grace_count() -> None:
    rules = campaign(badge("two", points=1, kind="count", event="flight.completed", threshold=2))
    starts, last = at("2013-06-01T00:00:00-04:00"), at("2013-09-01T11:59:59-04:00")
    player = Player(rules).feed(
        [
            flight(starts.isoformat()),
            flight((last + timedelta(microseconds=1)).isoformat()),  # after ends_at + PT12H
            flight((starts - timedelta(microseconds=1)).isoformat()),  # before starts_at
        ]
    )
    assert player.badges == {}
    player.send(flight(last.isoformat()))
    assert player.badges == {"two": last}


def test_without_grace_the_campaign_ends_at_ends_at() -> None:
    rules = campaign(badge("one", kind="count", event="flight.completed", threshold=1), grace=None)
    player = Player(rules).feed([flight("2013-09-01T03:59:59.000001Z")])
    assert player.badges == {}
    player.send(flight("2013-09-01T03:59:59Z"))
    assert player.badges == {"one": at("2013-08-31T23:59:59-04:00")}


def test_award_times_equal_the_occurred_at_of_the_completing_event() -> None:
    rules = campaign(badge("one", kind="count", event="flight.completed", threshold=1))
    moment = at("2013-06-03T14:05:00.123456+05:45")
    player = Player(rules)
    effects = player.send(flight(moment.isoformat()))
    assert effects.awarded[0].awarded_at == moment
    assert player.badges["one"] == moment
