"""One socket's life once authenticated: read ops and answer them; the writer task sends."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from litestar import WebSocket

from gamify.live import protocol, streams
from gamify.live.connection import SEND_TIMEOUT, Connection
from gamify.live.protocol import Error, PingOp, Pong, Resume, Subscribe, Unsubscribe, encode
from gamify.live.service import Live
from gamify.live.watchers import Topic
from gamify.platform.problems import ApiError
from gamify.tenants.guards import Principal

log = logging.getLogger(__name__)

_PONG = encode(Pong()).decode()


async def serve(
    live: Live, socket: WebSocket[Any, Any, Any], principal: Principal, expires_at: float
) -> None:
    connection = Connection(socket, principal, live.feed, live.backlog)
    connection.expires_at = expires_at
    connection.reader = asyncio.current_task()
    connection.writer = asyncio.get_running_loop().create_task(_write(connection))
    live.opened(connection)
    try:
        await _read(live, connection)
    except asyncio.CancelledError:
        if not connection.aborted:
            raise
        log.info("a socket stopped reading for %s s; dropped", SEND_TIMEOUT)
    finally:
        live.closed(connection)
        connection.writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await connection.writer
        live.watches.unwatch_all(connection)
        connection.drop_snapshots()
        await live.hub.leave(connection)


async def _read(live: Live, connection: Connection) -> None:
    while not connection.closing:
        message = await connection.socket.receive()
        if message["type"] == "websocket.disconnect":
            return
        frame: str | bytes = message.get("text") or message.get("bytes") or b""  # type: ignore[assignment]
        await _answer(live, connection, frame)


async def _write(connection: Connection) -> None:
    # A send fails when the peer went away: the reader sees the disconnect.
    with contextlib.suppress(Exception):
        await connection.write_forever()


async def _answer(live: Live, connection: Connection, frame: str | bytes) -> None:
    op = protocol.decode(frame)
    if isinstance(op, str):
        connection.send(encode(Error(op)).decode())
        return
    try:
        if isinstance(op, PingOp):
            connection.send(_PONG)
        elif isinstance(op, Resume):
            await _resume(live, connection, op.after)
        elif isinstance(op, Subscribe):
            await _subscribe(live, connection, op)
        elif isinstance(op, Unsubscribe):
            await _unsubscribe(live, connection, op)
    except ApiError as exc:
        connection.send(encode(Error(_detail(exc))).decode())


async def _subscribe(live: Live, connection: Connection, op: Subscribe) -> None:
    if op.topic == "me":
        if not connection.me:
            await _join(live, connection)
            await connection.sync(None, announce=False)
        return
    await live.watches.watch(connection, _topic(connection, op), op.top)


async def _resume(live: Live, connection: Connection, after: int) -> None:
    if not connection.me:
        await _join(live, connection)
    await connection.sync(after, announce=True)


async def _join(live: Live, connection: Connection) -> None:
    player = connection.principal.player
    if player is None:
        raise ApiError(400, "Bad Request", "`me` and `resume` take a player token")
    connection.hold()
    connection.me = True
    # Before the channel is joined: the publisher writes the streams of the audience only.
    await streams.attend(live.redis, connection.principal.tenant, [player], time.time())
    await live.hub.join(connection)


async def _unsubscribe(live: Live, connection: Connection, op: Unsubscribe) -> None:
    if op.topic == "me":
        connection.me = False
        await live.hub.leave(connection)
        return
    live.watches.unwatch(connection, _topic(connection, op))


def _topic(connection: Connection, op: Subscribe | Unsubscribe) -> Topic:
    if op.campaign is None:
        raise ApiError(400, "Bad Request", "a `leaderboard` topic names its `campaign`")
    return Topic(connection.tenant, op.campaign, op.board, op.period)


def _detail(error: ApiError) -> str:
    """The problem as one line: its detail (or title), then each bad field."""
    problem = error.problem
    said = problem.detail if isinstance(problem.detail, str) else problem.title
    fields = "; ".join(f"{bad.field}: {bad.message}" for bad in problem.errors)
    return f"{said}: {fields}" if fields else said
