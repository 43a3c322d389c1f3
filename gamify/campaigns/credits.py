"""The identity of a credit a campaign owes a player: derived, never drawn at random.

A credit's id is its `webhook-id` toward the loyalty system, so the same credit must get the
same id whoever writes it (settlement of a pool, or the write path for a badge's reward) and
however often: a settlement redone after a crash, or a replayed event, can never credit a
player under a second id.
"""

from __future__ import annotations

import uuid

# The namespace of credit ids: uuid5 of "tenant/campaign/player/reason" in it.
CREDITS = uuid.UUID("6f1d3c1e-4a36-5b8e-9a55-2f0c1f7e9d21")
POOL = "pool"


def credit_id(tenant: str, campaign: str, player: str, reason: str = POOL) -> str:
    return "cr_" + uuid.uuid5(CREDITS, f"{tenant}/{campaign}/{player}/{reason}").hex


def reward_reason(badge: str) -> str:
    """The reason of the credit a badge's `reward` owes when it is awarded."""
    return f"badge:{badge}"
