"""Problems as API.md has them: `type` and `errors` on every one, and a 400 naming every bad
field of a body (an event's, a tenant's, a key's, a player's) or the parameter at fault."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Litestar
from litestar.testing import AsyncTestClient

from gamify.platform.problems import ApiError, Problem
from tests.gamify.support import (
    ADMIN,
    assert_problem,
    bearer,
    earn_your_wings,
    flight,
    hours_ago,
    tenant_key,
)

EVERYTHING = ("events:write", "campaigns:write", "read", "players:token")


def fields(response: Any) -> list[str]:
    return [e["field"] for e in assert_problem(response, 400)["errors"]]


async def partner(client: AsyncTestClient[Litestar]) -> dict[str, str]:
    """A tenant with the live "Earn your wings" campaign; its key's headers."""
    headers = bearer(await tenant_key(client, scopes=EVERYTHING))
    created = await client.post("/v1/campaigns", json=earn_your_wings(), headers=headers)
    assert created.status_code == 201, created.text
    return headers


# type and errors, always


async def test_a_404_a_405_and_a_401_carry_type_and_empty_errors(
    client: AsyncTestClient[Litestar],
) -> None:
    answers = [
        (await client.get("/v1/nothing-here"), 404),
        (await client.delete("/health"), 405),
        (await client.get("/v1/me", headers=bearer("gk_" + "A" * 43)), 401),
    ]
    for response, status in answers:
        body = assert_problem(response, status)
        assert body["type"] == "about:blank"
        assert body["errors"] == []
        assert body["request_id"] == response.headers["x-request-id"]


async def test_a_413_carries_type_and_errors(client: AsyncTestClient[Litestar]) -> None:
    huge = b'{"id": "acme", "name": "' + b"x" * (1024 * 1024) + b'"}'
    body = assert_problem(await client.post("/v1/admin/tenants", content=huge, headers=ADMIN), 413)
    assert (body["type"], body["errors"]) == ("about:blank", [])


def test_a_problem_without_detail_or_errors_still_has_type_and_errors() -> None:
    wire = msgspec.json.decode(msgspec.json.encode(ApiError(503, "Service Unavailable").problem))
    assert wire == {
        "type": "about:blank",
        "title": "Service Unavailable",
        "status": 503,
        "errors": [],
    }
    assert "detail" not in msgspec.json.decode(msgspec.json.encode(Problem(title="t", status=500)))


# every bad field of a body


async def test_one_event_with_three_bad_fields_names_all_three(
    client: AsyncTestClient[Litestar],
) -> None:
    headers = await partner(client)
    good = flight("ok", "p-1", "YVR", hours_ago(1))
    bad = {**good, "id": "bad", "occurred_at": "yesterday", "foo": 1}
    del bad["player"]
    response = await client.post("/v1/events", json={"events": [good, bad]}, headers=headers)
    assert fields(response) == ["events[1].occurred_at", "events[1].player", "events[1].foo"]


async def test_events_that_are_no_objects_or_hold_nul_are_named(
    client: AsyncTestClient[Litestar],
) -> None:
    headers = await partner(client)
    good = flight("ok", "p-1", "YVR", hours_ago(1))
    both = {**good, "id": 7, "player": "p\x00"}  # a bad id, and U+0000 in a valid player
    response = await client.post("/v1/events", json={"events": [5, both, good]}, headers=headers)
    assert fields(response) == ["events[0]", "events[1].id", "events[1].player"]


async def test_a_tenant_with_a_bad_id_and_an_unknown_field_names_both(
    client: AsyncTestClient[Litestar],
) -> None:
    body = {"id": "Not A Slug", "name": "Acme", "plan": "gold"}
    response = await client.post("/v1/admin/tenants", json=body, headers=ADMIN)
    assert fields(response) == ["id", "plan"]
    missing = await client.post("/v1/admin/tenants", json={"name": 5}, headers=ADMIN)
    assert fields(missing) == ["name", "id"]


async def test_a_key_with_an_unknown_scope_and_a_bad_rate_limit_names_both(
    client: AsyncTestClient[Litestar],
) -> None:
    await tenant_key(client)
    body = {"scopes": ["read", "root"], "rate_limit": 0}
    response = await client.post("/v1/admin/tenants/acme/keys", json=body, headers=ADMIN)
    assert fields(response) == ["scopes[1]", "rate_limit"]
    # `$` of a Python pattern also matches before a final newline; no scope may end in one.
    newline = {"scopes": ["read\n"]}
    response = await client.post("/v1/admin/tenants/acme/keys", json=newline, headers=ADMIN)
    assert fields(response) == ["scopes[0]"]


async def test_a_player_body_names_every_bad_field(client: AsyncTestClient[Litestar]) -> None:
    headers = await partner(client)
    body = {"display_name": "x" * 201, "metadata": {"seat": "1\x00A"}, "nick": "P"}
    response = await client.put("/v1/players/p-1", json=body, headers=headers)
    assert fields(response) == ["display_name", "metadata.seat", "nick"]


async def test_bodies_that_are_not_json_objects_name_the_body(
    client: AsyncTestClient[Litestar],
) -> None:
    headers = await partner(client)
    for content in (b"", b"[]", b'{"id": "acme",', b"null"):
        for path, auth in (("/v1/admin/tenants", ADMIN), ("/v1/events", headers)):
            assert fields(await client.post(path, content=content, headers=auth)) == ["body"]
        assert fields(await client.put("/v1/players/p-1", content=content, headers=headers)) == [
            "body"
        ]


# parameters


async def test_bad_parameters_are_named(client: AsyncTestClient[Litestar]) -> None:
    headers = await partner(client)
    board = "/v1/campaigns/earn-your-wings/leaderboard"
    assert fields(await client.get("/v1/campaigns/Not-A-Slug/leaderboard", headers=headers)) == [
        "campaign_id"
    ]
    assert fields(await client.get(f"{board}/players/{'x' * 129}", headers=headers)) == ["player"]
    assert fields(await client.get("/v1/players/p%00", headers=headers)) == ["player"]
    odd = await client.get(board, params={"board": "monthly", "after": ""}, headers=headers)
    assert fields(odd) == ["board", "after"]
    far = await client.get(f"{board}/players/p-1", params={"around": 51}, headers=headers)
    assert fields(far) == ["around"]
    key = await client.post("/v1/admin/tenants/ACME/keys", json={"scopes": ["read"]}, headers=ADMIN)
    assert fields(key) == ["tenant_id"]


# the valid paths


async def test_valid_bodies_and_parameters_still_work(client: AsyncTestClient[Litestar]) -> None:
    created = await client.post(
        "/v1/admin/tenants", json={"id": "air-canada", "name": "Air Canada"}, headers=ADMIN
    )
    assert created.status_code == 201, created.text
    issued = await client.post(
        "/v1/admin/tenants/air-canada/keys",
        json={"scopes": list(EVERYTHING), "rate_limit": 100},
        headers=ADMIN,
    )
    assert issued.status_code == 201, issued.text
    headers = bearer(issued.json()["key"])
    campaign = await client.post("/v1/campaigns", json=earn_your_wings(), headers=headers)
    assert campaign.status_code == 201, campaign.text
    named = await client.put(
        "/v1/players/p-1", json={"display_name": "Ada", "metadata": {"tier": 1}}, headers=headers
    )
    assert named.json() == {"player": "p-1", "display_name": "Ada", "metadata": {"tier": 1}}
    events = {"events": [flight("pnr-1", "p-1", "YVR", hours_ago(1))]}
    posted = await client.post("/v1/events", json=events, headers=headers)
    assert [r["status"] for r in posted.json()["results"]] == ["accepted"]
    board = "/v1/campaigns/earn-your-wings/leaderboard"
    page = await client.get(board, params={"board": "campaign", "limit": 1}, headers=headers)
    assert page.json()["entries"][0]["player"] == "p-1"
    standing = await client.get(f"{board}/players/p-1", params={"around": 0}, headers=headers)
    assert standing.json()["rank"] == 1


# the document


async def test_every_error_the_document_lists_is_a_problem(
    client: AsyncTestClient[Litestar],
) -> None:
    paths = (await client.get("/schema/openapi.json")).json()["paths"]
    for path, item in paths.items():
        for method, operation in item.items():
            errors = {
                status: response
                for status, response in operation["responses"].items()
                if status[0] in "45" or status == "default"
            }
            for status, response in errors.items():
                assert list(response["content"]) == ["application/problem+json"], (path, status)
            if path in ("/health", "/ready"):
                continue  # no input to get wrong; /ready lists its 503
            schema = errors["default"]["content"]["application/problem+json"]["schema"]
            assert {"type", "errors"} <= set(schema["required"]), (method, path)


async def test_the_bodies_handlers_decode_themselves_are_documented(
    client: AsyncTestClient[Litestar],
) -> None:
    paths = (await client.get("/schema/openapi.json")).json()["paths"]
    operations = {
        ("/v1/events", "post"): "events",
        ("/v1/admin/tenants", "post"): "id",
        ("/v1/admin/tenants/{tenant_id}/keys", "post"): "scopes",
        ("/v1/players/{player}", "put"): "display_name",
    }
    for (path, method), member in operations.items():
        body = paths[path][method]["requestBody"]["content"]["application/json"]["schema"]
        assert member in body["properties"], (path, body)
