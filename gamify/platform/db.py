"""The Postgres connection pool."""

from __future__ import annotations

from typing import Any, TypeAlias

import asyncpg
import msgspec
from asyncpg.pool import PoolConnectionProxy

# What store functions accept: a plain connection or one borrowed from the pool.
Conn: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb in and out through msgspec: faster than the json module and strict on decode.
    await conn.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        format="text",
        encoder=lambda value: msgspec.json.encode(value).decode(),
        decoder=msgspec.json.decode,
    )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Nothing to reset: pooled connections never take advisory locks, LISTEN or SET beyond a
    transaction (SET LOCAL; the migrations run on a connection of their own). asyncpg still
    rolls back an open transaction on release; its default reset query would cost one more
    round trip per transaction."""


async def connect(url: str, size: int) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        url,
        min_size=1,
        max_size=size,
        init=_init_connection,
        reset=_keep_session,
        command_timeout=30,
    )
    assert pool is not None
    return pool


async def connect_one(url: str) -> asyncpg.Connection:
    """A single connection with the same codecs as the pool's (for the CLI and migrations)."""
    conn = await asyncpg.connect(url)
    await _init_connection(conn)
    return conn
