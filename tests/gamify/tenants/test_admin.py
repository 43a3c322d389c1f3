"""Operator endpoints: tenants and keys, behind GAMIFY_ADMIN_TOKEN."""

from __future__ import annotations

import asyncpg
import msgspec
from litestar import Litestar
from litestar.testing import AsyncTestClient

from gamify.app import create_app
from gamify.platform.settings import Settings
from tests.gamify.support import ADMIN, assert_problem, bearer, tenant_key

TENANT = {"id": "air-canada", "name": "Air Canada"}


async def test_missing_token_is_refused(client: AsyncTestClient[Litestar]) -> None:
    response = await client.post("/v1/admin/tenants", json=TENANT)
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


async def test_wrong_token_is_refused(client: AsyncTestClient[Litestar]) -> None:
    for header in ("Bearer not-the-token-at-all", "Basic dXNlcjpwYXNz", "Bearer "):
        response = await client.post(
            "/v1/admin/tenants", json=TENANT, headers={"Authorization": header}
        )
        assert_problem(response, 401)
    keys = await client.post(
        "/v1/admin/tenants/air-canada/keys",
        json={"scopes": ["read"]},
        headers={"Authorization": "Bearer wrong-wrong-wrong"},
    )
    assert_problem(keys, 401)


async def test_a_tenant_key_is_not_an_admin_token(client: AsyncTestClient[Litestar]) -> None:
    key = await tenant_key(client, "acme", ("read", "events:write"))
    response = await client.post("/v1/admin/tenants", json=TENANT, headers=bearer(key))
    assert_problem(response, 401)


async def test_no_admin_token_configured_means_no_admin_api(
    settings: Settings, clean: None
) -> None:
    app = create_app(msgspec.structs.replace(settings, admin_token=None))
    async with AsyncTestClient(app) as client:
        response = await client.post(
            "/v1/admin/tenants", json=TENANT, headers={"Authorization": "Bearer anything"}
        )
    assert_problem(response, 404)


async def test_create_tenant_then_a_key_that_authenticates(
    client: AsyncTestClient[Litestar], db: asyncpg.Connection
) -> None:
    created = await client.post("/v1/admin/tenants", json=TENANT, headers=ADMIN)
    assert created.status_code == 201
    assert created.json()["id"] == "air-canada"

    issued = await client.post(
        "/v1/admin/tenants/air-canada/keys",
        json={"scopes": ["read", "events:write"]},
        headers=ADMIN,
    )
    assert issued.status_code == 201
    body = issued.json()
    assert body["key"].startswith("gk_") and len(body["key"]) == 3 + 43
    assert body["scopes"] == ["events:write", "read"]

    me = await client.get("/v1/me", headers=bearer(body["key"]))
    assert me.json() == {
        "tenant": "air-canada",
        "key_id": body["id"],
        "scopes": ["events:write", "read"],
        "rate_limit": None,
    }

    stored = await db.fetchrow("SELECT key_hash, prefix FROM api_keys")
    assert stored is not None
    assert body["key"].encode() not in bytes(stored["key_hash"])
    actions = await db.fetch("SELECT actor, action, target FROM audit_log ORDER BY id")
    assert [tuple(row) for row in actions] == [
        ("admin", "tenant.create", "air-canada"),
        ("admin", "key.create", f"key:{body['id']}"),
    ]


async def test_duplicate_tenant_is_a_conflict(client: AsyncTestClient[Litestar]) -> None:
    assert (await client.post("/v1/admin/tenants", json=TENANT, headers=ADMIN)).status_code == 201
    again = await client.post("/v1/admin/tenants", json=TENANT, headers=ADMIN)
    assert_problem(again, 409)


async def test_bad_tenant_fields_are_named(client: AsyncTestClient[Litestar]) -> None:
    response = await client.post(
        "/v1/admin/tenants", json={"id": "Not A Slug", "name": "x"}, headers=ADMIN
    )
    assert [e["field"] for e in assert_problem(response, 400)["errors"]] == ["id"]
    # Python's `$` also matches before a final newline: a slug must not.
    newline = await client.post(
        "/v1/admin/tenants", json={"id": "acme\n", "name": "x"}, headers=ADMIN
    )
    assert [e["field"] for e in assert_problem(newline, 400)["errors"]] == ["id"]
    missing = await client.post("/v1/admin/tenants", json={"id": "acme"}, headers=ADMIN)
    assert assert_problem(missing, 400)["errors"][0]["field"] in ("name", "body")


async def test_key_for_unknown_tenant_is_404(client: AsyncTestClient[Litestar]) -> None:
    response = await client.post(
        "/v1/admin/tenants/ghost/keys", json={"scopes": ["read"]}, headers=ADMIN
    )
    assert_problem(response, 404)


async def test_unknown_scope_is_named(client: AsyncTestClient[Litestar]) -> None:
    await client.post("/v1/admin/tenants", json=TENANT, headers=ADMIN)
    response = await client.post(
        "/v1/admin/tenants/air-canada/keys", json={"scopes": ["read", "root"]}, headers=ADMIN
    )
    assert [e["field"] for e in assert_problem(response, 400)["errors"]] == ["scopes[1]"]
    empty = await client.post(
        "/v1/admin/tenants/air-canada/keys", json={"scopes": []}, headers=ADMIN
    )
    assert_problem(empty, 400)


async def test_unknown_and_malformed_keys_are_refused(client: AsyncTestClient[Litestar]) -> None:
    for credential in ("gk_" + "A" * 43, "not-a-gamify-key"):
        assert_problem(await client.get("/v1/me", headers=bearer(credential)), 401)
    assert_problem(await client.get("/v1/me"), 401)


async def test_a_revoked_key_is_refused(
    client: AsyncTestClient[Litestar], settings: Settings, db: asyncpg.Connection
) -> None:
    await client.post("/v1/admin/tenants", json=TENANT, headers=ADMIN)
    issued = (
        await client.post(
            "/v1/admin/tenants/air-canada/keys", json={"scopes": ["read"]}, headers=ADMIN
        )
    ).json()
    path = f"/v1/admin/tenants/air-canada/keys/{issued['id']}"
    assert (await client.delete(path, headers=ADMIN)).status_code == 204
    assert_problem(await client.delete(path, headers=ADMIN), 404)
    assert_problem(await client.delete("/v1/admin/tenants/other/keys/1", headers=ADMIN), 404)
    async with AsyncTestClient(create_app(settings)) as fresh:  # no cached lookup there
        assert_problem(await fresh.get("/v1/me", headers=bearer(issued["key"])), 401)
    actions = await db.fetch("SELECT action FROM audit_log ORDER BY id")
    assert [a["action"] for a in actions][-1] == "key.revoke"
