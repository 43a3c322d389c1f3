"""What the packages above campaigns do when a campaign changes.

campaigns lies below them (see the README's architecture), so it cannot call them: they
register here when the app is wired, and campaigns tells whoever registered.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

Listener = Callable[[str, str], object]  # (tenant, campaign id)
Settler = Callable[[str, str], Awaitable[object]]


class CampaignHooks:
    def __init__(self) -> None:
        self._backfill_owed: list[Listener] = []
        self._settlers: list[Settler] = []

    def on_backfill_owed(self, listener: Listener) -> None:
        """`listener` hears of a campaign that owes the events stored before it (created or
        moved to start in the past)."""
        self._backfill_owed.append(listener)

    def backfill_owed(self, tenant: str, campaign: str) -> None:
        for listener in self._backfill_owed:
            listener(tenant, campaign)

    def on_settlement_due(self, settler: Settler) -> None:
        """`settler` settles a campaign whose time came (ends_at + grace passed); it is called
        by the clock of every instance, and must act once (under a row lock) and be safe to
        call again for a campaign already settled."""
        self._settlers.append(settler)

    async def settlement_due(self, tenant: str, campaign: str) -> None:
        for settler in self._settlers:
            await settler(tenant, campaign)
