"""The Postgres connection pool."""

from __future__ import annotations

import asyncpg
import msgspec


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb in and out through msgspec: faster than the json module and strict on decode.
    await conn.set_type_codec(
        "jsonb", schema="pg_catalog", format="text",
        encoder=lambda value: msgspec.json.encode(value).decode(),
        decoder=msgspec.json.decode,
    )


async def connect(url: str, size: int) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        url, min_size=1, max_size=size, init=_init_connection, command_timeout=30
    )
    assert pool is not None
    return pool
