"""Schemathesis over the OpenAPI document against a running server: no input may be a 5xx,
and every response must be one the document describes (status, content type, body schema).

Stateless and bounded: schemathesis's runner (`st run`, as a partner would run it) makes a
fixed number of requests per operation, valid and invalid by the document, each sent with a
key that holds every scope (so that bodies reach the handlers), against `gamify serve`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from gamify.platform.embedded.ports import free_port
from tests.gamify.support import ADMIN, ADMIN_TOKEN, Servers, bearer, earn_your_wings

pytestmark = pytest.mark.slow
ALL_SCOPES = ["events:write", "campaigns:write", "read", "players:token"]
ST_RUN = [sys.executable, "-m", "schemathesis.cli", "run"]
# Fuzzed cases per operation, beside the coverage phase's: with some 40 operations, about a
# minute of the suite's ten on two cores.
EXAMPLES = 80
# Not positive_data_acceptance: a schema cannot say everything checked (ends_at after
# starts_at, a board the campaign keeps), and the descriptions say the rest.
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
]


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


def test_every_generated_request_is_answered_as_documented(live: Live) -> None:
    paths = httpx.get(f"{live.url}/schema/openapi.json").json()["paths"]
    assert sum(len(item) for item in paths.values()) >= 10
    key_holders = st_run(live.url, live.headers, "--exclude-path-regex", "^/v1/admin/")
    operator = st_run(live.url, ADMIN, "--include-path-regex", "^/v1/admin/")
    failed = [run.stdout for run in (key_holders, operator) if run.returncode != 0]
    assert not failed, "\n".join(failed)


def st_run(url: str, headers: dict[str, str], *select: str) -> subprocess.CompletedProcess[str]:
    """schemathesis's own runner over the selected operations: its examples, its coverage
    phase (each boundary value, each required member left out, ...) and fuzzing, valid and
    invalid requests alike."""
    [(name, value)] = headers.items()
    command = [
        *ST_RUN,
        f"{url}/schema/openapi.json",
        f"--header={name}: {value}",
        f"--checks={','.join(CHECKS)}",
        f"--max-examples={EXAMPLES}",
        "--phases=examples,coverage,fuzzing",
        "--generation-database=none",
        "--request-timeout=10",
        "--no-color",
        *select,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)


def test_the_award_endpoint_body_is_documented(live: Live) -> None:
    paths = httpx.get(f"{live.url}/schema/openapi.json").json()["paths"]
    assert "requestBody" in paths["/v1/events"]["post"]
