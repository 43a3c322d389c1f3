"""Campaign JSON to `Rules`, reporting every problem rather than the first.

msgspec stops at the first error of a decode, so the campaign fields, each badge and each scoring
rule are converted separately, and semantic validation then runs on everything that decoded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final, TypeVar

import msgspec

from badges.errors import FieldError, RulesError
from badges.rules import AwareDatetime, Badge, Rules, ScoringRule
from badges.validate import validate_parts

__all__ = ["decode_rules"]

_T = TypeVar("_T")

_FAILED: Final = object()
_CAMPAIGN: Final[dict[str, Any]] = {
    "starts_at": AwareDatetime,
    "ends_at": AwareDatetime,
    "timezone": str,
    "grace": str | None,
}
_KINDS = "value, count, sum, distinct, collection, streak, badges"
_AT = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>.*)`)?$", re.DOTALL)
_MISSING_FIELD = re.compile(r"^Object missing required field `(?P<name>[^`]+)`$")
_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]|(\[\.\.\.\])")


def decode_rules(data: bytes | str | Mapping[str, Any]) -> Rules:
    """Decode and validate a campaign (JSON text or an already parsed object).

    Fields the engine does not use (`id`, `name`, `prize_pool`, ...) are ignored. Raises
    RulesError whose `.errors` name every problem found, with paths like
    `badges[3].criteria.threshold`.
    """
    raw = _parse(data)
    errors: list[FieldError] = []
    campaign = {
        name: _convert(raw[name], kind, name, errors)
        for name, kind in _CAMPAIGN.items()
        if name in raw
    }
    for name in ("starts_at", "ends_at", "timezone"):
        if name not in raw:
            errors.append(FieldError(name, "is required"))
    badges = _items(raw, "badges", Badge, errors)
    scoring = _items(raw, "scoring", ScoringRule, errors)
    # Counting entries is not enough: grace may be among them while timezone is missing.
    required = ("starts_at", "ends_at", "timezone")
    complete = all(name in campaign for name in required) and _FAILED not in campaign.values()
    rules = None
    if complete:
        rules = Rules(**campaign, badges=[b for _, b in badges], scoring=[s for _, s in scoring])
    failed_ids = [
        item["id"]
        for item in raw.get("badges") or ()
        if isinstance(item, dict) and isinstance(item.get("id"), str)
    ]
    errors += validate_parts(rules, badges, scoring, failed_ids)
    if errors or rules is None:
        raise RulesError(errors)
    return rules


def _parse(data: bytes | str | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(data, bytes | bytearray | memoryview | str):
        try:
            data = msgspec.json.decode(data)
        except msgspec.DecodeError as exc:
            raise RulesError([FieldError("", f"not valid JSON: {exc}")]) from None
    if not isinstance(data, Mapping):
        raise RulesError([FieldError("", "expected a JSON object")])
    return data


def _items(
    raw: Mapping[str, Any], name: str, kind: type[_T], errors: list[FieldError]
) -> list[tuple[int, _T]]:
    items = raw.get(name, [] if name == "scoring" else None)
    if items is None:
        errors.append(FieldError(name, "is required"))
        return []
    if not isinstance(items, list):
        errors.append(FieldError(name, "expected an array"))
        return []
    decoded = ((i, _convert(item, kind, f"{name}[{i}]", errors)) for i, item in enumerate(items))
    return [(i, value) for i, value in decoded if value is not _FAILED]


def _convert(value: Any, kind: Any, path: str, errors: list[FieldError]) -> Any:
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as exc:
        errors.append(_field_error(str(exc), path, value))
        return _FAILED


def _field_error(text: str, path: str, value: Any) -> FieldError:
    """msgspec's "Expected `int`, got `str` - at `$.criteria.threshold`" as a FieldError."""
    match = _AT.match(text)
    assert match is not None  # the pattern matches any text
    message, field = match["message"], path + _name_keys(match["path"] or "", value)
    if missing := _MISSING_FIELD.match(message):
        return FieldError(f"{field}.{missing['name']}", "is required")
    if field.endswith("criteria.kind") and message.startswith("Invalid value"):
        return FieldError(
            field,
            f"{message.removeprefix('Invalid value ')} is not a criteria kind; use one of {_KINDS}",
        )
    return FieldError(field, message)


def _name_keys(path: str, value: Any) -> str:
    """msgspec writes a bad value inside a dict as `where[...]`; name the key instead.

    The only dicts of the rules are `where` filters, so the bad key is the first whose value is
    neither a scalar nor a list of scalars.
    """
    if "[...]" not in path:
        return path
    out = ""
    for name, index, unknown in _STEP.findall(path):
        if unknown:
            bad = None
            if isinstance(value, dict):
                bad = next((k for k, v in value.items() if not _where_value(v)), None)
            if bad is None:
                return path
            out, value = f"{out}.{bad}", value[bad]
        elif index:
            items = value if isinstance(value, list) else []
            out, value = f"{out}[{index}]", items[int(index)] if int(index) < len(items) else None
        else:
            out, value = f"{out}.{name}", value.get(name) if isinstance(value, dict) else None
    return out


def _where_value(value: Any) -> bool:
    def scalar(v: Any) -> bool:
        return v is None or isinstance(v, str | int | float | bool)

    return scalar(value) or (isinstance(value, list) and all(scalar(v) for v in value))
