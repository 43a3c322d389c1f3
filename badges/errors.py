"""Problems found in campaign rules, each with the path of the field at fault."""

from __future__ import annotations

import msgspec

__all__ = ["FieldError", "RulesError"]


class FieldError(msgspec.Struct, frozen=True):
    """`field` is a path such as `badges[3].criteria.threshold` (no `$.` prefix)."""

    field: str
    message: str


class RulesError(Exception):
    """Rules that cannot be used; `errors` lists every problem found."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        summary = "; ".join(f"{e.field or '(root)'}: {e.message}" for e in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        super().__init__(f"invalid campaign rules: {summary}{more}")
