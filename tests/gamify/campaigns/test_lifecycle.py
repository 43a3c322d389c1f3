"""A campaign that ends, lives forever or meets extreme input never breaks its tenant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.gamify.support import (
    assert_problem,
    bearer,
    earn_your_wings,
    flight,
    hours_ago,
    post_events,
    tenant_key,
)

PARTNER = ("events:write", "campaigns:write", "read")


async def test_ending_a_campaign_changes_no_score_badge_or_rank(
    client: AsyncTestClient[Litestar],
) -> None:
    headers = bearer(await tenant_key(client, scopes=PARTNER))
    for campaign_id in ("earn-your-wings", "other"):
        document = earn_your_wings(campaign_id=campaign_id)
        assert (await client.post("/v1/campaigns", json=document, headers=headers)).is_success
    await post_events(
        client,
        headers,
        flight("a1", "p1", "YVR", hours_ago(5)),
        flight("a2", "p1", "YYC", hours_ago(4)),
        flight("b1", "p2", "YUL", hours_ago(3)),
    )
    board = "/v1/campaigns/earn-your-wings/leaderboard"
    before = (await client.get(board, headers=headers)).json()
    profile_before = (await client.get("/v1/players/p1", headers=headers)).json()

    ended = await client.post("/v1/campaigns/earn-your-wings/end", headers=headers)
    assert ended.status_code == 200, ended.text
    assert ended.json()["status"] == "ended"

    assert (await client.get(board, headers=headers)).json() == before
    assert (await client.get("/v1/players/p1", headers=headers)).json() == profile_before
    # Within the grace, p1's events still count; every campaign of the tenant takes events.
    late = await post_events(client, headers, flight("a3", "p1", "YEG", hours_ago(1)))
    assert late[0]["status"] == "accepted"
    counted = {a["campaign"]: a["badge"] for a in late[0]["awards"]}
    assert counted == {"earn-your-wings": "yeg", "other": "yeg"}
    after = {
        e["player"]: e["score"]
        for e in (await client.get(board, headers=headers)).json()["entries"]
    }
    assert after == {"p1": 3, "p2": 1}


async def test_a_campaign_beyond_the_limits_is_a_400_naming_each_field(
    client: AsyncTestClient[Litestar],
) -> None:
    headers = bearer(await tenant_key(client, scopes=PARTNER))
    forever = {**earn_your_wings(), "ends_at": "9999-12-31T23:59:59Z", "grace": "P99999999D"}
    body = assert_problem(await client.post("/v1/campaigns", json=forever, headers=headers), 400)
    assert {e["field"] for e in body["errors"]} == {"ends_at", "grace"}

    ancient = {**earn_your_wings(), "starts_at": "0001-01-01T00:00:00+01:00"}
    body = assert_problem(await client.post("/v1/campaigns", json=ancient, headers=headers), 400)
    assert "starts_at" in {e["field"] for e in body["errors"]}

    start = datetime.now(UTC)
    decade = {
        **earn_your_wings(starts_at=start),
        "ends_at": (start + timedelta(days=3654)).isoformat(),
    }
    body = assert_problem(await client.post("/v1/campaigns", json=decade, headers=headers), 400)
    assert [e["field"] for e in body["errors"]] == ["ends_at"]

    within = earn_your_wings()
    within["badges"][0]["criteria"]["within"] = "P99999D"
    body = assert_problem(await client.post("/v1/campaigns", json=within, headers=headers), 400)
    assert [e["field"] for e in body["errors"]] == ["badges[0].criteria.within"]

    # Nothing was created, and the tenant's events are still taken.
    assert (await client.get("/v1/campaigns", headers=headers)).json()["items"] == []
    assert (await post_events(client, headers, flight("e1", "p1", "YVR", hours_ago(1))))[0][
        "status"
    ] == "accepted"


async def test_the_longest_campaign_allowed_takes_events(
    client: AsyncTestClient[Litestar],
) -> None:
    headers = bearer(await tenant_key(client, scopes=PARTNER))
    start = datetime.now(UTC) - timedelta(days=1)
    longest = {
        **earn_your_wings(starts_at=start),
        "ends_at": (start + timedelta(days=3653)).isoformat(),
        "grace": "P30D",
    }
    assert (await client.post("/v1/campaigns", json=longest, headers=headers)).status_code == 201
    results = await post_events(client, headers, flight("e1", "p1", "YVR", hours_ago(1)))
    assert results[0]["awards"][0]["badge"] == "yvr"
    assert results[0]["scores"][0]["rank"] == 1


async def test_events_at_the_ends_of_time_are_rejected_alone(
    client: AsyncTestClient[Litestar],
) -> None:
    headers = bearer(await tenant_key(client, scopes=PARTNER))
    await client.post("/v1/campaigns", json=earn_your_wings(), headers=headers)
    events = [
        {**flight("old", "p1", "YVR", hours_ago(1)), "occurred_at": "0001-01-01T00:00:00+01:00"},
        {**flight("far", "p1", "YVR", hours_ago(1)), "occurred_at": "9999-12-31T23:00:00-02:00"},
        {**flight("y69", "p1", "YVR", hours_ago(1)), "occurred_at": "1969-12-31T23:59:59Z"},
        flight("ok", "p1", "YVR", hours_ago(1)),
    ]
    results = await post_events(client, headers, *events)
    assert [r["status"] for r in results] == ["rejected", "rejected", "rejected", "accepted"]
    assert "1970" in results[0]["error"] and "future" in results[1]["error"]
    again = await post_events(client, headers, *events)  # the same ids again: the same answers
    assert [r["status"] for r in again] == ["rejected", "rejected", "rejected", "duplicate"]


async def test_a_missing_timezone_beside_a_grace_and_huge_points_are_400s(
    client: AsyncTestClient[Litestar],
) -> None:
    headers = bearer(await tenant_key(client, scopes=PARTNER))
    zoneless = earn_your_wings()
    del zoneless["timezone"]
    body = assert_problem(await client.post("/v1/campaigns", json=zoneless, headers=headers), 400)
    assert [e["field"] for e in body["errors"]] == ["timezone"]

    greedy = earn_your_wings()
    greedy["badges"][0]["points"] = 2**31
    greedy["scoring"][0]["points"] = 2**31
    body = assert_problem(await client.post("/v1/campaigns", json=greedy, headers=headers), 400)
    assert {e["field"] for e in body["errors"]} == {"badges[0].points", "scoring[0].points"}


async def test_a_loyalty_secret_must_be_a_standard_webhooks_key_and_is_never_read_back(
    client: AsyncTestClient[Litestar],
) -> None:
    headers = bearer(await tenant_key(client, scopes=PARTNER))
    campaign = earn_your_wings()
    campaign["loyalty"] = {"url": "https://loyalty.example/credits", "secret": "not a key at all"}
    body = assert_problem(await client.post("/v1/campaigns", json=campaign, headers=headers), 400)
    assert [e["field"] for e in body["errors"]] == ["loyalty.secret"]

    campaign["loyalty"]["secret"] = "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ="
    created = await client.post("/v1/campaigns", json=campaign, headers=headers)
    assert created.json()["document"]["loyalty"]["secret"] == "whsec_…"
    assert "c2Vj" not in created.text


async def test_ranked_tiers_that_settlement_could_not_use_are_refused_at_creation(
    client: AsyncTestClient[Litestar],
) -> None:
    headers = bearer(await tenant_key(client, scopes=PARTNER))
    campaign = earn_your_wings()
    campaign["prize_pool"] = {
        "amount": 1000,
        "unit": "miles",
        "split": "ranked",
        "tiers": [
            {"ranks": "1", "share": 0.33333333333},
            {"ranks": "2-10", "share": 0.33333333333},
            {"ranks": "8-", "share": 0.33333333333},
        ],
    }
    body = assert_problem(await client.post("/v1/campaigns", json=campaign, headers=headers), 400)
    fields = {e["field"] for e in body["errors"]}
    assert "prize_pool.tiers[2].ranks" in fields  # overlaps ranks 8-10
    assert any("exactly 1" in e["message"] for e in body["errors"])
