"""HTTP: the operator's tenants and API keys (behind GAMIFY_ADMIN_TOKEN), and who-am-I."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.params import Parameter

from gamify.platform.container import container_of
from gamify.platform.decoding import decoded
from gamify.platform.openapi import ProblemOperation, body_operation
from gamify.platform.problems import ApiError
from gamify.tenants import store as tenants
from gamify.tenants.guards import Principal, admin_guard, requires
from gamify.tenants.keys import SCOPES, IssuedKey, issue_key

TENANT_ID = r"^[a-z0-9][a-z0-9_-]{0,62}$(?!\n)"  # see Scope on the lookahead
KEY_ID_MAX = 2**63 - 1  # a Postgres bigint
# A pattern rather than a Literal, so that SCOPES stays the one list: the document shows it,
# and a bad scope is named (`scopes[1]`) by decoding, beside any other bad field. In Python
# `$` also matches before a final newline; the lookahead keeps "read\n" out (issue_key would
# refuse it with a ValueError, a 500).
Scope = Annotated[
    str,
    msgspec.Meta(
        pattern="^(?:" + "|".join(map(re.escape, SCOPES)) + r")$(?!\n)",
        description="one of " + ", ".join(SCOPES),
    ),
]
TenantId = Annotated[str, Parameter(pattern=TENANT_ID, description="the tenant's slug")]


class TenantIn(msgspec.Struct, forbid_unknown_fields=True):
    id: Annotated[str, msgspec.Meta(pattern=TENANT_ID, description="lowercase slug")]
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class TenantOut(msgspec.Struct):
    id: str
    name: str
    created_at: datetime


class Me(msgspec.Struct):
    tenant: str
    key_id: int | None
    scopes: list[str]
    rate_limit: int | None


class KeyIn(msgspec.Struct, forbid_unknown_fields=True):
    scopes: Annotated[list[Scope], msgspec.Meta(min_length=1)]
    rate_limit: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] | None = None


class AdminController(Controller):
    path = "/v1/admin"
    guards = [admin_guard]
    tags = ["admin"]

    @post(
        "/tenants",
        status_code=201,
        summary="Create a tenant",
        operation_class=body_operation(TenantIn),
    )
    async def create_tenant(self, request: Request[Any, Any, Any]) -> TenantOut:
        data = decoded(await request.body(), TenantIn)
        async with container_of(request).db.acquire() as conn:
            try:
                tenant = await tenants.create_tenant(conn, data.id, data.name, actor="admin")
            except tenants.TenantExists:
                raise ApiError(409, "Conflict", f"tenant {data.id} already exists") from None
        return TenantOut(tenant.id, tenant.name, tenant.created_at)

    @post(
        "/tenants/{tenant_id:str}/keys",
        status_code=201,
        summary="Create an API key for a tenant (the key is shown only in this response)",
        operation_class=body_operation(KeyIn),
    )
    async def create_key(self, request: Request[Any, Any, Any], tenant_id: TenantId) -> IssuedKey:
        data = decoded(await request.body(), KeyIn)
        async with container_of(request).db.acquire() as conn:
            try:
                return await issue_key(conn, tenant_id, data.scopes, data.rate_limit, actor="admin")
            except tenants.TenantNotFound:
                raise ApiError(404, "Not Found", f"no tenant {tenant_id}") from None

    @delete(
        "/tenants/{tenant_id:str}/keys/{key_id:int}",
        status_code=204,
        summary="Revoke an API key (instances stop accepting it within 10 seconds)",
        operation_class=ProblemOperation,
    )
    async def revoke_key(
        self,
        request: Request[Any, Any, Any],
        tenant_id: TenantId,
        key_id: Annotated[int, Parameter(ge=1, le=KEY_ID_MAX)],
    ) -> None:
        async with container_of(request).db.acquire() as conn:
            if not await tenants.revoke_key(conn, tenant_id, key_id, actor="admin"):
                raise ApiError(404, "Not Found", f"no live key {key_id} of tenant {tenant_id}")


@get(
    "/v1/me",
    guards=[requires(None)],
    tags=["auth"],
    summary="The calling credential",
    operation_class=ProblemOperation,
)
async def me(request: Request[Any, Principal, Any]) -> Me:
    principal = request.auth
    return Me(principal.tenant, principal.key_id, sorted(principal.scopes), principal.rate_limit)
