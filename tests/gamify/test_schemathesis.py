"""Schemathesis over the OpenAPI document against a running server: no input may be a 5xx.

Stateless and bounded: a fixed number of generated requests per operation, each sent with a
key that holds every scope (so that bodies reach the handlers), against `gamify serve`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from gamify.platform.embedded.ports import free_port
from tests.gamify.support import ADMIN, ADMIN_TOKEN, Servers, bearer, earn_your_wings

pytestmark = pytest.mark.slow
ALL_SCOPES = ["events:write", "campaigns:write", "read", "players:token"]


class Live:
    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.url = url
        self.headers = headers


@pytest.fixture(scope="module")
def live(
    servers: Servers, migrated: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GAMIFY_")},
        "GAMIFY_DATABASE_URL": migrated,
        "GAMIFY_REDIS_URL": servers.redis_url,
        "GAMIFY_ADMIN_TOKEN": ADMIN_TOKEN,
        "GAMIFY_LOG_LEVEL": "WARNING",
        "GAMIFY_DATA_DIR": str(tmp_path_factory.mktemp("schemathesis")),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "gamify", "serve", "--port", str(port)], env=env
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        tenant = "fuzz-" + str(port)
        httpx.post(f"{url}/v1/admin/tenants", json={"id": tenant, "name": "Fuzz"}, headers=ADMIN)
        key = httpx.post(
            f"{url}/v1/admin/tenants/{tenant}/keys", json={"scopes": ALL_SCOPES}, headers=ADMIN
        ).json()["key"]
        httpx.post(f"{url}/v1/campaigns", json=earn_your_wings(), headers=bearer(key))
        yield Live(url, bearer(key))
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_no_generated_request_is_a_server_error(live: Live) -> None:
    api = schemathesis.openapi.from_url(f"{live.url}/schema/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 10
    for operation in operations:
        exercise(operation, live.url, ADMIN if "admin" in operation.path else live.headers)


def exercise(operation: Any, url: str, headers: dict[str, str]) -> None:
    @settings(
        max_examples=50, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(case=operation.as_strategy())
    def no_server_error(case: Any) -> None:
        response = case.call(base_url=url, headers=headers, timeout=10)
        assert response.status_code < 500, (case.method, case.path, response.text)
        if response.status_code >= 400:
            [content_type] = response.headers["content-type"]
            assert content_type.startswith("application/problem+json"), case.path

    no_server_error()


def test_the_award_endpoint_body_is_documented(live: Live) -> None:
    paths = httpx.get(f"{live.url}/schema/openapi.json").json()["paths"]
    assert "requestBody" in paths["/v1/events"]["post"]
