"""`gamify serve`: embedded servers (if needed), migrations, then Granian workers.

Granian forks its workers from this process. A worker must not outlive it: one left behind
by a killed `gamify serve` would keep answering on its port with the URLs of servers the next
owner stops. So each worker asks the kernel (Linux's PR_SET_PDEATHSIG) for a SIGTERM, which a
Granian worker takes as a graceful stop, when its owner dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from granian.constants import Interfaces
from granian.log import LogLevels
from granian.server import Server

from gamify.platform import db, migrations
from gamify.platform.runtime import servers_for
from gamify.platform.settings import Settings, ensure_secret

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
# Where each worker's metrics live (see platform/metrics.py), read by prometheus_client.
METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"
_forking_pid = 0  # who is forking, as the child sees it
# Work that runs beside the workers (`gamify demo`'s flights): entered with the resolved
# settings once migrations ran, left after the workers stopped, before the embedded servers.
Beside = Callable[[Settings], contextlib.AbstractContextManager[object]]


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # Until Granian installs its own handlers, SIGTERM must unwind through `finally`
    # (stopping embedded servers) instead of killing the process where it stands.
    raise KeyboardInterrupt


def _note_forker() -> None:
    global _forking_pid
    _forking_pid = os.getpid()


def _end_with(owner: int) -> None:
    """In a process just forked: if the owner forked it, end it when the owner dies."""
    if _forking_pid != owner:  # a worker's own child: not ours to tie
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        return
    if os.getppid() != owner:  # the owner died before the request took hold
        os.kill(os.getpid(), signal.SIGTERM)


def _tie_workers_to_this_process() -> None:
    if sys.platform.startswith("linux"):
        os.register_at_fork(
            before=_note_forker, after_in_child=functools.partial(_end_with, os.getpid())
        )


def _metrics_folder(data_dir: Path) -> None:
    """Give the workers one folder for their metrics, so that a scrape of any of them sums
    all. Set before the first fork (prometheus_client reads it when first imported, which this
    process never does), and emptied: counters start from 0 with the service."""
    folder = Path(os.environ.get(METRICS_DIR) or data_dir / "metrics").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()
    os.environ[METRICS_DIR] = str(folder)


async def migrate(database_url: str) -> list[int]:
    conn = await db.connect_one(database_url)
    try:
        return await migrations.apply(conn)
    finally:
        await conn.close()


def serve(
    settings: Settings, host: str, port: int, workers: int, *, beside: Beside | None = None
) -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    settings = ensure_secret(settings)
    try:
        with servers_for(settings, owner=True) as resolved:
            assert resolved.database_url is not None
            applied = asyncio.run(migrate(resolved.database_url))
            if applied:
                log.info("applied migrations %s", applied)
            os.environ.update(resolved.to_env())
            _metrics_folder(resolved.data_dir)
            _tie_workers_to_this_process()
            with beside(resolved) if beside else contextlib.nullcontext():
                _run_workers(resolved, host, port, workers)
    except KeyboardInterrupt:
        pass
    log.info("gamify stopped")


def _run_workers(resolved: Settings, host: str, port: int, workers: int) -> None:
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
