"""A request id on every request and response, so a logged error can be matched to a call."""

from __future__ import annotations

import re
import secrets

from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"
# Accept the caller's id (a proxy's trace id) only when it is short and harmless to log.
_SAFE = re.compile(rb"^[A-Za-z0-9._-]{1,64}$")


def request_id_of(scope: Scope) -> str | None:
    state = scope.get("state")
    return state.get("request_id") if isinstance(state, dict) else None


class RequestIdMiddleware(ASGIMiddleware):
    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        given = next((v for k, v in scope["headers"] if k == HEADER), b"")
        request_id = given if _SAFE.match(given) else secrets.token_hex(8).encode()
        scope.setdefault("state", {})["request_id"] = request_id.decode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (HEADER, request_id)]
            await send(message)

        await next_app(scope, receive, send_with_id)
