"""HTTP basics: liveness, docs without a network, and problem+json for every error."""

from __future__ import annotations

import logging
import re

import pytest
from litestar import Litestar, get
from litestar.testing import AsyncTestClient

from tests.gamify.support import ADMIN, assert_problem


async def test_health_answers_ok(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_when_postgres_and_redis_answer(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/ready")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ready", "checks": {"postgres": "ok", "redis": "ok"}}


async def test_unknown_path_is_a_404_problem(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/v1/nothing-here")
    body = assert_problem(response, 404)
    assert body["request_id"] == response.headers["x-request-id"]


async def test_wrong_method_is_a_405_problem(client: AsyncTestClient[Litestar]) -> None:
    response = await client.delete("/health")
    assert_problem(response, 405)
    assert "GET" in response.headers["allow"]


async def test_malformed_json_is_a_400_problem_naming_the_body(
    client: AsyncTestClient[Litestar],
) -> None:
    response = await client.post(
        "/v1/admin/tenants", content=b'{"id": "acme", "name":', headers=ADMIN
    )
    body = assert_problem(response, 400)
    assert body["errors"][0]["field"] == "body"


async def test_wrong_field_type_names_the_field(client: AsyncTestClient[Litestar]) -> None:
    response = await client.post("/v1/admin/tenants", json={"id": "acme", "name": 5}, headers=ADMIN)
    body = assert_problem(response, 400)
    assert [e["field"] for e in body["errors"]] == ["name"]


async def test_body_over_one_mebibyte_is_a_413_problem(client: AsyncTestClient[Litestar]) -> None:
    huge = b'{"id": "acme", "name": "' + b"x" * (1024 * 1024) + b'"}'
    response = await client.post("/v1/admin/tenants", content=huge, headers=ADMIN)
    assert_problem(response, 413)


async def test_unexpected_error_is_a_500_problem_without_a_stack_trace(
    app: Litestar,
    caplog: pytest.LogCaptureFixture,
) -> None:
    @get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    app.register(boom)
    async with AsyncTestClient(app) as client:
        with caplog.at_level(logging.ERROR):
            response = await client.get("/boom", headers={"x-request-id": "trace-42"})
    body = assert_problem(response, 500)
    assert "secret internals" not in response.text
    assert body["request_id"] == "trace-42"
    assert any("trace-42" in record.getMessage() for record in caplog.records)


async def test_request_id_is_echoed_or_made_up(client: AsyncTestClient[Litestar]) -> None:
    given = await client.get("/health", headers={"x-request-id": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    unsafe = await client.get("/health", headers={"x-request-id": "no spaces\tplease"})
    assert re.fullmatch(r"[0-9a-f]{16}", unsafe.headers["x-request-id"])


async def test_openapi_document_lists_the_endpoints(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {"/health", "/ready", "/v1/admin/tenants"} <= set(paths)


async def test_docs_page_loads_only_local_assets(client: AsyncTestClient[Litestar]) -> None:
    page = await client.get("/schema")
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets, page.text
    for asset in assets:
        assert asset.startswith("/schema/assets/"), asset
        fetched = await client.get(asset)
        assert fetched.status_code == 200, asset
