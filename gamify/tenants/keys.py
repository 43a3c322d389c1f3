"""Tenant API keys: `gk_` + 256 random bits, shown once, stored only as their SHA-256."""

from __future__ import annotations

import hashlib
import secrets

import msgspec

from gamify.platform.db import Conn
from gamify.tenants import store

SCOPES = ("events:write", "campaigns:write", "read", "players:token")
KEY_PREFIX = "gk_"


def new_key() -> str:
    """`gk_` followed by 256 random bits."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def key_prefix(key: str) -> str:
    return key[: len(KEY_PREFIX) + 6]


class IssuedKey(msgspec.Struct):
    """A new API key; `key` is shown this once and never stored."""

    id: int
    tenant: str
    key: str
    prefix: str
    scopes: list[str]
    rate_limit: int | None


async def issue_key(
    conn: Conn, tenant: str, scopes: list[str], rate_limit: int | None, *, actor: str
) -> IssuedKey:
    """Create a key for `tenant` (raises store.TenantNotFound); scopes must be known."""
    unknown = [scope for scope in scopes if scope not in SCOPES]
    if unknown or not scopes:
        raise ValueError(f"unknown scopes {unknown}; expected some of {', '.join(SCOPES)}")
    key = new_key()
    ordered = sorted(set(scopes))
    key_id = await store.create_key(
        conn,
        tenant,
        key_hash=hash_key(key),
        prefix=key_prefix(key),
        scopes=ordered,
        rate_limit=rate_limit,
        actor=actor,
    )
    return IssuedKey(key_id, tenant, key, key_prefix(key), ordered, rate_limit)
