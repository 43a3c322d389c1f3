"""The award endpoint: partner systems post events and learn at once what they earned."""

from __future__ import annotations

from typing import Any

from litestar import Request, post

from gamify import auth
from gamify.openapi_extra import EventsOperation
from gamify.problems import invalid
from gamify.services import services_of
from gamify.wire import EventResults, decode_events


@post(
    "/v1/events",
    status_code=200,
    guards=[auth.requires("events:write")],
    tags=["events"],
    summary="Post 1 to 1,000 events; one result per event, in order",
    operation_class=EventsOperation,
)
async def post_events(request: Request[Any, auth.Principal, Any]) -> EventResults:
    incoming, problems = decode_events(await request.body())
    if problems:
        raise invalid(problems)
    results = await services_of(request).coalescer.submit(request.auth.tenant, incoming)
    return EventResults(results)
