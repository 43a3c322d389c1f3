"""Players: profiles with badges and progress, read by the partner or by the player's app."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.gamify.support import assert_problem, bearer, earn_your_wings, tenant_key

APP_BACKEND = ("events:write", "campaigns:write", "read", "players:token")
SECRET = "s" * 48  # the settings fixture's


async def _partner(client: AsyncTestClient[Litestar], tenant: str = "acme") -> dict[str, str]:
    key = await tenant_key(client, tenant, APP_BACKEND)
    await client.post("/v1/campaigns", json=earn_your_wings(), headers=bearer(key))
    return bearer(key)


async def _fly(
    client: AsyncTestClient[Litestar], headers: dict[str, str], player: str, *destinations: str
) -> None:
    start = datetime.now(UTC) - timedelta(days=5)
    events = [
        {
            "id": f"{player}-{i}",
            "player": player,
            "type": "flight.completed",
            "occurred_at": (start + timedelta(hours=i)).isoformat(),
            "attributes": {"destination": code},
        }
        for i, code in enumerate(destinations)
    ]
    response = await client.post("/v1/events", json={"events": events}, headers=headers)
    assert response.status_code == 200


async def test_profile_shows_badges_score_and_progress(client: AsyncTestClient[Litestar]) -> None:
    partner = await _partner(client)
    await _fly(client, partner, "p-42", "YVR", "YYC", "YVR")
    named = await client.put(
        "/v1/players/p-42",
        json={"display_name": "Ada", "metadata": {"tier": "gold"}},
        headers=partner,
    )
    assert named.json() == {"player": "p-42", "display_name": "Ada", "metadata": {"tier": "gold"}}

    profile = (await client.get("/v1/players/p-42", headers=partner)).json()
    assert profile["player"] == "p-42" and profile["display_name"] == "Ada"
    [standing] = profile["campaigns"]
    assert standing["campaign"] == "earn-your-wings"
    assert standing["score"] == 2
    assert [b["badge"] for b in standing["badges"]] == ["yvr", "yyc"]
    progress = {p["badge"]: (p["current"], p["target"]) for p in standing["progress"]}
    assert progress["explorer"] == (2, 10)
    assert progress["yvr"] == (1, 1)
    assert progress["yul"] == (0, 1)


async def test_a_player_token_reads_its_own_profile_and_nothing_else(
    client: AsyncTestClient[Litestar],
) -> None:
    partner = await _partner(client)
    await _fly(client, partner, "p-1", "YVR")
    await _fly(client, partner, "p-2", "YUL")
    issued = await client.post("/v1/players/p-1/token", headers=partner)
    assert issued.status_code == 201
    token = issued.json()["token"]
    assert datetime.fromisoformat(issued.json()["expires_at"]) > datetime.now(UTC)

    own = await client.get("/v1/players/p-1", headers=bearer(token))
    assert own.status_code == 200
    assert_problem(await client.get("/v1/players/p-2", headers=bearer(token)), 404)
    assert_problem(await client.post("/v1/events", json={"events": []}, headers=bearer(token)), 401)
    assert_problem(await client.get("/v1/campaigns", headers=bearer(token)), 401)
    assert_problem(await client.post("/v1/players/p-1/token", headers=bearer(token)), 401)


async def test_expired_and_forged_tokens_are_refused(client: AsyncTestClient[Litestar]) -> None:
    partner = await _partner(client)
    await _fly(client, partner, "p-1", "YVR")
    now = datetime.now(UTC)
    claims = {
        "iss": "gamify",
        "aud": "gamify:player",
        "sub": "p-1",
        "tid": "acme",
        "iat": int(now.timestamp()),
    }
    expired = jwt.encode(
        {**claims, "exp": int((now - timedelta(minutes=1)).timestamp())}, SECRET, algorithm="HS256"
    )
    forged = jwt.encode(
        {**claims, "exp": int((now + timedelta(hours=1)).timestamp())},
        "not-the-secret" * 4,
        algorithm="HS256",
    )
    unsigned = jwt.encode(
        {**claims, "exp": int((now + timedelta(hours=1)).timestamp())}, "", algorithm="none"
    )
    for token in (expired, forged, unsigned, "garbage"):
        assert_problem(await client.get("/v1/players/p-1", headers=bearer(token)), 401)


async def test_another_tenants_player_is_not_found(client: AsyncTestClient[Litestar]) -> None:
    acme = await _partner(client, "acme")
    rival = await _partner(client, "rival")
    await _fly(client, acme, "p-1", "YVR")
    assert_problem(await client.get("/v1/players/p-1", headers=rival), 404)
    token = (await client.post("/v1/players/p-1/token", headers=rival)).json()["token"]
    assert_problem(await client.get("/v1/players/p-1", headers=bearer(token)), 404)


async def test_unknown_player_is_404_and_scopes_are_checked(
    client: AsyncTestClient[Litestar],
) -> None:
    partner = await _partner(client)
    assert_problem(await client.get("/v1/players/nobody", headers=partner), 404)
    reader = await tenant_key(client, "acme", ("read",))
    assert_problem(await client.post("/v1/players/p-1/token", headers=bearer(reader)), 403)
    assert_problem(await client.put("/v1/players/p-1", json={}, headers=bearer(reader)), 403)
