"""The OS processes of the embedded servers: is one alive, which are left over, ending them.

The servers daemonize, so they are not our children: we know them by the pid files they write
in the data folder and by their working directory (both Postgres and Valkey `chdir` into
their folder), which also tells a left-over server from an unrelated process that reused its
pid. A killed server stays a zombie until init reaps it (some container inits take their
time), and a zombie still has its pid: every check here counts a zombie as gone.

Nothing here imports the server wheels, so an owner can stop left-over servers of a kind it
does not start itself.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import time
from collections.abc import Iterable
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

POLL = 0.05


def running(process: psutil.Process | None) -> bool:
    """The process exists, is the one we knew (not a reused pid) and is not a zombie."""
    if process is None:
        return False
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def pid_running(pid: int) -> bool:
    try:
        return running(psutil.Process(pid))
    except (ValueError, psutil.Error):  # ValueError: not a pid at all
        return False


def from_pidfile(pidfile: Path, name: str, folder: Path) -> psutil.Process | None:
    """The live process `pidfile` names, if it is a `name` server working in `folder`."""
    try:
        process = psutil.Process(_first_pid(pidfile))
        if name in process.name() and _works_in(process, folder) and running(process):
            return process
    except (OSError, ValueError, psutil.Error):
        pass
    return None


def working_in(folder: Path, name: str) -> list[psutil.Process]:
    """Live `name` processes whose working directory is `folder`."""
    found = []
    for process in psutil.process_iter(["name"]):
        if name in (process.info["name"] or "") and _works_in(process, folder):
            found.append(process)
    return [process for process in found if running(process)]


def end(process: psutil.Process, first: signal.Signals, *, grace: float) -> None:
    """Send `first`, give the process `grace` seconds to end, then SIGKILL it."""
    with contextlib.suppress(psutil.Error):
        process.send_signal(first)
    if wait_gone([process], grace):
        return
    with contextlib.suppress(psutil.Error):
        process.kill()
    wait_gone([process], 5)


def wait_gone(processes: Iterable[psutil.Process], timeout: float) -> bool:
    """Whether every process ended (or became a zombie) within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    left = list(processes)
    while True:
        left = [process for process in left if running(process)]
        if not left or time.monotonic() >= deadline:
            return not left
        time.sleep(POLL)


def stop_postgres(pgdata: Path) -> bool:
    """Stop what a dead owner left of the Postgres in `pgdata`; whether anything was left.

    A postmaster still running gets a fast shutdown (SIGINT, what `pg_ctl stop -m fast`
    sends). A postmaster killed with SIGKILL leaves its backends behind for a moment, still
    attached to its shared memory, and a new postmaster refuses to start beside them: they
    are killed. Last, lock files naming a dead (or zombie) postmaster are removed, since
    Postgres would take a zombie's pid for a running server.
    """
    found = False
    postmaster = from_pidfile(pgdata / "postmaster.pid", "postgres", pgdata)
    if postmaster is not None:
        found = True
        log.warning("stopping a postgres left running in %s", pgdata)
        end(postmaster, signal.SIGINT, grace=10)
    strays = working_in(pgdata, "postgres")
    if strays:
        found = True
        log.warning("ending %d postgres processes left in %s", len(strays), pgdata)
        for process in strays:
            with contextlib.suppress(psutil.Error):
                process.kill()
        wait_gone(strays, 5)
    for lock in [pgdata / "postmaster.pid", *pgdata.glob(".s.PGSQL.*.lock")]:
        if _stale(lock, "postgres"):
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()
    return found


def stop_valkey(directory: Path) -> bool:
    """Stop a Valkey a dead owner left in `directory` (SIGTERM: it saves, then exits)."""
    process = from_pidfile(directory / "valkey.pid", "valkey", directory)
    if process is None:
        return False
    log.warning("stopping a valkey left running in %s", directory)
    end(process, signal.SIGTERM, grace=10)
    return True


def _stale(lock: Path, name: str) -> bool:
    """`lock` names a pid that is gone, a zombie, or no `name` process at all.

    Anything else is left in place, even a process we cannot inspect: removing the lock
    of a live server would let a second one start on the same files.
    """
    try:
        # A single-user backend (initdb runs some) writes its pid negated.
        pid = abs(_first_pid(lock))
    except (OSError, ValueError):
        return False
    try:
        process = psutil.Process(pid)
        return not running(process) or name not in process.name()
    except (ValueError, psutil.NoSuchProcess):  # ValueError: 0, no process at all
        return True
    except psutil.Error:
        return False


def _first_pid(pidfile: Path) -> int:
    return int(pidfile.read_text().split("\n", 1)[0].strip())


def _works_in(process: psutil.Process, folder: Path) -> bool:
    try:
        return Path(process.cwd()) == folder
    except (psutil.Error, OSError):
        return False
