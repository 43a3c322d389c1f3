"""The campaign document as the service checks it, for the OpenAPI document of POST /v1/campaigns.

The service checks a campaign in two halves, field by field so that a 400 names every problem:
`document.py` its own fields, `badges.decode_rules` the engine's (types, then meaning in
`badges/validate.py`). Neither half is a Struct a schema could come from, and the engine's
Structs type a threshold as any integer, leaving "at least 1" to validation. These Structs are
the one description of the whole: the same types, bounds and patterns, and in descriptions what
JSON Schema cannot say (ends_at after starts_at, unique badge ids, the prize pool's shares).
They decode nothing; tests/gamify/campaigns/test_campaign_schema.py keeps them in step with
what the service accepts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import available_timezones

import msgspec
from litestar.params import Parameter

from badges.criteria import Scalar
from badges.validate import MAX_POINTS
from gamify.campaigns.document import SECRET_PATTERN, SLUG, SLUG_BODY, PrizePool
from gamify.platform.openapi import inline_schema, schema_operation

# ISO 8601 durations of a fixed length, as badges.parse_duration reads them: weeks alone, or
# days and a time part (at least one of them, and no bare `T`). No lookahead, so that the
# pattern is one a schema-based generator can produce strings from.
_SECONDS = r"[0-9]+(?:[.,][0-9]{1,6})?S"
_TIME = rf"T(?:[0-9]+H(?:[0-9]+M)?(?:{_SECONDS})?|[0-9]+M(?:{_SECONDS})?|{_SECONDS})"
DURATION = rf"^P(?:[0-9]+W|[0-9]+D(?:{_TIME})?|{_TIME})$"

CampaignId = Annotated[str, Parameter(pattern=SLUG, description="the campaign's slug")]
# `after` of GET /v1/campaigns: the last id of the previous page, or nothing for the first.
CampaignCursor = Annotated[
    str,
    Parameter(
        pattern=rf"^(?:{SLUG_BODY})?$(?!\n)",
        description="the last id of the previous page",
    ),
]

NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
Values = Annotated[
    list[Scalar],
    msgspec.Meta(
        min_length=1,
        extra_json_schema={"uniqueItems": True},
        description="strings, numbers, booleans or null, each once (1 and 1.0 are one value)",
    ),
]
Where = Annotated[
    dict[NonEmpty, Scalar | Annotated[list[Scalar], msgspec.Meta(min_length=1)]],
    msgspec.Meta(
        description="Only events whose attributes equal these: each attribute the value, or "
        "one of the values of a list"
    ),
]
Threshold = Annotated[int, msgspec.Meta(ge=1)]


class _Criterion(msgspec.Struct, kw_only=True, tag_field="kind"):
    where: Where | None = None
    within: (
        Annotated[
            str,
            msgspec.Meta(
                pattern=DURATION,
                description="A rolling window (ISO 8601: weeks, days, hours, minutes, seconds; "
                "no years or months): longer than zero, at most 10 years. For `badges`, a "
                "deadline counted from starts_at",
            ),
        ]
        | None
    ) = None


class ValueCriterion(_Criterion, tag="value"):
    """An event whose `attribute` is one of `values`."""

    event: NonEmpty
    attribute: NonEmpty
    values: Values


class CountCriterion(_Criterion, tag="count"):
    """`threshold` matching events."""

    event: NonEmpty
    threshold: Threshold


class SumCriterion(_Criterion, tag="sum"):
    """The sum of the positive numbers in `attribute` over matching events reaches
    `threshold`."""

    event: NonEmpty
    attribute: NonEmpty
    threshold: Threshold


class DistinctCriterion(_Criterion, tag="distinct"):
    """`threshold` distinct values (strings or numbers) of `attribute`."""

    event: NonEmpty
    attribute: NonEmpty
    threshold: Threshold


class CollectionCriterion(_Criterion, tag="collection"):
    """Every one of `values` seen for `attribute`, or `min` of them (at most as many as
    listed)."""

    event: NonEmpty
    attribute: NonEmpty
    values: Values
    min: Threshold | None = None


class StreakCriterion(_Criterion, tag="streak"):
    """Matching events in `threshold` consecutive periods (days, or weeks from Monday) of the
    campaign's time zone."""

    event: NonEmpty
    threshold: Threshold
    period: Literal["day", "week"] = "day"


class BadgesCriterion(_Criterion, tag="badges"):
    """The player holds `min` (default all, at most as many as listed) of the badges in
    `values`: ids of badges of this campaign, with no cycle among them."""

    values: Annotated[
        list[NonEmpty], msgspec.Meta(min_length=1, extra_json_schema={"uniqueItems": True})
    ]
    min: Threshold | None = None


Criterion = (
    ValueCriterion
    | CountCriterion
    | SumCriterion
    | DistinctCriterion
    | CollectionCriterion
    | StreakCriterion
    | BadgesCriterion
)


class RewardSchema(msgspec.Struct, kw_only=True):
    """A credit delivered to the loyalty system when the badge is awarded."""

    amount: Annotated[int, msgspec.Meta(ge=1)]
    unit: NonEmpty


class BadgeSchema(msgspec.Struct, kw_only=True):
    id: Annotated[str, msgspec.Meta(min_length=1, description="unique among the badges")]
    name: NonEmpty
    criteria: Criterion
    points: Annotated[int, msgspec.Meta(ge=0, le=MAX_POINTS)] = 0
    reward: RewardSchema | None = None
    description: str | None = None


class ScoringRuleSchema(msgspec.Struct, kw_only=True):
    """`points` for every event of type `event` that passes `where`."""

    event: NonEmpty
    points: Annotated[int, msgspec.Meta(ge=0, le=MAX_POINTS)]
    where: Where | None = None


class LoyaltySchema(msgspec.Struct, forbid_unknown_fields=True):
    """Where credits are delivered; the secret is never shown again."""

    # document.Loyalty's `^https?://\S+$`, spelled for JSON Schema's regex dialect, where `\S`
    # would take the separators U+001C-U+001F and U+0085 that Python counts as white space.
    url: Annotated[str, msgspec.Meta(pattern=r"^https?://[^\s\x1c-\x1f\x85]+$", max_length=2000)]
    secret: Annotated[str, msgspec.Meta(min_length=16, max_length=200, pattern=SECRET_PATTERN)]


class CampaignSchema(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A campaign (API.md, "Campaigns"). Beyond what the schema says: ends_at is after
    starts_at, by at most 10 years; badge ids are unique; a `badges` criterion names badges of
    this campaign, without a cycle; a ranked prize pool has tiers (only it), whose shares add
    up to 1. Integers are written without a fraction or an exponent (1, not 1.0). Text may not
    contain U+0000. A 400 names every field at fault."""

    id: Annotated[str, msgspec.Meta(pattern=SLUG, description="a slug, unique in the tenant")]
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    description: Annotated[str, msgspec.Meta(max_length=5000)] | None = None
    starts_at: Annotated[
        AwareDatetime,
        msgspec.Meta(
            description="RFC 3339 with offset, from 1970 to 2200 UTC; may be in the past, "
            "and the campaign then takes the events already reported"
        ),
    ]
    ends_at: Annotated[
        AwareDatetime,
        msgspec.Meta(description="after starts_at, by at most 10 years; before 2200 UTC"),
    ]
    timezone: Annotated[
        str,
        msgspec.Meta(
            description="An IANA time zone: the days and weeks of streaks and window boards"
        ),
    ]
    grace: (
        Annotated[
            str,
            msgspec.Meta(
                pattern=DURATION,
                description="How long after ends_at late events still count (ISO 8601: "
                "weeks, days, hours, minutes, seconds); at most 30 days",
            ),
        ]
        | None
    ) = None
    badges: list[BadgeSchema]
    scoring: list[ScoringRuleSchema] = []
    leaderboards: Annotated[
        list[Literal["campaign", "daily", "weekly"]],
        msgspec.Meta(min_length=1, description='the boards kept; default ["campaign"]'),
    ] = msgspec.field(default_factory=lambda: ["campaign"])
    prize_pool: (
        Annotated[
            PrizePool,
            msgspec.Meta(
                description="`tiers` with the ranked split only (and then required), their "
                "shares adding up to 1"
            ),
        ]
        | None
    ) = None
    loyalty: LoyaltySchema | None = None


def campaign_schema() -> dict[str, Any]:
    """CampaignSchema's JSON Schema, its time zones listed: the names ZoneInfo finds (listing
    them reads every zone file, so it waits for the OpenAPI document to be built)."""
    schema = inline_schema(CampaignSchema)
    schema["properties"]["timezone"]["enum"] = sorted(available_timezones())
    return schema


CAMPAIGN_OPERATION = schema_operation(campaign_schema)
