"""A request id on every HTTP request, its response and its log lines; one access line each.

The id (the caller's if it is safe to log, else a random one) is kept in the scope's state for
the problem responses, echoed in `x-request-id`, and bound to structlog's contextvars while the
request runs, so every line logged meanwhile carries it. After the response, the
"gamify.access" logger records method, path, status and duration at INFO.
"""

from __future__ import annotations

import re
import secrets
import time

import structlog
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send
from structlog.typing import FilteringBoundLogger

from gamify.platform import logs

HEADER = b"x-request-id"
# Accept the caller's id (a proxy's trace id) only when it is short and harmless to log.
_SAFE = re.compile(rb"^[A-Za-z0-9._-]{1,64}$")


def request_id_of(scope: Scope) -> str | None:
    state = scope.get("state")
    return state.get("request_id") if isinstance(state, dict) else None


class RequestIdMiddleware(ASGIMiddleware):
    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if scope["type"] != ScopeType.HTTP:
            # A WebSocket session is no request/response exchange: no id, no access line.
            await next_app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == HEADER), b"")
        request_id = given if _SAFE.match(given) else secrets.token_hex(8).encode()
        text = request_id.decode()
        scope.setdefault("state", {})["request_id"] = text
        tokens = structlog.contextvars.bind_contextvars(request_id=text)
        try:
            # Asked once per request: at WARNING the hot path pays for no clock and no record.
            access = logs.access()
            if access is not None:
                await _served_and_logged(scope, receive, send, next_app, request_id, access)
            else:
                await next_app(scope, receive, _with_id(send, request_id))
        finally:
            structlog.contextvars.reset_contextvars(**tokens)


def _with_id(send: Send, request_id: bytes) -> Send:
    async def send_with_id(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), (HEADER, request_id)]
        await send(message)

    return send_with_id


async def _served_and_logged(
    scope: HTTPScope,
    receive: Receive,
    send: Send,
    next_app: ASGIApp,
    request_id: bytes,
    access: FilteringBoundLogger,
) -> None:
    started = time.perf_counter()
    status: int | None = None  # stays None if the exchange ends before a response starts

    async def send_with_id(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            message["headers"] = [*message.get("headers", []), (HEADER, request_id)]
        await send(message)

    try:
        await next_app(scope, receive, send_with_id)
    finally:
        # In `finally`, so a request cut short (a client gone, a cancelled task) is logged too.
        duration_ms = round((time.perf_counter() - started) * 1000, 3)
        access.info(
            "request",
            method=scope["method"],
            path=scope["path"],
            status=status,
            duration_ms=duration_ms,
        )
