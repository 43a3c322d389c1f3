"""Compiled campaign rules, cached per instance and recompiled when a campaign's version moves."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import msgspec

import badges
from gamify import campaign
from gamify.boards import encoding
from gamify.boards.windows import WINDOWS
from gamify.store.campaigns import OpenCampaign


class CompiledCampaign(msgspec.Struct, frozen=True, dict=True):
    id: str
    version: int
    campaign: campaign.Campaign
    engine: badges.Engine

    def counts(self, occurred_at: datetime) -> bool:
        """Whether an event at `occurred_at` falls inside [starts_at, ends_at + grace]."""
        rules = self.campaign.rules
        return rules.starts_at <= occurred_at <= rules.ends_at + self.campaign.grace

    @property
    def starts_at(self) -> datetime:
        return self.campaign.rules.starts_at

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.campaign.rules.timezone)

    @property
    def windows(self) -> list[str]:
        """The window boards the campaign names (`daily`, `weekly`)."""
        return [b for b in self.campaign.leaderboards if b in WINDOWS]

    @property
    def bits(self) -> int:
        """Time bits of the board encoding (see boards.encoding)."""
        rules = self.campaign.rules
        return encoding.time_bits(rules.ends_at + self.campaign.grace - rules.starts_at)


class EngineCache:
    def __init__(self) -> None:
        self._compiled: dict[tuple[str, str], CompiledCampaign] = {}

    def get(self, tenant: str, open_campaign: OpenCampaign) -> CompiledCampaign:
        key = (tenant, open_campaign.id)
        cached = self._compiled.get(key)
        if cached is None or cached.version != open_campaign.version:
            # Stored documents were validated when written; parsing again cannot fail.
            parsed = campaign.parse(open_campaign.document)
            cached = CompiledCampaign(
                open_campaign.id, open_campaign.version, parsed, badges.compile_rules(parsed.rules)
            )
            self._compiled[key] = cached
        return cached
