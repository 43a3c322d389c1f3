"""Credentials: the operator token, tenant API keys (stored hashed) and scope guards."""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from typing import Any

import msgspec
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from gamify import ratelimit, tokens
from gamify.problems import ApiError
from gamify.services import services_of
from gamify.store import tenants

SCOPES = ("events:write", "campaigns:write", "read", "players:token")
KEY_PREFIX = "gk_"


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


def new_key() -> str:
    """`gk_` followed by 256 random bits."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def key_prefix(key: str) -> str:
    return key[: len(KEY_PREFIX) + 6]


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
    if not credential.startswith(KEY_PREFIX):
        if not player_tokens:
            raise unauthorized("this endpoint takes a tenant API key")
        verified = tokens.verify(_secret(connection), credential)
        if verified is None:
            raise unauthorized("invalid or expired player token")
        return Principal(verified.tenant, frozenset({"read"}), player=verified.player)
    services = services_of(connection)
    digest = hash_key(credential)
    cached: Principal | None = services.key_cache.get(digest)
    if cached is not None:
        return cached
    stored = await tenants.key_by_hash(services.db, digest)
    if stored is None:
        raise unauthorized("unknown or revoked API key")
    principal = Principal(stored.tenant, frozenset(stored.scopes), stored.id, stored.rate_limit)
    services.key_cache[digest] = principal
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
                services_of(connection).redis, principal.key_id, principal.rate_limit
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


def _secret(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    secret = services_of(connection).settings.secret
    assert secret is not None, "create_app is given settings with a secret"
    return secret


async def admin_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    expected = services_of(connection).settings.admin_token
    if expected is None:
        # No token configured means no admin API at all, not an open one.
        raise ApiError(404, "Not Found", "the admin API is off: set GAMIFY_ADMIN_TOKEN to use it")
    given = bearer(connection)
    if given is None:
        raise unauthorized("send the operator token as `Authorization: Bearer …`")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise unauthorized("wrong operator token")


class IssuedKey(msgspec.Struct):
    """A new API key; `key` is shown this once and never stored."""

    id: int
    tenant: str
    key: str
    prefix: str
    scopes: list[str]
    rate_limit: int | None


async def issue_key(
    conn: Any, tenant: str, scopes: list[str], rate_limit: int | None, *, actor: str
) -> IssuedKey:
    """Create a key for `tenant` (raises tenants.TenantNotFound); scopes must be known."""
    unknown = [scope for scope in scopes if scope not in SCOPES]
    if unknown or not scopes:
        raise ValueError(f"unknown scopes {unknown}; expected some of {', '.join(SCOPES)}")
    key = new_key()
    ordered = sorted(set(scopes))
    key_id = await tenants.create_key(
        conn,
        tenant,
        key_hash=hash_key(key),
        prefix=key_prefix(key),
        scopes=ordered,
        rate_limit=rate_limit,
        actor=actor,
    )
    return IssuedKey(key_id, tenant, key, key_prefix(key), ordered, rate_limit)
