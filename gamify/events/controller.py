"""HTTP: the award endpoint: partner systems post events and learn at once what they earned."""

from __future__ import annotations

from collections import Counter
from typing import Any

from litestar import Request, post

from gamify.events.coalesce import Coalescer
from gamify.events.wire import EventResult, EventResults, EventsIn, decode_events
from gamify.platform import metrics
from gamify.platform.container import part_of
from gamify.platform.openapi import body_operation
from gamify.platform.problems import invalid
from gamify.tenants.guards import Principal, requires


@post(
    "/v1/events",
    status_code=200,
    guards=[requires("events:write")],
    tags=["events"],
    summary="Post 1 to 1,000 events; one result per event, in order",
    # The body is decoded event by event, so that a 400 names every bad field: Litestar
    # cannot infer its schema, and EventsIn describes it.
    operation_class=body_operation(EventsIn),
)
async def post_events(request: Request[Any, Principal, Any]) -> EventResults:
    incoming, problems = decode_events(await request.body())
    if problems:
        raise invalid(problems)
    results = await part_of(request, Coalescer).submit(request.auth.tenant, incoming)
    _count(results)
    return EventResults(results)


def _count(results: list[EventResult]) -> None:
    """Events by status and the awards they made, a few increments per request (one each
    would cost a batch of 1,000 a millisecond)."""
    statuses = Counter(result.status for result in results)
    for status, count in statuses.items():
        metrics.EVENTS_BY_STATUS[status].inc(count)
    # A duplicate answers its first arrival's awards: those were counted then.
    awarded = sum(len(result.awards) for result in results if result.status == "accepted")
    if awarded:
        metrics.AWARDS.inc(awarded)
