"""The audit trail: who changed what, when. Written in the transaction of the change."""

from __future__ import annotations

from typing import Any

from gamify.platform.db import Conn

RECORD = """
INSERT INTO audit_log (tenant_id, actor, action, target, detail)
VALUES ($1, $2, $3, $4, $5)
"""


async def record(
    conn: Conn,
    *,
    tenant: str | None,
    actor: str,
    action: str,
    target: str,
    detail: dict[str, Any] | None = None,
) -> None:
    await conn.execute(RECORD, tenant, actor, action, target, detail or {})
