"""Liveness and readiness."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from litestar import Request, Response, get
from litestar.openapi import ResponseSpec

from gamify.platform import metrics, migrations
from gamify.platform.container import container_of
from gamify.platform.problems import MEDIA_TYPE, FieldProblem, Problem, problem_response

CHECK_TIMEOUT = 2.0


class Health(msgspec.Struct):
    status: str


class Ready(msgspec.Struct):
    status: str
    checks: dict[str, str]


@get("/health", tags=["operations"], summary="Liveness: answers without any I/O")
async def health() -> Health:
    return Health("ok")


@get(
    "/ready",
    tags=["operations"],
    summary="Readiness: can take events (Postgres answers, every migration applied); "
    "`degraded` while Redis is away",
    responses={
        503: ResponseSpec(Problem, description="Why events cannot be taken", media_type=MEDIA_TYPE)
    },
)
async def ready(request: Request[Any, Any, Any]) -> Response[Ready] | Response[Problem]:
    """Ready means "can take events": Postgres is the truth, and events are taken while Redis
    is down (the boards are rebuilt when it is back). A load balancer must not drop every
    instance during a Redis outage, so Redis only turns `ready` into `degraded`."""
    postgres, redis = await asyncio.gather(_check_postgres(request), _check_redis(request))
    checks = {"postgres": postgres, "redis": redis}
    if postgres == "ok":
        return Response(Ready("ready" if redis == "ok" else "degraded", checks))
    failed = [FieldProblem(name, result) for name, result in checks.items() if result != "ok"]
    return problem_response(
        request,
        Problem(
            title="Service Unavailable",
            status=503,
            errors=failed,
            detail="not ready: " + ", ".join(f"{p.field} ({p.message})" for p in failed),
        ),
    )


async def _check_postgres(request: Request[Any, Any, Any]) -> str:
    container = container_of(request)
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            async with container.db.acquire() as conn:
                applied = await migrations.applied_version(conn)
    except Exception as exc:
        return f"unreachable: {type(exc).__name__}"
    expected = container.schema_version
    if applied < expected:
        return f"migrations pending: at {applied}, code needs {expected}"
    return "ok"


async def _check_redis(request: Request[Any, Any, Any]) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await container_of(request).redis.ping()
    except Exception as exc:
        metrics.redis_answered(False)
        return f"unreachable: {type(exc).__name__}"
    metrics.redis_answered(True)
    return "ok"
