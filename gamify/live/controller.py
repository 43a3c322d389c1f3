"""WebSocket: `GET /v1/ws?token=…` with a player token or an API key holding `read`."""

from __future__ import annotations

from typing import Any

from litestar import WebSocket, websocket

from gamify.live import session
from gamify.live.service import Live
from gamify.platform.container import Container, container_of
from gamify.tenants import tokens
from gamify.tenants.guards import KeyCache, Principal
from gamify.tenants.keys import KEY_PREFIX

UNAUTHORIZED = 4401


@websocket("/v1/ws", name="live")
async def live_socket(socket: WebSocket[Any, Any, Any]) -> None:
    # Accepted first: a close code and its reason reach a client only on an open socket (a
    # refusal before accepting is a bare HTTP 403 to most clients).
    await socket.accept()
    container = container_of(socket)
    principal = await _principal(container, socket.query_params.get("token"))
    if isinstance(principal, str):
        await socket.close(UNAUTHORIZED, principal)
        return
    await session.serve(container.get(Live), socket, principal)


async def _principal(container: Container, token: str | None) -> Principal | str:
    """Who the token names, or why it names nobody."""
    if not token:
        return "send a player token or an API key as ?token=…"
    if not token.startswith(KEY_PREFIX):
        verified = tokens.verify(container.secret, token)
        if verified is None:
            return "invalid or expired player token"
        return Principal(verified.tenant, frozenset({"read"}), player=verified.player)
    principal = await container.get(KeyCache).principal(token)
    if principal is None:
        return "unknown or revoked API key"
    if "read" not in principal.scopes:
        return "this API key lacks the `read` scope"
    return principal
