"""What the packages above campaigns do when a campaign changes.

campaigns lies below them (see the README's architecture), so it cannot call them: they
register here when the app is wired, and campaigns tells whoever registered.
"""

from __future__ import annotations

from collections.abc import Callable

Listener = Callable[[str, str], object]  # (tenant, campaign id)


class CampaignHooks:
    def __init__(self) -> None:
        self._backfill_owed: list[Listener] = []

    def on_backfill_owed(self, listener: Listener) -> None:
        """`listener` hears of a campaign that owes the events stored before it (created or
        moved to start in the past)."""
        self._backfill_owed.append(listener)

    def backfill_owed(self, tenant: str, campaign: str) -> None:
        for listener in self._backfill_owed:
            listener(tenant, campaign)
