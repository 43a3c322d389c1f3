"""`gamify serve` as an operator runs it: real processes, signals, a data folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from gamify.platform.embedded.ports import free_port
from tests.gamify.support import ADMIN, ADMIN_TOKEN, Servers, bearer

pytestmark = pytest.mark.slow
STOP_WITHIN = 10.0


class Served:
    def __init__(self, data_dir: Path, **env: str) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gamify", "serve", "--port", str(self.port)],
            env=env_for(data_dir) | env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 60) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                pytest.fail(f"serve exited early:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/ready", timeout=1).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        pytest.fail("serve never became ready")

    def stop(self, signum: int = signal.SIGTERM) -> float:
        started = time.monotonic()
        self.process.send_signal(signum)
        self.process.wait(timeout=STOP_WITHIN)
        while leftovers(self.data_dir) and time.monotonic() - started < STOP_WITHIN:
            time.sleep(0.05)
        return time.monotonic() - started

    def output(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.read().decode(errors="replace")


def env_for(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAMIFY_")}
    return {**env, "GAMIFY_DATA_DIR": str(data_dir), "GAMIFY_ADMIN_TOKEN": ADMIN_TOKEN}


def leftovers(data_dir: Path) -> list[str]:
    """Command lines of live processes that name the data folder."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if str(data_dir) in cmdline and process.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(cmdline)
    return found


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "data"
    yield folder
    for process in psutil.process_iter(["cmdline"]):  # never leak servers into other tests
        if str(folder) in " ".join(process.info["cmdline"] or []):
            process.kill()


def test_sigterm_stops_everything_and_a_restart_keeps_the_data(data_dir: Path) -> None:
    first = Served(data_dir)
    first.wait_ready()
    assert any("postgres" in line for line in leftovers(data_dir))
    assert any("valkey" in line for line in leftovers(data_dir))
    created = httpx.post(
        f"{first.url}/v1/admin/tenants", json={"id": "acme", "name": "Acme"}, headers=ADMIN
    )
    assert created.status_code == 201
    assert first.stop(signal.SIGTERM) < STOP_WITHIN
    assert first.process.returncode == 0, first.output()
    assert leftovers(data_dir) == []

    second = Served(data_dir)
    second.wait_ready()
    again = httpx.post(
        f"{second.url}/v1/admin/tenants", json={"id": "acme", "name": "Acme"}, headers=ADMIN
    )
    assert again.status_code == 409, "the tenant did not survive the restart"
    assert second.stop(signal.SIGINT) < STOP_WITHIN
    assert leftovers(data_dir) == []


def test_a_second_serve_refuses_and_the_cli_shares_the_running_servers(data_dir: Path) -> None:
    served = Served(data_dir)
    served.wait_ready()
    try:
        rival = subprocess.run(
            [sys.executable, "-m", "gamify", "serve", "--port", str(free_port())],
            env=env_for(data_dir),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert rival.returncode != 0
        assert "in use by another gamify" in rival.stderr

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            done = subprocess.run(
                [sys.executable, "-m", "gamify", *args],
                env=env_for(data_dir),
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, done.stderr
            return done

        cli("tenant", "create", "acme", "--name", "Acme Air")
        key = cli("key", "create", "acme", "--scope", "read", "--scope", "events:write")
        me = httpx.get(f"{served.url}/v1/me", headers=bearer(key.stdout.strip()))
        assert me.status_code == 200
        assert me.json()["scopes"] == ["events:write", "read"]
        assert httpx.get(f"{served.url}/ready").status_code == 200
    finally:
        served.stop()
    assert leftovers(data_dir) == []


def test_with_urls_set_serve_starts_no_servers(data_dir: Path, servers: Servers) -> None:
    served = Served(
        data_dir, GAMIFY_DATABASE_URL=servers.database_url, GAMIFY_REDIS_URL=servers.redis_url
    )
    try:
        served.wait_ready()
        assert leftovers(data_dir) == []
        assert not (data_dir / "postgres").exists()
        assert not (data_dir / "valkey").exists()
    finally:
        served.stop()
