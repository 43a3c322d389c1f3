"""Compiled campaign rules, cached per instance and recompiled when a campaign's version moves."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import msgspec

import badges
from gamify.campaigns.document import Campaign, parse
from gamify.campaigns.store import OpenCampaign
from gamify.campaigns.windows import WINDOW_RETENTION, WINDOWS


class CompiledCampaign(msgspec.Struct, frozen=True):
    """A campaign ready for the write path; everything derived once, when compiled, since the
    write path asks for it for every event."""

    id: str
    version: int
    campaign: Campaign
    engine: badges.Engine
    starts_at: datetime
    closes_at: datetime  # ends_at + grace
    zone: ZoneInfo
    windows: tuple[str, ...]  # the window boards the campaign names (`daily`, `weekly`)
    bits: int  # time bits of the board encoding, as stored (see document.time_bits)
    rewards: dict[str, tuple[int, str]]  # badge id -> (amount, unit) of its reward credit

    @classmethod
    def build(cls, campaign_id: str, version: int, parsed: Campaign, bits: int) -> CompiledCampaign:
        rules = parsed.rules
        closes_at = rules.ends_at + parsed.grace
        return cls(
            campaign_id,
            version,
            parsed,
            badges.compile_rules(rules),
            rules.starts_at,
            closes_at,
            ZoneInfo(rules.timezone),
            tuple(b for b in parsed.leaderboards if b in WINDOWS),
            bits,
            {b.id: (b.reward.amount, b.reward.unit) for b in rules.badges if b.reward},
        )

    @property
    def windows_expire_at(self) -> int:
        """When the campaign's window boards leave Redis, in Unix seconds."""
        return int((self.closes_at + WINDOW_RETENTION).timestamp())

    def counts(self, occurred_at: datetime) -> bool:
        """Whether an event at `occurred_at` falls inside [starts_at, ends_at + grace]."""
        return self.starts_at <= occurred_at <= self.closes_at


class EngineCache:
    def __init__(self) -> None:
        self._compiled: dict[tuple[str, str], CompiledCampaign] = {}

    def get(self, tenant: str, open_campaign: OpenCampaign) -> CompiledCampaign:
        key = (tenant, open_campaign.id)
        cached = self._compiled.get(key)
        if cached is None or cached.version != open_campaign.version:
            # Stored documents were validated when written; parsing again cannot fail.
            parsed = parse(open_campaign.document)
            cached = CompiledCampaign.build(
                open_campaign.id, open_campaign.version, parsed, open_campaign.score_bits
            )
            self._compiled[key] = cached
        return cached
