"""WebSocket: `GET /v1/ws?token=…` with a player token or an API key holding `read`."""

from __future__ import annotations

import math
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
    found = await _principal(container, socket.query_params.get("token"))
    if isinstance(found, str):
        await socket.close(UNAUTHORIZED, found)
        return
    principal, expires_at = found
    await session.serve(container.get(Live), socket, principal, expires_at)


async def _principal(container: Container, token: str | None) -> tuple[Principal, float] | str:
    """Who the token names and until when (Unix seconds; infinity for a key), or why it names
    nobody."""
    if not token:
        return "send a player token or an API key as ?token=…"
    if not token.startswith(KEY_PREFIX):
        verified = tokens.verify(container.secret, token)
        if verified is None:
            return "invalid or expired player token"
        player = Principal(verified.tenant, frozenset({"read"}), player=verified.player)
        return player, float(verified.expires_at or math.inf)
    principal = await container.get(KeyCache).principal(token)
    if principal is None:
        return "unknown or revoked API key"
    if "read" not in principal.scopes:
        return "this API key lacks the `read` scope"
    # A revoked key's sockets stay open: revocation is checked when a socket opens.
    return principal, math.inf
