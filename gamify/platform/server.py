"""`gamify serve`: embedded servers (if needed), migrations, then Granian workers."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from types import FrameType

from granian.constants import Interfaces
from granian.log import LogLevels
from granian.server import Server

from gamify.platform import db, migrations
from gamify.platform.runtime import servers_for
from gamify.platform.settings import Settings, ensure_secret

log = logging.getLogger(__name__)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # Until Granian installs its own handlers, SIGTERM must unwind through `finally`
    # (stopping embedded servers) instead of killing the process where it stands.
    raise KeyboardInterrupt


async def migrate(database_url: str) -> list[int]:
    conn = await db.connect_one(database_url)
    try:
        return await migrations.apply(conn)
    finally:
        await conn.close()


def serve(settings: Settings, host: str, port: int, workers: int) -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    settings = ensure_secret(settings)
    try:
        with servers_for(settings, owner=True) as resolved:
            assert resolved.database_url is not None
            applied = asyncio.run(migrate(resolved.database_url))
            if applied:
                log.info("applied migrations %s", applied)
            os.environ.update(resolved.to_env())
            Server(
                "gamify.asgi:app",
                factory=True,
                address=host,
                port=port,
                workers=workers,
                interface=Interfaces.ASGI,
                log_level=LogLevels(resolved.log_level.lower()),
                workers_kill_timeout=5,
                backlog=2048,
            ).serve()
    except KeyboardInterrupt:
        pass
    log.info("gamify stopped")
