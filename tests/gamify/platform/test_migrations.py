"""Migrations: numbered files, applied in order, each once, even by concurrent starts."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from gamify.platform import migrations
from tests.gamify.support import Servers


@pytest.fixture
async def fresh_database(servers: Servers) -> AsyncIterator[str]:
    """A new empty database on the test server; returns its URL."""
    name = f"fresh_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(servers.database_url)
    await admin.execute(f"CREATE DATABASE {name}")
    parts = urlsplit(servers.database_url)
    yield urlunsplit(parts._replace(path=f"/{name}"))
    await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    await admin.close()


async def test_four_concurrent_starts_apply_each_migration_once(
    fresh_database: str, servers: Servers, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "GAMIFY_DATABASE_URL": fresh_database,
        "GAMIFY_REDIS_URL": servers.redis_url,
        "GAMIFY_DATA_DIR": str(tmp_path),
    }
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gamify",
            "migrate",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        for _ in range(4)
    ]
    outputs = await asyncio.gather(*(p.communicate() for p in processes))
    for process, (output, _) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output.decode()

    conn = await asyncpg.connect(fresh_database)
    try:
        rows = await conn.fetch("SELECT version FROM gamify_migrations ORDER BY version")
        assert [row["version"] for row in rows] == [m.version for m in migrations.load()]
        assert await migrations.apply(conn) == []
    finally:
        await conn.close()


async def test_an_edited_applied_migration_is_refused(fresh_database: str, tmp_path: Path) -> None:
    (tmp_path / "0001_first.sql").write_text("CREATE TABLE first (id int);")
    conn = await asyncpg.connect(fresh_database)
    try:
        assert await migrations.apply(conn, migrations.load(tmp_path)) == [1]
        (tmp_path / "0001_first.sql").write_text("CREATE TABLE first (id bigint);")
        with pytest.raises(migrations.MigrationError, match="changed after it was applied"):
            await migrations.apply(conn, migrations.load(tmp_path))
    finally:
        await conn.close()


async def test_a_failing_migration_leaves_nothing_behind(
    fresh_database: str, tmp_path: Path
) -> None:
    (tmp_path / "0001_good.sql").write_text("CREATE TABLE good (id int);")
    (tmp_path / "0002_bad.sql").write_text("CREATE TABLE half (id int); SELECT nonsense;")
    conn = await asyncpg.connect(fresh_database)
    try:
        with pytest.raises(asyncpg.PostgresError):
            await migrations.apply(conn, migrations.load(tmp_path))
        assert await migrations.applied_version(conn) == 1
        assert await conn.fetchval("SELECT to_regclass('half')") is None
    finally:
        await conn.close()


def test_files_are_numbered_and_ordered() -> None:
    found = migrations.load()
    assert found, "no migrations found"
    assert [m.version for m in found] == sorted(m.version for m in found)
    assert found[0].version == 1
