"""Resolve where Postgres and Redis are: the configured URLs, or embedded servers."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from gamify.platform.embedded import DataDirBusy, EmbeddedServers, read_running
from gamify.platform.settings import Settings

log = logging.getLogger(__name__)


@contextlib.contextmanager
def servers_for(settings: Settings, *, owner: bool, redis: bool = True) -> Iterator[Settings]:
    """Yield settings whose database URL (and Redis URL, with `redis`) are set.

    With `owner`, this process must own any embedded servers it needs (`gamify serve`);
    otherwise it borrows the servers of a running owner when there is one (CLI commands),
    and starts its own for the duration of the command when there is not.
    """
    start_postgres = settings.database_url is None
    start_valkey = redis and settings.redis_url is None
    if not (start_postgres or start_valkey):
        yield settings
        return
    # Only an owner supervises: a command's own servers live no longer than the command.
    servers = EmbeddedServers(
        settings.data_dir, postgres=start_postgres, valkey=start_valkey, supervise=owner
    )
    try:
        servers.start()
    except DataDirBusy:
        running = read_running(settings.data_dir.resolve())
        if owner or running is None:
            raise
        log.debug("using the servers of gamify pid %s", running.owner_pid)
        yield settings.with_urls(
            settings.database_url or _required(running.database_url),
            settings.redis_url or (running.redis_url if redis else None),
        )
        return
    try:
        yield settings.with_urls(
            settings.database_url or _required(servers.database_url),
            settings.redis_url or servers.redis_url,
        )
    finally:
        servers.stop()


def _required(url: str | None) -> str:
    if url is None:
        raise DataDirBusy("the running gamify does not serve the embedded server this needs")
    return url
