"""Restart an embedded server that died, on the same port, while its owner runs.

The owner (`gamify serve`) spends its main thread inside Granian's `Server.serve()`, so the
supervisor is a daemon thread. It runs a small event loop of its own: stamina's async
retries then sleep with `asyncio.sleep`, which `stop()` can cut short by cancelling the
task, so a stopping owner never waits out a backoff. A restart itself is blocking work
(`pg_ctl start`, a Valkey launch) done on that loop's thread: cancelling waits for the
attempt under way to end, and `stop()` joins the thread, so a server is never restarted
behind the back of whoever stops it.

Bounds: a check every second; after a death, up to ATTEMPTS restarts within WITHIN seconds,
waiting about 1, 2, 4 then 8 s between them (stamina's backoff, with jitter); each attempt is
bounded too (`pg_ctl start -t 60`, 30 s for Valkey to answer). When all fail, an error is
logged and that server is looked at again only after PAUSE seconds, for as long as the owner
runs: the owner never exits over a server it cannot bring back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from typing import Protocol

import stamina

log = logging.getLogger(__name__)

CHECK_EVERY = 1.0
ATTEMPTS = 5
WITHIN = 60.0
FIRST_WAIT = 1.0
LONGEST_WAIT = 15.0
PAUSE = 60.0


class Supervised(Protocol):
    """A server the supervisor can watch and bring back."""

    @property
    def label(self) -> str:
        """What to call it in logs: its kind, folder and port."""
        ...

    def alive(self) -> bool: ...

    def restart(self) -> None:
        """Start it again after it died, on the port its clients already use."""
        ...


class Supervisor:
    """Watches `servers` from a daemon thread until `stop()`; see the module docstring."""

    def __init__(
        self,
        servers: Sequence[Supervised],
        *,
        check_every: float = CHECK_EVERY,
        attempts: int = ATTEMPTS,
        first_wait: float = FIRST_WAIT,
        pause: float = PAUSE,
    ) -> None:
        self._servers = list(servers)
        self._check_every = check_every
        self._attempts = attempts
        self._first_wait = first_wait
        self._pause = pause
        self._guard = threading.Lock()
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gamify-supervisor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching; returns once no restart is under way or will start."""
        with self._guard:
            self._stopping = True
            if self._loop is not None and self._task is not None:
                with contextlib.suppress(RuntimeError):  # the loop has already ended
                    self._loop.call_soon_threadsafe(self._task.cancel)
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            asyncio.run(self._watch())

    async def _watch(self) -> None:
        with self._guard:
            if self._stopping:
                return
            self._loop = asyncio.get_running_loop()
            self._task = asyncio.current_task()
        resume_at = [0.0] * len(self._servers)
        while True:
            for index, server in enumerate(self._servers):
                if time.monotonic() >= resume_at[index] and not await self._check(server):
                    resume_at[index] = time.monotonic() + self._pause
            await asyncio.sleep(self._check_every)

    async def _check(self, server: Supervised) -> bool:
        """Whether `server` is up, restarting it if it died."""
        try:
            return server.alive() or await self._revive(server)
        except Exception:  # a bug here must not end supervision
            log.exception("supervising %s failed", server.label)
            return False

    async def _revive(self, server: Supervised) -> bool:
        """Restart a dead server within the bounds; whether it is back."""
        log.warning("%s died; restarting it", server.label)
        try:
            async for attempt in stamina.retry_context(
                on=Exception,
                attempts=self._attempts,
                timeout=WITHIN,
                wait_initial=self._first_wait,
                wait_max=LONGEST_WAIT,
            ):
                with attempt:
                    self._attempt(server, attempt.num)
        except Exception:
            log.error(
                "could not restart %s (up to %d attempts within %.0f s); trying again in %.0f s",
                server.label,
                self._attempts,
                WITHIN,
                self._pause,
                exc_info=True,
            )
            return False
        log.warning("restarted %s", server.label)
        return True

    def _attempt(self, server: Supervised, number: int) -> None:
        log.info("restarting %s (attempt %d of %d)", server.label, number, self._attempts)
        try:
            server.restart()
        except Exception as exc:
            log.warning("restart attempt %d of %s failed: %s", number, server.label, exc)
            raise
