"""Live push on one running service (API.md, "WebSocket"): what movers, the players they pass
and board watchers hear, resume without loss, and every way a client can get it wrong."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis
from websockets.exceptions import ConnectionClosed

from gamify.live import streams
from gamify.tenants import tokens
from tests.gamify.live.client import (
    DESTINATIONS,
    Tenant,
    quiet,
    receive,
    receive_until,
    subscribed_me,
    twenty_destinations,
)
from tests.gamify.support import ADMIN, Servers, Service

pytestmark = pytest.mark.slow


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


@pytest.fixture
async def tenant(service: Service, http: httpx.AsyncClient) -> Tenant:
    created = await Tenant.create(service, http)
    await created.campaign(twenty_destinations())
    return created


async def a_board_of_300(tenant: Tenant) -> None:
    """299 players with 2 to 18 badges, and one leader, p-leader, with 19."""
    earlier = datetime.now(UTC) - timedelta(days=2)
    trips = [(f"p-{n}", code) for n in range(299) for code in DESTINATIONS[: 2 + n % 17]]
    trips += [("p-leader", code) for code in DESTINATIONS[:19]]
    for at in range(0, len(trips), 1000):
        await tenant.fly(*trips[at : at + 1000], when=earlier)


def contiguous(messages: list[dict[str, Any]]) -> bool:
    seqs = [m["seq"] for m in messages]
    return seqs == list(range(seqs[0], seqs[0] + len(seqs)))


async def test_a_climber_hears_each_rank_and_badge_and_the_leader_hears_it_pass(
    tenant: Tenant,
) -> None:
    await a_board_of_300(tenant)
    async with (
        tenant.socket(await tenant.token("climber")) as climber,
        tenant.socket(await tenant.token("p-leader")) as leader,
    ):
        await subscribed_me(climber)
        await subscribed_me(leader)
        for code in DESTINATIONS:
            await tenant.fly(("climber", code))
        heard = await receive_until(
            climber, lambda m: m["type"] == "rank_changed" and m["rank"] == 1
        )
        heard += await quiet(climber)
        passed = await receive_until(leader, lambda m: m["type"] == "overtaken")

    assert contiguous(heard)
    badges = [m["badge"] for m in heard if m["type"] == "badge_awarded"]
    assert badges == [code.lower() for code in DESTINATIONS]
    ranks = [(m["previous_rank"], m["rank"]) for m in heard if m["type"] == "rank_changed"]
    assert ranks[0] == (None, 301)  # on the board at its bottom: 300 were there before
    assert ranks[-1][1] == 1
    assert all(after < before for before, after in ranks[1:])
    assert all(ranks[i][1] == ranks[i + 1][0] for i in range(len(ranks) - 1))
    assert all(m["campaign"] == "wings" and m["board"] == "campaign" for m in heard if "board" in m)
    assert passed[-1] == {
        "type": "overtaken",
        "seq": passed[-1]["seq"],
        "campaign": "wings",
        "board": "campaign",
        "by": "climber",
        "rank": 2,
    }


async def test_resume_replays_exactly_what_was_missed_then_goes_live(tenant: Tenant) -> None:
    token = await tenant.token("traveller")
    async with tenant.socket(token) as ws:
        await subscribed_me(ws)
        await tenant.fly(("traveller", "D00"))
        seen = await receive_until(ws, lambda m: m["type"] == "badge_awarded")
    last = seen[-1]["seq"]

    for code in DESTINATIONS[1:4]:
        await tenant.fly(("traveller", code))

    async with tenant.socket(token) as ws:
        await ws.send(json.dumps({"op": "resume", "after": last}))
        replayed = await receive_until(ws, lambda m: m["type"] == "resumed")
        await tenant.fly(("traveller", "D04"))
        live = await receive_until(ws, lambda m: m["type"] == "badge_awarded")

    missed, resumed = replayed[:-1], replayed[-1]
    assert resumed == {"type": "resumed", "after": last, "recovered": True}
    assert [m["seq"] for m in missed] == list(range(last + 1, last + 1 + len(missed)))
    assert [m["badge"] for m in missed if m["type"] == "badge_awarded"] == ["d01", "d02", "d03"]
    assert live[0]["seq"] == missed[-1]["seq"] + 1
    assert [m["badge"] for m in live if m["type"] == "badge_awarded"] == ["d04"]


async def test_resume_with_nothing_missed_is_recovered_and_replays_nothing(
    tenant: Tenant,
) -> None:
    token = await tenant.token("homebody")
    async with tenant.socket(token) as ws:
        await subscribed_me(ws)
        await tenant.fly(("homebody", "D00"))
        last = (await receive_until(ws, lambda m: m["type"] == "badge_awarded"))[-1]["seq"]
    async with tenant.socket(token) as ws:
        await ws.send(json.dumps({"op": "resume", "after": last}))
        assert await receive(ws) == {"type": "resumed", "after": last, "recovered": True}


@pytest.mark.parametrize("loss", ["trimmed", "flushed"])
async def test_resume_after_the_stream_lost_messages_is_not_recovered(
    tenant: Tenant, servers: Servers, loss: str
) -> None:
    token = await tenant.token("forgotten")
    async with tenant.socket(token) as ws:
        await subscribed_me(ws)
        await tenant.fly(("forgotten", "D00"))
        last = (await receive_until(ws, lambda m: m["type"] == "badge_awarded"))[-1]["seq"]
    await tenant.fly(("forgotten", "D01"))
    await tenant.fly(("forgotten", "D02"))
    redis = Redis.from_url(servers.redis_url)
    stream = streams.stream(tenant.id, "forgotten")
    try:
        await _until(lambda: redis.xlen(stream), lambda n: n >= 4)  # one per post at least
        if loss == "trimmed":
            held = await redis.xrange(stream)
            assert held is not None
            first_kept = held[-1][0]
            await redis.xtrim(stream, minid=first_kept, approximate=False)
        else:
            await redis.delete(stream, streams.counter(tenant.id, "forgotten"))
    finally:
        await redis.aclose()
    async with tenant.socket(token) as ws:
        await ws.send(json.dumps({"op": "resume", "after": last}))
        got = await receive_until(ws, lambda m: m["type"] == "resumed")
    assert got[-1] == {"type": "resumed", "after": last, "recovered": False}
    if loss == "trimmed":  # what the stream still holds is replayed all the same
        assert [m["badge"] for m in got if m["type"] == "badge_awarded"] == ["d02"]


async def test_only_players_who_listened_have_streams_written(
    tenant: Tenant, servers: Servers
) -> None:
    """Given a player who listened to `me` and left, and one who never listened, when both
    fly, then only the listener's messages are kept for a resume (the write path spends no
    Redis work on streams no one can read)."""
    token = await tenant.token("listener")
    async with tenant.socket(token) as ws:
        await subscribed_me(ws)
    await tenant.fly(("listener", "D00"), ("stranger", "D00"))
    redis = Redis.from_url(servers.redis_url)
    try:
        await _until(lambda: redis.xlen(streams.stream(tenant.id, "listener")), bool)
        assert await redis.exists(streams.stream(tenant.id, "stranger")) == 0
        assert await redis.zscore(streams.audience(tenant.id), "stranger") is None
    finally:
        await redis.aclose()
    async with tenant.socket(token) as ws:
        await ws.send(json.dumps({"op": "resume", "after": 0}))
        got = await receive_until(ws, lambda m: m["type"] == "resumed")
    assert [m["badge"] for m in got if m["type"] == "badge_awarded"] == ["d00"]


async def test_watchers_get_increasing_versions_at_most_four_a_second(
    tenant: Tenant, service: Service
) -> None:
    await a_board_of_300(tenant)
    async with tenant.socket(tenant.key) as ws:
        await ws.send(
            json.dumps({"op": "subscribe", "topic": "leaderboard", "campaign": "wings", "top": 3})
        )
        first = await receive(ws)
        assert first["type"] == "leaderboard" and first["board"] == "campaign"
        assert first["entries"][0]["player"] == "p-leader"
        assert [e["score"] for e in first["entries"]] == [19, 18, 18]
        assert [e["rank"] for e in first["entries"]] == [1, 2, 3]

        async def flood() -> None:  # newcomers climbing to the top one by one, a flight a post
            for n in range(200):
                await tenant.fly((f"rocket-{n // 20}", DESTINATIONS[n % 20]))

        flooding = asyncio.ensure_future(flood())
        snapshots = [first]
        while not flooding.done():
            snapshots += [m for m in await quiet(ws, 0.3) if m["type"] == "leaderboard"]
        await flooding
        snapshots += [m for m in await quiet(ws, 1.0) if m["type"] == "leaderboard"]

    versions = [s["version"] for s in snapshots]
    assert versions == sorted(set(versions))  # strictly increasing
    assert len(snapshots) >= 3
    # A version is the snapshot's time in ms on the server: no two closer than a tick apart.
    assert all(b - a >= 240 for a, b in itertools.pairwise(versions[1:]))
    assert snapshots[-1]["entries"][0]["player"].startswith("rocket-")


async def test_bad_credentials_are_closed_with_4401_and_a_reason(
    tenant: Tenant, service: Service
) -> None:
    expired = tokens.issue(
        "property-secret-" + "x" * 32, tenant.id, "late", datetime.now(UTC) - timedelta(hours=2)
    ).token
    for credential, reason in [
        ("", "send a player token"),
        ("nonsense", "invalid or expired player token"),
        (expired, "invalid or expired player token"),
        ("gk_" + "0" * 40, "unknown or revoked API key"),
    ]:
        async with tenant.socket(credential) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await receive(ws)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4401
        assert closed.value.rcvd.reason.startswith(reason)


async def test_a_socket_closes_with_4401_when_its_player_token_expires(tenant: Tenant) -> None:
    almost = tokens.issue(
        "property-secret-" + "x" * 32,
        tenant.id,
        "brief",
        datetime.now(UTC) - tokens.TTL + timedelta(seconds=2),
    ).token
    async with tenant.socket(almost) as ws:
        await subscribed_me(ws)
        with pytest.raises(ConnectionClosed) as closed:
            await receive_until(ws, lambda m: False)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4401, "token expired")


async def test_a_socket_of_a_revoked_api_key_closes_with_4401(
    tenant: Tenant, http: httpx.AsyncClient
) -> None:
    """A dashboard watching a board with a read key: once the key is revoked, its socket is
    closed as its requests would be refused (within the 10 seconds API.md allows)."""
    keys = f"{tenant.service.url}/v1/admin/tenants/{tenant.id}/keys"
    issued = (await http.post(keys, json={"scopes": ["read"]}, headers=ADMIN)).json()
    async with tenant.socket(issued["key"]) as ws:
        await ws.send(
            json.dumps({"op": "subscribe", "topic": "leaderboard", "campaign": "wings", "top": 3})
        )
        assert (await receive(ws))["type"] == "leaderboard"
        revoked = await http.delete(f"{keys}/{issued['id']}", headers=ADMIN)
        assert revoked.status_code == 204
        with pytest.raises(ConnectionClosed) as closed:
            await receive_until(ws, lambda m: False)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4401, "API key revoked")


async def test_bad_frames_get_errors_and_the_connection_stays_open(
    tenant: Tenant, service: Service, http: httpx.AsyncClient
) -> None:
    other = await Tenant.create(service, http)
    await other.campaign(twenty_destinations("theirs"))
    async with tenant.socket(tenant.key) as ws:
        for frame in [
            "garbage",
            "[]",
            '{"op":"dance"}',
            '{"op":"resume","after":-1}',
            '{"op":"subscribe","topic":"leaderboard","campaign":"wings","top":101}',
            '{"op":"subscribe","topic":"leaderboard"}',
            '{"op":"subscribe","topic":"leaderboard","campaign":"theirs"}',
            '{"op":"subscribe","topic":"leaderboard","campaign":"wings","board":"daily"}',
            '{"op":"subscribe","topic":"me"}',  # an API key has no `me`
            json.dumps({"op": "ping", "pad": "x" * 5000}),
        ]:
            await ws.send(frame)
            answer = await receive(ws)
            assert answer["type"] == "error", (frame, answer)
            assert answer["detail"], frame
        await ws.send(json.dumps({"op": "ping"}))
        assert await receive(ws) == {"type": "pong"}


async def test_a_me_subscriber_that_falls_behind_is_told_to_resume_and_others_carry_on(
    tenant: Tenant, servers: Servers
) -> None:
    token = await tenant.token("sleeper")
    padding = "x" * 8000
    async with tenant.socket(token) as sleeper, tenant.socket(tenant.key) as awake:
        await subscribed_me(sleeper)
        # The sleeper stops reading: its client takes 16 frames, then the network fills up.
        redis = Redis.from_url(servers.redis_url)
        try:
            for n in range(3000):
                message = json.dumps({"type": "badge_awarded", "badge": f"b{n}", "pad": padding})
                await redis.fcall(*streams.push_args(tenant.id, "sleeper", [message.encode()]))
        finally:
            await redis.aclose()
        await awake.send(json.dumps({"op": "ping"}))
        assert await receive(awake) == {"type": "pong"}

        heard = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                heard.append(await receive(sleeper))
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4408
    assert heard[-1] == {"type": "error", "detail": "resume"}
    assert len(heard) < 3000


async def _until(read: Any, holds: Any) -> None:
    for _ in range(200):
        if holds(await read()):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("never happened")


async def test_metrics_count_open_sockets_and_messages_sent_by_type(
    tenant: Tenant, service: Service, http: httpx.AsyncClient
) -> None:
    before = await _scrape(http, service)
    async with tenant.socket(tenant.key) as ws:
        for _ in range(3):
            await ws.send(json.dumps({"op": "ping"}))
            assert await receive(ws) == {"type": "pong"}
        await ws.send("garbage")
        await receive(ws)
        during = await _scrape_until(http, service, lambda m: m["pong"] >= before["pong"] + 3)
    assert during["pong"] == before["pong"] + 3
    assert during["error"] == before["error"] + 1
    assert during["connections"] == before["connections"] + 1


async def _scrape(http: httpx.AsyncClient, service: Service) -> dict[str, float]:
    text = (await http.get(f"{service.url}/metrics")).text
    found = {"pong": 0.0, "error": 0.0, "connections": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "gamify_websocket_messages_total":
                kind = sample.labels["type"]
                if kind in found:
                    found[kind] = sample.value
            elif sample.name == "gamify_websocket_connections":
                found["connections"] = sample.value
    return found


async def _scrape_until(http: httpx.AsyncClient, service: Service, holds: Any) -> dict[str, float]:
    for _ in range(40):  # a worker renders its metrics at most once a second
        found = await _scrape(http, service)
        if holds(found):
            return found
        await asyncio.sleep(0.25)
    raise AssertionError(f"the metrics never showed it: {found}")


class _Loyalty(BaseHTTPRequestHandler):
    """A loyalty system that takes every credit."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


async def test_a_delivered_badge_reward_is_told_as_a_payout(tenant: Tenant) -> None:
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Loyalty)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        document = twenty_destinations("rewarded")
        document["badges"][0]["reward"] = {"amount": 500, "unit": "miles"}
        document["loyalty"] = {
            "url": f"http://127.0.0.1:{receiver.server_address[1]}/credits",
            "secret": "whsec_" + base64.b64encode(b"x" * 24).decode(),
        }
        await tenant.campaign(document)
        async with tenant.socket(await tenant.token("earner")) as ws:
            await subscribed_me(ws)
            await tenant.fly(("earner", "D00"))
            heard = await receive_until(ws, lambda m: m["type"] == "payout", timeout=30)
    finally:
        receiver.shutdown()
        receiver.server_close()
    payout = heard[-1]
    assert payout == {
        "type": "payout",
        "seq": payout["seq"],
        "campaign": "rewarded",
        "amount": 500,
        "unit": "miles",
        "status": "delivered",
    }
    assert "badge_awarded" in [m["type"] for m in heard]
