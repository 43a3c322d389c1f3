"""One `gamify serve` for the live tests, on the session's Postgres and Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.gamify.support import Servers, Service


@pytest.fixture(scope="module")
def service(
    servers: Servers, migrated: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    running = Service(servers, migrated, tmp_path_factory.mktemp("live"))
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()
