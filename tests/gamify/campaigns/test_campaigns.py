"""Campaigns: created, read, listed and changed by campaign managers, per tenant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.gamify.support import assert_problem, bearer, earn_your_wings, tenant_key

MANAGER = ("campaigns:write", "read")


async def test_create_then_read_a_live_campaign(client: AsyncTestClient[Litestar]) -> None:
    key = await tenant_key(client, scopes=MANAGER)
    created = await client.post("/v1/campaigns", json=earn_your_wings(), headers=bearer(key))
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["id"], body["status"], body["version"]) == ("earn-your-wings", "live", 1)
    assert body["document"]["loyalty"]["secret"] == "whsec_…", "the secret is never read back"

    read = await client.get("/v1/campaigns/earn-your-wings", headers=bearer(key))
    assert read.json() == body
    listed = await client.get("/v1/campaigns", headers=bearer(key))
    assert [c["id"] for c in listed.json()["items"]] == ["earn-your-wings"]


async def test_status_follows_the_clock(client: AsyncTestClient[Litestar]) -> None:
    key = await tenant_key(client, scopes=MANAGER)
    now = datetime.now(UTC)
    cases = {
        "past": (now - timedelta(days=100), "ended"),
        "future": (now + timedelta(days=1), "scheduled"),
    }
    for name, (start, expected) in cases.items():
        document = earn_your_wings(starts_at=start, days=30, campaign_id=name)
        response = await client.post("/v1/campaigns", json=document, headers=bearer(key))
        assert response.json()["status"] == expected, name


async def test_every_bad_field_is_named_and_nothing_is_written(
    client: AsyncTestClient[Litestar], db: asyncpg.Connection
) -> None:
    key = await tenant_key(client, scopes=MANAGER)
    document = earn_your_wings()
    document["id"] = "Bad Id"
    document["timezone"] = "Mars/Olympus"
    document["leaderboards"] = ["hourly"]
    document["badges"][0]["criteria"]["kind"] = "magic"
    document["badges"][12]["criteria"]["threshold"] = -1
    document["badges"][1]["id"] = document["badges"][2]["id"]
    document["prize_pool"]["split"] = "ranked"
    response = await client.post("/v1/campaigns", json=document, headers=bearer(key))
    fields = {e["field"] for e in assert_problem(response, 400)["errors"]}
    assert {
        "id",
        "timezone",
        "leaderboards[0]",
        "badges[0].criteria.kind",
        "badges[12].criteria.threshold",
        "prize_pool.tiers",
    } <= fields, fields
    assert any(f.startswith("badges[2]") or f.startswith("badges[1]") for f in fields), fields
    assert await db.fetchval("SELECT count(*) FROM campaigns") == 0


async def test_a_campaign_id_with_a_trailing_newline_is_refused(
    client: AsyncTestClient[Litestar],
) -> None:
    key = await tenant_key(client, scopes=MANAGER)
    document = earn_your_wings(campaign_id="wings\n")
    response = await client.post("/v1/campaigns", json=document, headers=bearer(key))
    assert [e["field"] for e in assert_problem(response, 400)["errors"]] == ["id"]
    read = await client.get("/v1/campaigns/wings%0A", headers=bearer(key))
    assert read.status_code in (400, 404), read.text


async def test_same_id_twice_is_a_conflict(client: AsyncTestClient[Litestar]) -> None:
    key = await tenant_key(client, scopes=MANAGER)
    assert (
        await client.post("/v1/campaigns", json=earn_your_wings(), headers=bearer(key))
    ).status_code == 201
    again = await client.post("/v1/campaigns", json=earn_your_wings(), headers=bearer(key))
    assert_problem(again, 409)


async def test_rules_change_before_the_start_only(
    client: AsyncTestClient[Litestar], db: asyncpg.Connection
) -> None:
    key = await tenant_key(client, scopes=MANAGER)
    later = datetime.now(UTC) + timedelta(days=2)
    await client.post(
        "/v1/campaigns",
        json=earn_your_wings(starts_at=later, campaign_id="soon"),
        headers=bearer(key),
    )
    await client.post("/v1/campaigns", json=earn_your_wings(campaign_id="now"), headers=bearer(key))
    scoring = {"scoring": [{"event": "flight.completed", "points": 10}]}

    before = await client.patch("/v1/campaigns/soon", json=scoring, headers=bearer(key))
    assert before.status_code == 200, before.text
    assert before.json()["version"] == 2
    assert before.json()["document"]["scoring"][0]["points"] == 10

    live = await client.patch("/v1/campaigns/now", json=scoring, headers=bearer(key))
    assert [e["field"] for e in assert_problem(live, 409)["errors"]] == ["scoring"]
    renamed = await client.patch(
        "/v1/campaigns/now", json={"name": "Earn your wings 2013"}, headers=bearer(key)
    )
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Earn your wings 2013"

    invalid = await client.patch(
        "/v1/campaigns/soon", json={"badges": [{"id": "x"}]}, headers=bearer(key)
    )
    assert_problem(invalid, 400)
    actions = await db.fetch(
        "SELECT action, target FROM audit_log WHERE action LIKE 'campaign.%' ORDER BY id"
    )
    assert [tuple(a) for a in actions] == [
        ("campaign.create", "soon"),
        ("campaign.create", "now"),
        ("campaign.update", "soon"),
        ("campaign.update", "now"),
    ]


async def test_end_now_ends_a_live_campaign(client: AsyncTestClient[Litestar]) -> None:
    key = await tenant_key(client, scopes=MANAGER)
    await client.post("/v1/campaigns", json=earn_your_wings(), headers=bearer(key))
    ended = await client.post("/v1/campaigns/earn-your-wings/end", headers=bearer(key))
    assert ended.status_code == 200, ended.text
    assert ended.json()["status"] == "ended"
    again = await client.post("/v1/campaigns/earn-your-wings/end", headers=bearer(key))
    assert_problem(again, 409)


async def test_scopes_are_checked(client: AsyncTestClient[Litestar]) -> None:
    reader = await tenant_key(client, scopes=("read",))
    writer = await tenant_key(client, scopes=("campaigns:write",))
    refused = await client.post("/v1/campaigns", json=earn_your_wings(), headers=bearer(reader))
    assert_problem(refused, 403)
    assert (
        await client.post("/v1/campaigns", json=earn_your_wings(), headers=bearer(writer))
    ).status_code == 201
    assert_problem(await client.get("/v1/campaigns", headers=bearer(writer)), 403)


async def test_another_tenants_campaign_is_not_found(client: AsyncTestClient[Litestar]) -> None:
    acme = await tenant_key(client, "acme", MANAGER)
    rival = await tenant_key(client, "rival", MANAGER)
    await client.post("/v1/campaigns", json=earn_your_wings(), headers=bearer(acme))
    path = "/v1/campaigns/earn-your-wings"
    assert_problem(await client.get(path, headers=bearer(rival)), 404)
    assert_problem(await client.patch(path, json={"name": "x"}, headers=bearer(rival)), 404)
    assert_problem(await client.post(f"{path}/end", headers=bearer(rival)), 404)
    assert (await client.get("/v1/campaigns", headers=bearer(rival))).json()["items"] == []
    # and the rival may use the same id for its own campaign
    assert (
        await client.post("/v1/campaigns", json=earn_your_wings(), headers=bearer(rival))
    ).status_code == 201


async def test_rules_freeze_at_the_first_counted_event_even_before_the_start(
    client: AsyncTestClient[Litestar],
) -> None:
    key = await tenant_key(client, scopes=(*MANAGER, "events:write"))
    soon = datetime.now(UTC) + timedelta(minutes=2)
    await client.post("/v1/campaigns", json=earn_your_wings(starts_at=soon), headers=bearer(key))
    early = {
        "id": "e1",
        "player": "p-1",
        "type": "flight.completed",
        "occurred_at": (soon + timedelta(minutes=1)).isoformat(),
        "attributes": {"destination": "YVR"},
    }
    posted = await client.post("/v1/events", json={"events": [early]}, headers=bearer(key))
    assert posted.json()["results"][0]["awards"], "an event up to 5 minutes early counts"
    change = await client.patch(
        "/v1/campaigns/earn-your-wings",
        json={"scoring": [{"event": "flight.completed", "points": 3}]},
        headers=bearer(key),
    )
    assert_problem(change, 409)
