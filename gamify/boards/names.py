"""Display names of board entries, cached per instance.

The top of a board is read by every app at once and around-me on a large board names
players all over it, so names come from a cache: a rename shows at once on the instance that
took it (the players controller tells it) and within NAMES_TTL on the others.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from cachetools import TTLCache

from gamify.boards import store
from gamify.boards.reader import Names

NAMES_TTL = 60.0
_UNKNOWN: Any = object()


class DisplayNames:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._cache: TTLCache[tuple[str, str], str | None] = TTLCache(
            maxsize=100_000, ttl=NAMES_TTL
        )

    def remember(self, tenant: str, player: str, name: str | None) -> None:
        self._cache[(tenant, player)] = name

    def of(self, tenant: str) -> Names:
        """The names of a tenant's players, as a board reader asks for them."""

        async def names(ids: list[str]) -> dict[str, str | None]:
            found: dict[str, str | None] = {}
            missing: list[str] = []
            for player in ids:  # one lookup each: a TTLCache lookup checks expiry in Python
                name = self._cache.get((tenant, player), _UNKNOWN)
                if name is _UNKNOWN:
                    missing.append(player)
                else:
                    found[player] = name
            if missing:
                async with self.pool.acquire() as conn:
                    fetched = await store.display_names(conn, tenant, missing)
                for player in missing:
                    found[player] = self._cache[(tenant, player)] = fetched.get(player)
            return found

        return names
