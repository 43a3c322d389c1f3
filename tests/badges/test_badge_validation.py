"""Every problem of a campaign is reported at once, each at its field path."""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import pytest

from badges import FieldError, RulesError, compile_rules, decode_rules, validate

CAMPAIGN: dict[str, Any] = {
    "id": "earn-your-wings",
    "name": "Earn your wings",
    "starts_at": "2013-06-01T00:00:00-04:00",
    "ends_at": "2013-08-31T23:59:59-04:00",
    "timezone": "America/Toronto",
    "grace": "PT12H",
    "badges": [
        {
            "id": "yvr",
            "name": "Vancouver",
            "points": 1,
            "criteria": {
                "kind": "value",
                "event": "flight.completed",
                "attribute": "destination",
                "values": ["YVR"],
            },
        },
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
        "amount": 10000000,
        "unit": "miles",
        "split": "proportional",
        "basis": "badges",
        "eligibility": {"min_badges": 1},
    },
    "loyalty": {"url": "https://loyalty.example/credits", "secret": "whsec_..."},
}


def errors_of(data: Any) -> list[FieldError]:
    with pytest.raises(RulesError) as caught:
        decode_rules(data)
    return caught.value.errors


def with_badge(criteria: dict[str, Any], **fields: Any) -> dict[str, Any]:
    data = copy.deepcopy(CAMPAIGN)
    data["badges"].append({"id": "new", "name": "New", "criteria": criteria, **fields})
    return data


def test_the_api_example_decodes_and_its_service_fields_are_ignored() -> None:
    rules = decode_rules(json.dumps(CAMPAIGN))
    assert [b.id for b in rules.badges] == ["yvr", "explorer"]
    assert rules.grace == "PT12H"
    assert validate(rules) == []
    assert decode_rules(CAMPAIGN) == decode_rules(json.dumps(CAMPAIGN).encode())


FLIGHT = {"event": "flight.completed"}
BAD_BADGES = [
    ({"kind": "streaks", **FLIGHT, "threshold": 2}, "badges[2].criteria.kind", "not a criteria"),
    ({"kind": "count", **FLIGHT}, "badges[2].criteria.threshold", "required"),
    ({"kind": "count", **FLIGHT, "threshold": -1}, "badges[2].criteria.threshold", "at least 1"),
    ({"kind": "count", **FLIGHT, "threshold": 0}, "badges[2].criteria.threshold", "at least 1"),
    ({"kind": "count", **FLIGHT, "threshold": "3"}, "badges[2].criteria.threshold", "int"),
    ({"kind": "count", "threshold": 3}, "badges[2].criteria.event", "required"),
    ({"kind": "sum", **FLIGHT, "threshold": 3}, "badges[2].criteria.attribute", "required"),
    (
        {"kind": "value", **FLIGHT, "attribute": "d", "values": []},
        "badges[2].criteria.values",
        "at least one",
    ),
    (
        {"kind": "value", **FLIGHT, "attribute": "d", "values": ["A", "A"]},
        "badges[2].criteria.values[1]",
        "duplicate",
    ),
    (
        {"kind": "collection", **FLIGHT, "attribute": "d", "values": ["A", "B"], "min": 3},
        "badges[2].criteria.min",
        "more than the 2 values",
    ),
    (
        {"kind": "collection", **FLIGHT, "attribute": "d", "values": ["A"], "min": 0},
        "badges[2].criteria.min",
        "at least 1",
    ),
    (
        {"kind": "count", **FLIGHT, "threshold": 3, "within": "P1M"},
        "badges[2].criteria.within",
        "months",
    ),
    (
        {"kind": "count", **FLIGHT, "threshold": 3, "within": "thirty days"},
        "badges[2].criteria.within",
        "ISO 8601",
    ),
    (
        {"kind": "count", **FLIGHT, "threshold": 3, "within": "PT0S"},
        "badges[2].criteria.within",
        "longer than zero",
    ),
    (
        {"kind": "streak", **FLIGHT, "threshold": 3, "period": "month"},
        "badges[2].criteria.period",
        "Invalid enum value",
    ),
    (
        {"kind": "count", **FLIGHT, "threshold": 3, "where": {"cabin": []}},
        "badges[2].criteria.where.cabin",
        "at least one",
    ),
    (
        {"kind": "count", **FLIGHT, "threshold": 3, "where": {"cabin": {"a": 1}}},
        "badges[2].criteria.where.cabin",
        "Expected",
    ),
    (
        {"kind": "badges", "values": ["yvr", "nope"]},
        "badges[2].criteria.values[1]",
        "unknown badge 'nope'",
    ),
    ({"kind": "badges", "values": ["yvr"], "min": 2}, "badges[2].criteria.min", "more than"),
    ({"kind": "badges", "values": ["new"]}, "badges[2].criteria.values", "cycle: new -> new"),
]


@pytest.mark.parametrize(("criteria", "field", "message"), BAD_BADGES)
def test_a_bad_criterion_is_reported_at_its_path(
    criteria: dict[str, Any], field: str, message: str
) -> None:
    errors = errors_of(with_badge(criteria))
    assert [e.field for e in errors] == [field]
    assert message in errors[0].message


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"timezone": "America/Torontoo"}, "timezone", "unknown time zone"),
        ({"timezone": ""}, "timezone", "unknown time zone"),
        ({"grace": "12 hours"}, "grace", "ISO 8601"),
        ({"starts_at": "2013-06-01T00:00:00"}, "starts_at", "timezone"),
        ({"ends_at": "2013-05-01T00:00:00-04:00"}, "ends_at", "after starts_at"),
        ({"starts_at": None}, "starts_at", "Expected `datetime`"),
        ({"badges": {}}, "badges", "array"),
        (
            {"scoring": [{"event": "flight.completed", "points": -1}]},
            "scoring[0].points",
            "negative",
        ),
        ({"scoring": [{"points": 1}]}, "scoring[0].event", "required"),
    ],
)
def test_a_bad_campaign_field_is_reported_at_its_path(
    change: dict[str, Any], field: str, message: str
) -> None:
    errors = errors_of({**CAMPAIGN, **change})
    assert [e.field for e in errors] == [field]
    assert message in errors[0].message


def test_badge_fields_are_checked_too() -> None:
    errors = errors_of(
        with_badge(
            {"kind": "count", **FLIGHT, "threshold": 1}, points=-5, reward={"amount": 0, "unit": ""}
        )
    )
    assert [e.field for e in errors] == [
        "badges[2].points",
        "badges[2].reward.amount",
        "badges[2].reward.unit",
    ]


def test_every_problem_is_reported_at_once() -> None:
    data = copy.deepcopy(CAMPAIGN)
    data["timezone"] = "Mars/Olympus_Mons"
    data["badges"][0]["criteria"]["kind"] = "nope"  # cannot decode: does not hide the others
    data["badges"][1]["criteria"]["threshold"] = -3
    data["badges"].append(copy.deepcopy(data["badges"][1]))
    data["badges"].append(
        {
            "id": "all",
            "name": "All",
            "criteria": {"kind": "badges", "values": ["yvr", "explorer", "ghost"]},
        }
    )
    fields = {e.field for e in errors_of(data)}
    assert fields == {
        "timezone",
        "badges[0].criteria.kind",
        "badges[1].criteria.threshold",
        "badges[2].id",  # duplicate of badges[1]
        "badges[2].criteria.threshold",
        "badges[3].criteria.values[2]",  # "ghost"; "yvr" failed to decode but exists
    }


def test_a_cycle_through_several_badges_is_named() -> None:
    data = copy.deepcopy(CAMPAIGN)
    data["badges"] += [
        {"id": "a", "name": "A", "criteria": {"kind": "badges", "values": ["b", "yvr"]}},
        {"id": "b", "name": "B", "criteria": {"kind": "badges", "values": ["c"]}},
        {"id": "c", "name": "C", "criteria": {"kind": "badges", "values": ["a"]}},
    ]
    errors = errors_of(data)
    assert [(e.field, e.message) for e in errors] == [
        ("badges[2].criteria.values", "badges form a cycle: a -> b -> c -> a")
    ]


def test_not_json_and_not_an_object() -> None:
    assert errors_of(b"{")[0].field == ""
    assert errors_of("[1, 2]")[0].message == "expected a JSON object"
    assert {e.field for e in errors_of({})} == {"starts_at", "ends_at", "timezone", "badges"}


def test_compile_rules_refuses_invalid_rules() -> None:
    rules = decode_rules(CAMPAIGN)
    rules.badges[0].points = -1
    with pytest.raises(RulesError) as caught:
        compile_rules(rules)
    assert caught.value.errors == [FieldError("badges[0].points", "must not be negative")]


def test_a_thousand_badges_validate_fast() -> None:
    data = copy.deepcopy(CAMPAIGN)
    data["badges"] = [
        {
            "id": f"b{i}",
            "name": f"Badge {i}",
            "points": 1,
            "criteria": (
                {"kind": "badges", "values": [f"b{i - 1}", f"b{i - 2}"], "min": 1}
                if i % 10 == 9
                else {
                    "kind": "value",
                    "event": "flight.completed",
                    "attribute": "destination",
                    "values": [f"A{i:03d}"],
                    "where": {"cabin": ["business", "first"]},
                    "within": "P30D",
                }
            ),
        }
        for i in range(1000)
    ]
    text = json.dumps(data)
    began = time.perf_counter()
    rules = decode_rules(text)
    compile_rules(rules)
    elapsed = time.perf_counter() - began
    assert len(rules.badges) == 1000
    assert elapsed < 2.0  # about 50 ms here; generous for slow CI machines
