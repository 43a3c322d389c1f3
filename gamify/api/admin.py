"""Operator endpoints: tenants and their API keys, behind GAMIFY_ADMIN_TOKEN."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, delete, post
from litestar.params import FromPath, JSONBody, Parameter

from gamify import auth
from gamify.problems import ApiError, FieldProblem, invalid
from gamify.services import services_of
from gamify.store import tenants

TENANT_ID = r"^[a-z0-9][a-z0-9_-]{0,62}$"
KEY_ID_MAX = 2**63 - 1  # a Postgres bigint
Scope = Annotated[str, msgspec.Meta(description="one of " + ", ".join(auth.SCOPES))]


class TenantIn(msgspec.Struct, forbid_unknown_fields=True):
    id: Annotated[str, msgspec.Meta(pattern=TENANT_ID, description="lowercase slug")]
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class TenantOut(msgspec.Struct):
    id: str
    name: str
    created_at: datetime


class KeyIn(msgspec.Struct, forbid_unknown_fields=True):
    scopes: Annotated[list[Scope], msgspec.Meta(min_length=1)]
    rate_limit: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] | None = None


def check_scopes(scopes: list[str]) -> None:
    bad = [
        FieldProblem(f"scopes[{i}]", f"unknown scope; expected one of {', '.join(auth.SCOPES)}")
        for i, scope in enumerate(scopes)
        if scope not in auth.SCOPES
    ]
    if bad:
        raise invalid(bad)


class AdminController(Controller):
    path = "/v1/admin"
    guards = [auth.admin_guard]
    tags = ["admin"]

    @post("/tenants", status_code=201, summary="Create a tenant")
    async def create_tenant(
        self, request: Request[Any, Any, Any], data: JSONBody[TenantIn]
    ) -> TenantOut:
        async with services_of(request).db.acquire() as conn:
            try:
                tenant = await tenants.create_tenant(conn, data.id, data.name, actor="admin")
            except tenants.TenantExists:
                raise ApiError(409, "Conflict", f"tenant {data.id} already exists") from None
        return TenantOut(tenant.id, tenant.name, tenant.created_at)

    @post(
        "/tenants/{tenant_id:str}/keys",
        status_code=201,
        summary="Create an API key for a tenant (the key is shown only in this response)",
    )
    async def create_key(
        self, request: Request[Any, Any, Any], tenant_id: FromPath[str], data: JSONBody[KeyIn]
    ) -> auth.IssuedKey:
        check_scopes(data.scopes)
        async with services_of(request).db.acquire() as conn:
            try:
                return await auth.issue_key(
                    conn, tenant_id, data.scopes, data.rate_limit, actor="admin"
                )
            except tenants.TenantNotFound:
                raise ApiError(404, "Not Found", f"no tenant {tenant_id}") from None

    @delete(
        "/tenants/{tenant_id:str}/keys/{key_id:int}",
        status_code=204,
        summary="Revoke an API key (instances stop accepting it within 10 seconds)",
    )
    async def revoke_key(
        self,
        request: Request[Any, Any, Any],
        tenant_id: FromPath[str],
        key_id: Annotated[int, Parameter(ge=1, le=KEY_ID_MAX)],
    ) -> None:
        async with services_of(request).db.acquire() as conn:
            if not await tenants.revoke_key(conn, tenant_id, key_id, actor="admin"):
                raise ApiError(404, "Not Found", f"no live key {key_id} of tenant {tenant_id}")
