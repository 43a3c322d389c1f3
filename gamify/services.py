"""What a running app holds: settings, connections and the parts built on them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg
from cachetools import TTLCache
from litestar.connection import ASGIConnection
from redis.asyncio import Redis

from gamify.backfill import Backfills
from gamify.boards.batch import ReadBatcher
from gamify.boards.service import Boards
from gamify.coalesce import Coalescer
from gamify.engines import EngineCache
from gamify.settings import Settings

# A rename shows at once on the instance that took it, and within this long on the others.
NAMES_TTL = 60.0
# A revoked key keeps working on an instance for at most this long.
KEY_CACHE_SECONDS = 10.0
TOP_PAGE_TTL = 0.25


@dataclass
class Services:
    settings: Settings
    db: asyncpg.Pool
    redis: Redis
    # The newest migration this code knows; /ready compares the database against it.
    schema_version: int
    engines: EngineCache = field(default_factory=EngineCache)
    boards: Boards = field(init=False)
    reads: ReadBatcher = field(init=False)
    coalescer: Coalescer = field(init=False)
    backfills: Backfills = field(init=False)
    # Display names for board entries: (tenant, player) -> name, for NAMES_TTL seconds.
    names: TTLCache[tuple[str, str], str | None] = field(
        default_factory=lambda: TTLCache(maxsize=100_000, ttl=NAMES_TTL)
    )
    # The first pages of each board (board key -> limit -> page), for TOP_PAGE_TTL seconds:
    # the top of a popular board is read by every app at once. This instance's own writes
    # drop them at once; another instance's show within the TTL.
    top_pages: TTLCache[str, dict[int, Any]] = field(
        default_factory=lambda: TTLCache(maxsize=10_000, ttl=TOP_PAGE_TTL)
    )
    # Authenticated key lookups, key hash -> principal, for KEY_CACHE_SECONDS.
    key_cache: TTLCache[bytes, Any] = field(
        default_factory=lambda: TTLCache(maxsize=10_000, ttl=KEY_CACHE_SECONDS)
    )

    def __post_init__(self) -> None:
        self.boards = Boards(self.db, self.redis, self.engines, self._written)
        self.reads = ReadBatcher(self.redis)
        self.backfills = Backfills(self.db, self.boards)
        # Half the pool for the write path leaves connections for reads under a write storm.
        self.coalescer = Coalescer(
            self.db, self.engines, self.boards.writer, parallel=self.settings.db_pool_size // 2
        )

    def _written(self, board_keys: list[str]) -> None:
        for key in board_keys:
            self.top_pages.pop(key, None)


def services_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Services:
    services: Services = connection.app.state.services
    return services
