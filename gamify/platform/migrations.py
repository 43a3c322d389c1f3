"""Numbered `.sql` files applied in order, each once, in a transaction, under an advisory lock.

The lock makes N instances starting at once apply each file exactly once: the first one in
applies, the others wait and then find nothing left to do.
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

import asyncpg
import msgspec

from gamify.platform.db import Conn

log = logging.getLogger(__name__)

# "gamify" in ASCII: any constant works as long as nothing else takes the same key.
ADVISORY_LOCK_KEY = 0x67616D696679
FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS gamify_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""
APPLIED = "SELECT version, checksum FROM gamify_migrations ORDER BY version"
RECORD = "INSERT INTO gamify_migrations (version, name, checksum) VALUES ($1, $2, $3)"
LATEST_APPLIED = """
SELECT coalesce(max(version), 0) FROM gamify_migrations
"""


class MigrationError(RuntimeError):
    pass


class Migration(msgspec.Struct, frozen=True):
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations_dir() -> Path:
    package = Path(__file__).resolve().parent.parent
    installed = package / "_migrations"  # where the wheel puts them
    return installed if installed.is_dir() else package.parent / "migrations"


def load(directory: Path | None = None) -> list[Migration]:
    found: list[Migration] = []
    for path in sorted((directory or migrations_dir()).glob("*.sql")):
        match = FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: migration files are named NNNN_name.sql")
        found.append(Migration(int(match[1]), match[2], path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a number")
    return found


def latest_version(migrations: list[Migration] | None = None) -> int:
    known = load() if migrations is None else migrations
    return max((m.version for m in known), default=0)


async def apply(conn: Conn, migrations: list[Migration] | None = None) -> list[int]:
    """Apply what is pending; returns the versions this call applied."""
    todo = load() if migrations is None else migrations
    await conn.execute("SELECT pg_advisory_lock($1)", ADVISORY_LOCK_KEY)
    try:
        await conn.execute(CREATE_LEDGER)
        applied = {row["version"]: row["checksum"] for row in await conn.fetch(APPLIED)}
        done: list[int] = []
        for migration in todo:
            if migration.version in applied:
                if applied[migration.version] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version:04d}_{migration.name} changed after it "
                        "was applied; add a new migration instead of editing an applied one"
                    )
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(RECORD, migration.version, migration.name, migration.checksum)
            log.info("applied migration %04d_%s", migration.version, migration.name)
            done.append(migration.version)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_KEY)


async def applied_version(conn: Conn) -> int:
    """The newest applied version, 0 when none (or the ledger does not exist yet)."""
    try:
        version: int = await conn.fetchval(LATEST_APPLIED)
    except asyncpg.UndefinedTableError:
        return 0
    return version
