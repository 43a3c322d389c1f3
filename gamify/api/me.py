"""Who am I: lets a partner check its key and scopes."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, get

from gamify import auth


class Me(msgspec.Struct):
    tenant: str
    key_id: int | None
    scopes: list[str]
    rate_limit: int | None


@get("/v1/me", guards=[auth.requires(None)], tags=["auth"], summary="The calling credential")
async def me(request: Request[Any, auth.Principal, Any]) -> Me:
    principal = request.auth
    return Me(principal.tenant, principal.key_id, sorted(principal.scopes), principal.rate_limit)
