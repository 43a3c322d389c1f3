"""What a running app holds: settings, connections, and one instance of each domain part.

The platform knows no domain package, so the parts are kept by their type: `app.py` adds each
one at start, and a controller or guard asks for the type it needs. Litestar's dependency
injection would do the same for handlers, but it does not reach guards (which need the key
cache and the pool) and resolves per request, where this is one dictionary lookup.
"""

from __future__ import annotations

from typing import Any, TypeVar, cast

import asyncpg
from litestar.connection import ASGIConnection
from redis.asyncio import Redis

from gamify.platform.settings import Settings

T = TypeVar("T")


class Container:
    def __init__(self, settings: Settings, db: asyncpg.Pool, redis: Redis, schema_version: int):
        self.settings = settings
        self.db = db
        self.redis = redis
        # The newest migration this code knows; /ready compares the database against it.
        self.schema_version = schema_version
        self._parts: dict[type[Any], Any] = {}

    def add(self, part: T) -> T:
        """Keep `part` as the one instance of its type; returns it."""
        kind = type(part)
        if kind in self._parts:
            raise ValueError(f"a {kind.__name__} is already wired")
        self._parts[kind] = part
        return part

    def get(self, kind: type[T]) -> T:
        return cast(T, self._parts[kind])

    @property
    def secret(self) -> str:
        secret = self.settings.secret
        assert secret is not None, "create_app is given settings with a secret"
        return secret


def container_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Container:
    container: Container = connection.app.state.container
    return container


def part_of(connection: ASGIConnection[Any, Any, Any, Any], kind: type[T]) -> T:
    """The app's instance of `kind` (see Container)."""
    return container_of(connection).get(kind)
