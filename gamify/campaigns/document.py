"""A campaign document: the service's fields around the engine's rules, and its status.

The engine (`badges.decode_rules`) checks badges, scoring, dates, time zone and grace; this
module checks what the service owns (id, name, leaderboards, prize pool, loyalty endpoint) and
reports every problem of both with its field path.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Annotated, Any, Literal

import msgspec

import badges
from gamify.campaigns.tiers import tier_problems
from gamify.platform.problems import FieldProblem, field_problem_from_message

SECRET_PREFIX = "whsec_"
# A Standard Webhooks secret: whsec_ and a (non-empty, padded) base64 key.
SECRET_PATTERN = (
    r"^whsec_(?:[A-Za-z0-9+/]{4})*"
    r"(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})$(?!\n)"
)
# In Python `$` also matches before a final newline; the lookahead keeps "wings\n" out.
SLUG_BODY = r"[a-z0-9][a-z0-9_-]{0,62}"
SLUG = rf"^{SLUG_BODY}$(?!\n)"
# Fields that only matter for presentation or delivery: changeable after the start.
MUTABLE_WHEN_LIVE = frozenset({"name", "description", "loyalty"})
# scheduled -> live -> ended -> settling -> settled, or cancelled before it settles: the first
# three follow the clock, the others what settlement wrote (see campaigns.clock).
Status = Literal["scheduled", "live", "ended", "settling", "settled", "cancelled"]


class Eligibility(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    min_badges: Annotated[int, msgspec.Meta(ge=0)] = 0
    min_score: Annotated[int, msgspec.Meta(ge=0)] = 0


class Tier(msgspec.Struct, forbid_unknown_fields=True):
    ranks: Annotated[str, msgspec.Meta(pattern=r"^[1-9][0-9]*(-([1-9][0-9]*)?)?$")]
    share: Annotated[float, msgspec.Meta(gt=0, le=1)]


class PrizePool(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    amount: Annotated[int, msgspec.Meta(ge=1)]
    unit: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    split: Literal["equal", "proportional", "ranked"]
    basis: Literal["badges", "score"] = "score"
    eligibility: Eligibility | None = None
    tiers: list[Tier] | None = None
    max_per_player: Annotated[int, msgspec.Meta(ge=1)] | None = None


class Loyalty(msgspec.Struct, forbid_unknown_fields=True):
    url: Annotated[str, msgspec.Meta(pattern=r"^https?://\S+$", max_length=2000)]
    secret: Annotated[str, msgspec.Meta(min_length=16, max_length=200)]


_SERVICE_FIELDS: dict[str, Any] = {
    "id": Annotated[str, msgspec.Meta(pattern=SLUG)],
    "name": Annotated[str, msgspec.Meta(min_length=1, max_length=200)],
    "description": Annotated[str, msgspec.Meta(max_length=5000)] | None,
    "leaderboards": Annotated[
        list[Literal["campaign", "daily", "weekly"]], msgspec.Meta(min_length=1)
    ],
    "prize_pool": PrizePool | None,
    "loyalty": Loyalty | None,
}
_REQUIRED = ("id", "name")
_ENGINE_FIELDS = frozenset({"starts_at", "ends_at", "timezone", "grace", "badges", "scoring"})


class Campaign(msgspec.Struct, kw_only=True):
    """A validated campaign: its document and the engine's rules decoded from it."""

    id: str
    name: str
    document: dict[str, Any]
    rules: badges.Rules

    @property
    def grace(self) -> timedelta:
        return badges.parse_duration(self.rules.grace) if self.rules.grace else timedelta(0)

    @property
    def score_bits(self) -> int:
        """The board encoding's time bits for this campaign's length (stored: see
        migrations/0005)."""
        return time_bits(self.rules.ends_at + self.grace - self.rules.starts_at)

    @property
    def leaderboards(self) -> list[str]:
        boards: list[str] = self.document.get("leaderboards") or ["campaign"]
        return boards


def time_bits(span: timedelta) -> int:
    """Bits for every whole second of `span` (the campaign with its grace): the `k` of the
    boards' score encoding (see boards.encoding), which ranks equal points by when reached."""
    seconds = max(1, math.ceil(span.total_seconds()) + 1)
    return max(1, seconds.bit_length())


class CampaignInvalid(Exception):
    def __init__(self, errors: list[FieldProblem]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


def parse(document: Any) -> Campaign:
    """Check a whole campaign document; raises CampaignInvalid naming every bad field."""
    if not isinstance(document, dict):
        raise CampaignInvalid([FieldProblem("body", "expected a JSON object")])
    errors: list[FieldProblem] = []
    for name, kind in _SERVICE_FIELDS.items():
        if name in document:
            try:
                msgspec.convert(document[name], kind)
            except msgspec.ValidationError as exc:
                errors.append(field_problem_from_message(str(exc), name))
        elif name in _REQUIRED:
            errors.append(FieldProblem(name, "is required"))
    unknown = sorted(set(document) - set(_SERVICE_FIELDS) - _ENGINE_FIELDS)
    errors += [FieldProblem(name, "unknown field") for name in unknown]
    rules: badges.Rules | None = None
    try:
        rules = badges.decode_rules(document)
    except badges.RulesError as exc:
        errors += [FieldProblem(e.field or "body", e.message) for e in exc.errors]
    if not any(e.field.startswith("prize_pool") for e in errors):
        errors += _pool_problems(document.get("prize_pool"))
    if not any(e.field.startswith("loyalty") for e in errors):
        errors += _loyalty_problems(document.get("loyalty"))
    if errors or rules is None:
        raise CampaignInvalid(errors)
    return Campaign(id=document["id"], name=document["name"], document=document, rules=rules)


def _pool_problems(pool: Any) -> list[FieldProblem]:
    if not isinstance(pool, dict):
        return []
    tiers = pool.get("tiers")
    if pool.get("split") == "ranked" and not tiers:
        return [FieldProblem("prize_pool.tiers", "a ranked split needs tiers")]
    if tiers and pool.get("split") != "ranked":
        return [FieldProblem("prize_pool.tiers", "tiers apply to the ranked split only")]
    # The tiers settlement will split by: no overlap, no gap, shares exactly 1.
    if not tiers:
        return []
    return [FieldProblem(field, message) for field, message in tier_problems(tiers)]


def _loyalty_problems(loyalty: Any) -> list[FieldProblem]:
    # Credits are signed per Standard Webhooks, whose secrets are `whsec_` + base64.
    if not isinstance(loyalty, dict):
        return []
    if re.fullmatch(SECRET_PATTERN, str(loyalty.get("secret", ""))):
        return []
    return [FieldProblem("loyalty.secret", "expected whsec_ followed by a base64 key")]


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch: objects merge, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def changed_fields(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


def redacted(document: dict[str, Any]) -> dict[str, Any]:
    """The document as the API shows it: the loyalty secret is never read back."""
    loyalty = document.get("loyalty")
    if not isinstance(loyalty, dict) or "secret" not in loyalty:
        return document
    return {**document, "loyalty": {**loyalty, "secret": SECRET_PREFIX + "…"}}
