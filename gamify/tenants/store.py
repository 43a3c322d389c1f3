"""Tenants and their API keys."""

from __future__ import annotations

from datetime import datetime

import asyncpg
import msgspec

from gamify.platform.db import Conn
from gamify.tenants import audit

INSERT_TENANT = """
INSERT INTO tenants (id, name) VALUES ($1, $2)
ON CONFLICT (id) DO NOTHING
RETURNING id, name, created_at
"""
TENANT_EXISTS = "SELECT EXISTS (SELECT 1 FROM tenants WHERE id = $1)"
INSERT_KEY = """
INSERT INTO api_keys (tenant_id, key_hash, prefix, scopes, rate_limit)
VALUES ($1, $2, $3, $4, $5)
RETURNING id, created_at
"""
KEY_BY_HASH = """
SELECT id, tenant_id, scopes, rate_limit FROM api_keys
WHERE key_hash = $1 AND revoked_at IS NULL
"""


LIVE_KEYS = "SELECT id FROM api_keys WHERE id = ANY($1::bigint[]) AND revoked_at IS NULL"
REVOKE_KEY = """
UPDATE api_keys SET revoked_at = now()
WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL
RETURNING id
"""


class TenantExists(Exception):
    pass


class TenantNotFound(Exception):
    pass


class Tenant(msgspec.Struct, frozen=True):
    id: str
    name: str
    created_at: datetime


class StoredKey(msgspec.Struct, frozen=True):
    id: int
    tenant: str
    scopes: list[str]
    rate_limit: int | None


async def create_tenant(conn: Conn, tenant_id: str, name: str, *, actor: str) -> Tenant:
    async with conn.transaction():
        row = await conn.fetchrow(INSERT_TENANT, tenant_id, name)
        if row is None:
            raise TenantExists(tenant_id)
        await audit.record(
            conn,
            tenant=tenant_id,
            actor=actor,
            action="tenant.create",
            target=tenant_id,
            detail={"name": name},
        )
    return Tenant(row["id"], row["name"], row["created_at"])


async def create_key(
    conn: Conn,
    tenant_id: str,
    *,
    key_hash: bytes,
    prefix: str,
    scopes: list[str],
    rate_limit: int | None,
    actor: str,
) -> int:
    async with conn.transaction():
        if not await conn.fetchval(TENANT_EXISTS, tenant_id):
            raise TenantNotFound(tenant_id)
        row = await conn.fetchrow(INSERT_KEY, tenant_id, key_hash, prefix, scopes, rate_limit)
        assert row is not None
        await audit.record(
            conn,
            tenant=tenant_id,
            actor=actor,
            action="key.create",
            target=f"key:{row['id']}",
            detail={"scopes": scopes, "rate_limit": rate_limit, "prefix": prefix},
        )
    key_id: int = row["id"]
    return key_id


async def key_by_hash(conn: Conn | asyncpg.Pool, key_hash: bytes) -> StoredKey | None:
    row = await conn.fetchrow(KEY_BY_HASH, key_hash)
    if row is None:
        return None
    return StoredKey(row["id"], row["tenant_id"], list(row["scopes"]), row["rate_limit"])


async def live_keys(conn: Conn | asyncpg.Pool, key_ids: list[int]) -> set[int]:
    """Which of `key_ids` are not revoked."""
    return {row["id"] for row in await conn.fetch(LIVE_KEYS, key_ids)}


async def revoke_key(conn: Conn, tenant_id: str, key_id: int, *, actor: str) -> bool:
    """Revoke a live key of the tenant; False when there is none with that id."""
    async with conn.transaction():
        revoked = await conn.fetchval(REVOKE_KEY, tenant_id, key_id)
        if revoked is None:
            return False
        await audit.record(
            conn, tenant=tenant_id, actor=actor, action="key.revoke", target=f"key:{key_id}"
        )
    return True
