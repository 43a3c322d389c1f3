"""The identity of a credit a campaign owes a player: derived, never drawn at random.

A credit's id is its `webhook-id` toward the loyalty system, so the same credit must get the
same id whoever writes it (settlement of a pool, or the write path for a badge's reward) and
however often: a settlement redone after a crash, or a replayed event, can never credit a
player under a second id.
"""

from __future__ import annotations

from hashlib import blake2b

POOL = "pool"


def credit_id(tenant: str, campaign: str, player: str, reason: str = POOL) -> str:
    """`cr_` and 128 bits of BLAKE2b over "tenant/campaign/player/reason" (a settlement derives
    a million of them: a uuid5 object each cost eight times as much)."""
    key = f"gamify-credit/{tenant}/{campaign}/{player}/{reason}".encode()
    return "cr_" + blake2b(key, digest_size=16).hexdigest()


def reward_reason(badge: str) -> str:
    """The reason of the credit a badge's `reward` owes when it is awarded."""
    return f"badge:{badge}"
