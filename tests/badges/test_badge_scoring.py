"""Score = badge points + scoring points; reached_at breaks leaderboard ties; windows."""

from __future__ import annotations

from badges import points_timeline, score, window_score
from tests.badges.badge_kit import Player, at, badge, campaign, event, flight

RULES = campaign(
    badge(
        "yvr",
        points=10,
        kind="value",
        event="flight.completed",
        attribute="destination",
        values=["YVR"],
    ),
    badge("two", points=0, kind="count", event="flight.completed", threshold=2),
    scoring=[
        {"event": "flight.completed", "points": 1},
        {"event": "flight.completed", "points": 2, "where": {"cabin": ["business", "first"]}},
        {"event": "app.opened", "points": 0},
    ],
)


def test_score_adds_badge_points_and_scoring_points() -> None:
    player = Player(RULES)
    player.send(event("app.opened", "2013-06-02T10:00:00Z"))
    assert score(player.state) == (0, None)
    player.send(flight("2013-06-03T10:00:00Z", cabin="business"))  # 1 + 2
    effects = player.send(flight("2013-06-04T10:00:00Z", destination="YVR"))  # 1 + 10
    assert (effects.score_before, effects.score_after) == (3, 14)
    assert effects.reached_at_before == at("2013-06-03T10:00:00Z")
    assert effects.reached_at_after == at("2013-06-04T10:00:00Z")
    assert score(player.state) == (14, at("2013-06-04T10:00:00Z"))


def test_reached_at_is_when_the_current_score_was_first_reached() -> None:
    player = Player(RULES).feed(
        [
            flight("2013-06-03T10:00:00Z", destination="YVR"),
            flight("2013-06-10T10:00:00Z", destination="YVR"),
        ]
    )
    assert score(player.state) == (12, at("2013-06-10T10:00:00Z"))
    # A late event adds a point earlier: the total grows, reached_at stays the last point.
    effects = player.send(flight("2013-06-01T10:00:00Z"))
    assert (effects.score_after, effects.reached_at_after) == (13, at("2013-06-10T10:00:00Z"))


def test_zero_point_badges_and_rules_do_not_move_reached_at() -> None:
    player = Player(RULES).feed(
        [
            flight("2013-06-03T10:00:00Z"),
            event("app.opened", "2013-06-05T10:00:00Z"),
            flight("2013-06-04T10:00:00Z"),  # completes "two" (0 points)
        ]
    )
    assert "two" in player.badges
    assert score(player.state) == (2, at("2013-06-04T10:00:00Z"))


def test_the_timeline_and_window_scores_of_the_leaderboard() -> None:
    player = Player(RULES).feed(
        [
            flight("2013-06-03T10:00:00Z", cabin="first"),  # 3 on Monday
            flight("2013-06-09T23:30:00-04:00", destination="YVR"),  # 11 on Sunday, Toronto time
            flight("2013-06-10T00:30:00-04:00"),  # 1 on the next Monday
        ]
    )
    assert points_timeline(player.engine, player.state) == [
        (at("2013-06-03T10:00:00Z"), 3),
        (at("2013-06-10T03:30:00Z"), 1),
        (at("2013-06-10T03:30:00Z"), 10),
        (at("2013-06-10T04:30:00Z"), 1),
    ]
    week = (at("2013-06-03T00:00:00-04:00"), at("2013-06-10T00:00:00-04:00"))
    assert window_score(player.engine, player.state, *week) == (14, at("2013-06-09T23:30:00-04:00"))
    next_week = (week[1], at("2013-06-17T00:00:00-04:00"))
    assert window_score(player.engine, player.state, *next_week) == (
        1,
        at("2013-06-10T00:30:00-04:00"),
    )
    assert window_score(player.engine, None, *week) == (0, None)


def test_window_scores_survive_the_history_cap() -> None:
    from badges import compile_rules

    engine = compile_rules(RULES, history_cap=2)
    player = Player(engine).feed(
        [flight(f"2013-06-{day:02d}T{hour:02d}:00:00Z") for day in (3, 4, 5) for hour in (9, 10)]
    )
    assert player.state is not None and player.state.checkpoint is not None
    day = (at("2013-06-04T00:00:00Z"), at("2013-06-05T00:00:00Z"))
    assert window_score(engine, player.state, *day) == (2, at("2013-06-04T10:00:00Z"))
    assert sum(points for _, points in points_timeline(engine, player.state)) == 6
