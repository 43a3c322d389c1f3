"""Who is calling: the operator token, tenant API keys and player tokens, and scope guards."""

from __future__ import annotations

import hmac
import math
from typing import Any

import asyncpg
import msgspec
from cachetools import TTLCache
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from gamify.platform.container import container_of
from gamify.platform.problems import ApiError
from gamify.tenants import ratelimit, store, tokens
from gamify.tenants.keys import KEY_PREFIX, SCOPES, hash_key

# A revoked key keeps working on an instance for at most this long.
KEY_CACHE_SECONDS = 10.0


class Principal(msgspec.Struct, frozen=True):
    """Who is calling: a tenant API key with its scopes, or one player with a player token."""

    tenant: str
    scopes: frozenset[str]
    key_id: int | None = None
    rate_limit: int | None = None
    player: str | None = None

    @property
    def actor(self) -> str:
        return f"key:{self.key_id}" if self.player is None else f"player:{self.player}"

    def may_read_player(self, player: str) -> bool:
        return self.player is None or self.player == player


class KeyCache:
    """Authenticated API keys by hash, for KEY_CACHE_SECONDS: a key is checked against
    Postgres once per instance and period, not once per request."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._cache: TTLCache[bytes, Principal] = TTLCache(maxsize=10_000, ttl=KEY_CACHE_SECONDS)

    async def principal(self, key: str) -> Principal | None:
        digest = hash_key(key)
        cached = self._cache.get(digest)
        if cached is not None:
            return cached
        stored = await store.key_by_hash(self.pool, digest)
        if stored is None:
            return None
        found = Principal(stored.tenant, frozenset(stored.scopes), stored.id, stored.rate_limit)
        self._cache[digest] = found
        return found


def bearer(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    # Straight from the ASGI scope (names arrive lowercased): building Litestar's Headers
    # for one header costs more than the rest of a cached key check.
    raw = next((v for k, v in connection.scope["headers"] if k == b"authorization"), b"")
    header = raw.decode("latin-1")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        return None
    return credential.strip()


def unauthorized(detail: str) -> ApiError:
    return ApiError(401, "Unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


async def authenticate(
    connection: ASGIConnection[Any, Any, Any, Any], *, player_tokens: bool = False
) -> Principal:
    credential = bearer(connection)
    if credential is None:
        raise unauthorized("send an API key as `Authorization: Bearer gk_…`")
    container = container_of(connection)
    if not credential.startswith(KEY_PREFIX):
        if not player_tokens:
            raise unauthorized("this endpoint takes a tenant API key")
        verified = tokens.verify(container.secret, credential)
        if verified is None:
            raise unauthorized("invalid or expired player token")
        return Principal(verified.tenant, frozenset({"read"}), player=verified.player)
    principal = await container.get(KeyCache).principal(credential)
    if principal is None:
        raise unauthorized("unknown or revoked API key")
    return principal


def requires(scope: str | None, *, player_tokens: bool = False) -> Any:
    """A guard admitting tenant keys that hold `scope` (any valid key when None), and with
    `player_tokens`, player tokens too (which only ever hold `read`).

    The principal is left in `connection.scope["auth"]` for the handler (`request.auth`).
    """
    if scope is not None and scope not in SCOPES:
        raise ValueError(f"unknown scope {scope}")

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = await authenticate(connection, player_tokens=player_tokens)
        if scope is not None and scope not in principal.scopes:
            raise ApiError(403, "Forbidden", f"this API key lacks the `{scope}` scope")
        if principal.rate_limit is not None and principal.key_id is not None:
            wait = await ratelimit.allow(
                container_of(connection).redis, principal.key_id, principal.rate_limit
            )
            if wait:
                raise ApiError(
                    429,
                    "Too Many Requests",
                    f"this API key may send {principal.rate_limit} requests a second",
                    headers={"Retry-After": str(math.ceil(wait))},
                )
        connection.scope["auth"] = principal

    return guard


async def admin_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    expected = container_of(connection).settings.admin_token
    if expected is None:
        # No token configured means no admin API at all, not an open one.
        raise ApiError(404, "Not Found", "the admin API is off: set GAMIFY_ADMIN_TOKEN to use it")
    given = bearer(connection)
    if given is None:
        raise unauthorized("send the operator token as `Authorization: Bearer …`")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise unauthorized("wrong operator token")
