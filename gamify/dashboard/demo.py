"""`gamify demo`: the service on embedded servers of its own, a demo tenant, and flights.

The service runs exactly as `gamify serve` runs it (platform.server: embedded Postgres and
Valkey in the data folder, migrations, Granian workers, SIGINT and SIGTERM). Beside the
workers, this module creates the demo tenant and its keys (in the database, as `gamify key
create` does: the admin API stays off) and starts the flight simulator (demo_flights) as a
child process, which plays an airline: everything else goes through the public API.

Stopping, in order: the workers (Granian, on SIGINT or SIGTERM), then the simulator (SIGTERM,
then SIGKILL if it hangs), then the embedded servers. The demo also ends when the simulator
does (it failed, or it was interrupted on its own), and the simulator ends when this process
is gone, however it went.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import msgspec

from gamify.platform import db, logs, server
from gamify.platform.settings import Settings
from gamify.tenants import store as tenants
from gamify.tenants.keys import issue_key

DATA_DIR = Path(".gamify-demo")
TENANT = "demo"
TENANT_NAME = "Demo Air"
API_SCOPES = ["campaigns:write", "events:write", "read"]
STOP_WITHIN = 10.0  # seconds the simulator gets to stop before it is killed


class Options(msgspec.Struct, frozen=True, kw_only=True):
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    members: int = 7_000
    rate: int = 300  # flights a second
    data_dir: Path = DATA_DIR


class DemoFailed(RuntimeError):
    """The demo cannot start, or its flight simulator stopped by itself (it said why)."""


class Keys(msgspec.Struct, frozen=True):
    api: str
    token_minting: str


def run(settings: Settings, options: Options) -> None:
    """Serve the demo until SIGINT or SIGTERM; raises DemoFailed if the simulator failed."""
    _check_port(options.host, options.port)
    settings = for_demo(settings, options.data_dir, level_set="GAMIFY_LOG_LEVEL" in os.environ)
    logs.configure(settings.log_level)
    simulator = Simulator(options)
    server.serve(settings, options.host, options.port, options.workers, beside=simulator.beside)
    if simulator.failed is not None:
        raise DemoFailed(f"the flight simulator stopped (exit status {simulator.failed})")


def for_demo(settings: Settings, data_dir: Path, *, level_set: bool) -> Settings:
    # Always servers of its own: a demo tenant must never land in a configured database. And
    # quiet unless asked: a log line per request would bury the progress line.
    return msgspec.structs.replace(
        settings,
        database_url=None,
        redis_url=None,
        data_dir=data_dir,
        log_level=settings.log_level if level_set else "WARNING",
        delivery_in_process=True,  # no `gamify worker` runs beside the demo
    )


class Simulator:
    """The flight simulator's process, for as long as the workers serve."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.failed: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = False

    @contextlib.contextmanager
    def beside(self, resolved: Settings) -> Iterator[None]:
        assert resolved.database_url is not None
        keys = asyncio.run(provision(resolved.database_url))
        self._process = subprocess.Popen(
            [sys.executable, "-m", "gamify.dashboard.demo_flights"], env=self._env(keys)
        )
        threading.Thread(target=self._watch, name="demo-watch", daemon=True).start()
        try:
            yield
        finally:
            self._stop()

    def _env(self, keys: Keys) -> dict[str, str]:
        # Imported here: the simulator's HTTP client would cost every `gamify` command a
        # quarter of a second at start (the CLI imports this module).
        from gamify.dashboard.demo_flights import PLAN_ENV, Plan

        options = self.options
        plan = Plan(
            base_url=f"http://{_reachable(options.host)}:{options.port}",
            api_key=keys.api,
            token_key=keys.token_minting,
            members=options.members,
            rate=options.rate,
            history=2 * options.members,
            parent=os.getpid(),
            data_dir=str(options.data_dir),
        )
        # The service's settings are no business of an airline's system (and the keys travel
        # in the environment, not on a command line that `ps` shows).
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith("GAMIFY_") and name != server.METRICS_DIR
        }
        return env | {PLAN_ENV: msgspec.json.encode(plan).decode()}

    def _watch(self) -> None:
        assert self._process is not None
        status = self._process.wait()
        if self._stopping:
            return
        if status != 0:
            self.failed = status
        # What Ctrl-C does: the workers stop, then everything else.
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

    def _stop(self) -> None:
        self._stopping = True
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_WITHIN)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def provision(database_url: str) -> Keys:
    """The demo tenant (made once, kept in the data folder) and two new keys: one to print
    and fly with, one to mint the printed player token (the printed key cannot)."""
    conn = await db.connect_one(database_url)
    try:
        with contextlib.suppress(tenants.TenantExists):
            await tenants.create_tenant(conn, TENANT, TENANT_NAME, actor="demo")
        api = await issue_key(conn, TENANT, API_SCOPES, None, actor="demo")
        minting = await issue_key(conn, TENANT, ["players:token"], None, actor="demo")
    finally:
        await conn.close()
    return Keys(api.key, minting.key)


def _check_port(host: str, port: int) -> None:
    # The README's first command: a `gamify serve` already on the port deserves a sentence,
    # not the server's traceback. (SO_REUSEADDR: the last run's closed connections may linger.)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise DemoFailed(
                f"cannot listen on {host}:{port} ({exc.strerror}): stop what uses it, "
                "or pass another --port"
            ) from None


def _reachable(host: str) -> str:
    """An address a client on this machine reaches `host` at (a wildcard is not one)."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host
