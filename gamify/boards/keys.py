"""Redis key names of the boards."""

from __future__ import annotations

from datetime import date


def tag(tenant: str, campaign: str) -> str:
    # Tenant and campaign ids are slugs (no braces or colons), so the tag is unambiguous.
    return f"lb:{{{tenant}:{campaign}}}"


def board(tenant: str, campaign: str, name: str = "campaign", period: date | None = None) -> str:
    base = f"{tag(tenant, campaign)}:{name}"
    return base if period is None else f"{base}:{period.isoformat()}"


def ready(tenant: str, campaign: str) -> str:
    """Present once the campaign's boards were built from Postgres."""
    return f"{tag(tenant, campaign)}:ready"


def version(board_key: str, player: str) -> str:
    """The version of the player's last write to a window board (see gamify_write in
    functions.lua); the board's key carries the campaign's hash tag."""
    return f"{board_key}:v:{player}"


def rebuilding(tenant: str, campaign: str) -> str:
    return f"{tag(tenant, campaign)}:rebuilding"


# The reconciler's, shared by every instance (one key each, so any cluster slot will do).
RECONCILING = "gamify:reconciling"  # held by the instance making a pass
RECONCILED = "gamify:reconciled"  # when the last pass started (ISO 8601)
