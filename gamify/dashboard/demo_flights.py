"""The demo's flight simulator: an airline's systems, talking to gamify's public API only.

`gamify demo` starts it as a process of its own (`python -m gamify.dashboard.demo_flights`,
its plan in GAMIFY_DEMO_PLAN), beside the service's workers: a process keeps its HTTP client
and its loyalty receiver off the CPU the service needs and out of the workers' forks. It
waits for /ready, makes sure the campaign is live and points at its receiver, prints where
to look, then posts flights at a steady rate until SIGINT or SIGTERM, or until the
`gamify demo` that started it is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType
from zoneinfo import ZoneInfo

import httpx
import msgspec

from gamify.dashboard import demo_banner, demo_campaign
from gamify.dashboard.demo_members import Flight, Flights, display_name, member_id
from gamify.dashboard.demo_receiver import Receiver

PLAN_ENV = "GAMIFY_DEMO_PLAN"
TICK = 0.1  # seconds between two rounds of posts: a steady trickle, not bursts
BATCH = 50  # flights per request at most
IN_FLIGHT = 4  # requests at once at most: a slow service slows the flights, never piles up
# The member whose player token is printed: one of a pack that keeps passing each other.
WATCHED = 25
READY_WITHIN = 120.0


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    base_url: str
    api_key: str  # read, campaigns:write, events:write: printed, and used for everything
    token_key: str  # players:token, to mint the printed player token
    members: int
    rate: float
    history: int
    parent: int  # the `gamify demo` process: its death stops the flights
    data_dir: str


class Award(msgspec.Struct, frozen=True):
    campaign: str
    badge: str


class Result(msgspec.Struct, frozen=True):
    id: str
    status: str
    awards: list[Award] = []


class Results(msgspec.Struct, frozen=True):
    results: list[Result]


class Batch(msgspec.Struct, frozen=True):
    events: list[Flight]


class Stopped(Exception):
    """Asked to stop (a signal, or the parent died) before the flights began."""


class NotReady(RuntimeError):
    """The service never answered /ready."""


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # SIGTERM before the event loop takes the signals over: unwind, closing the receiver.
    raise KeyboardInterrupt


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    plan = msgspec.json.decode(os.environ[PLAN_ENV], type=Plan)
    try:
        with Receiver().running() as receiver:
            asyncio.run(Simulator(plan, receiver).run())
    except (KeyboardInterrupt, Stopped):
        pass
    except (NotReady, demo_campaign.CampaignUnavailable, httpx.HTTPError) as exc:
        print(f"gamify demo: the flight simulator stopped: {exc}", file=sys.stderr)
        return 1
    return 0


class Simulator:
    def __init__(self, plan: Plan, receiver: Receiver) -> None:
        self.plan = plan
        self.receiver = receiver
        self.stop = asyncio.Event()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.stop.set)
        headers = {"authorization": f"Bearer {self.plan.api_key}"}
        limits = httpx.Limits(max_connections=IN_FLIGHT + 8)
        async with httpx.AsyncClient(
            base_url=self.plan.base_url, headers=headers, timeout=30, limits=limits
        ) as client:
            await self._ready(client)
            began = datetime.now(UTC)
            today = datetime.now(ZoneInfo(demo_campaign.TIMEZONE)).date()
            live = await demo_campaign.ensure(
                client, today, self.receiver.url, self.receiver.secret
            )
            _say(await self._banner(client, live))
            flights = Flights(
                self.plan.members,
                demo_campaign.DESTINATIONS,
                run=f"{began:%Y%m%d%H%M%S}",
                starts_at=live.starts_at,
                began=began,
                history=self.plan.history,
            )
            stream = Stream(client, flights, self.plan.rate)
            report = Report(client, live.id, stream, self.receiver)
            await asyncio.gather(stream.run(self.stop), report.run(self.stop, self._orphaned))
            _say("\n" + report.summary())

    def _orphaned(self) -> bool:
        return os.getppid() != self.plan.parent

    async def _ready(self, client: httpx.AsyncClient) -> None:
        deadline = asyncio.get_running_loop().time() + READY_WITHIN
        while not (self.stop.is_set() or self._orphaned()):
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get("/ready", timeout=2)).status_code == 200:
                    return
            if asyncio.get_running_loop().time() > deadline:
                raise NotReady(f"the service was not ready within {READY_WITHIN:.0f} s")
            await asyncio.sleep(0.1)
        raise Stopped

    async def _banner(self, client: httpx.AsyncClient, live: demo_campaign.Live) -> str:
        number = min(WATCHED, self.plan.members)
        player, name = member_id(number), display_name(number)
        named = await client.put(f"/v1/players/{player}", json={"display_name": name})
        named.raise_for_status()
        minted = await client.post(
            f"/v1/players/{player}/token",
            headers={"authorization": f"Bearer {self.plan.token_key}"},
        )
        minted.raise_for_status()
        token = minted.json()
        return demo_banner.banner(
            demo_banner.Banner(
                base_url=self.plan.base_url,
                campaign=live.id,
                members=self.plan.members,
                destinations=len(demo_campaign.DESTINATIONS),
                api_key=self.plan.api_key,
                player=player,
                player_name=name,
                player_token=token["token"],
                token_expires=datetime.fromisoformat(token["expires_at"]).astimezone(UTC),
                receiver_url=self.receiver.url,
                data_dir=self.plan.data_dir,
            )
        )


class Stream:
    """Posts `rate` flights a second, in requests of at most BATCH, at most IN_FLIGHT at once;
    a member's display name is set (PUT /v1/players) before its first flight of the run."""

    def __init__(self, client: httpx.AsyncClient, flights: Flights, rate: float) -> None:
        self._client = client
        self._flights = flights
        self._rate = rate
        self._named: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._encoder = msgspec.json.Encoder()
        self.sent = 0
        self.awards = 0
        self.errors = 0
        self.last_error: str | None = None
        # The last post found nobody listening, or lost its connection: the service is
        # stopping (Ctrl-C reaches the workers first), which is no error of the flights.
        self.unanswered = False

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        began, scheduled = loop.time(), 0
        try:
            while not stop.is_set():
                due = int((loop.time() - began) * self._rate) - scheduled
                # Behind by more than a second (a slow or busy service): that backlog is
                # dropped, not rushed out, so the pace stays what was asked for.
                if due > self._rate:
                    scheduled += due - int(self._rate)
                    due = int(self._rate)
                while due > 0 and len(self._tasks) < IN_FLIGHT:
                    count = min(due, BATCH)
                    self._spawn(self._flights.take(count, datetime.now(UTC)))
                    due -= count
                    scheduled += count
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), TICK)
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, flights: list[Flight]) -> None:
        task = asyncio.create_task(self._post(flights))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, flights: list[Flight]) -> None:
        try:
            await self._name({flight.player for flight in flights} - self._named)
            response = await self._client.post(
                "/v1/events",
                content=self._encoder.encode(Batch(flights)),
                headers={"content-type": "application/json"},
            )
        except (httpx.NetworkError, httpx.RemoteProtocolError):
            self.unanswered = True
            return
        except httpx.HTTPError as exc:
            self._failed(f"{type(exc).__name__} {exc}".strip())
            return
        self.unanswered = False
        if response.status_code != 200:
            self._failed(f"POST /v1/events answered {response.status_code}")
            return
        results = msgspec.json.decode(response.content, type=Results).results
        self.sent += len(results)
        self.awards += sum(len(result.awards) for result in results)

    async def _name(self, players: set[str]) -> None:
        self._named |= players  # before the PUTs: concurrent posts must not repeat them
        wanted = sorted(players)
        try:
            answers = await asyncio.gather(*(self._put_name(player) for player in wanted))
        except BaseException:
            self._named -= players
            raise
        self._named -= {player for player, ok in zip(wanted, answers, strict=True) if not ok}

    async def _put_name(self, player: str) -> bool:
        name = display_name(int(player.removeprefix("m-")))
        answer = await self._client.put(f"/v1/players/{player}", json={"display_name": name})
        return answer.status_code == 200

    def _failed(self, error: str) -> None:
        self.errors += 1
        self.last_error = error[:120]


class Report:
    """The progress line: in place on a terminal each second, else a line every few seconds."""

    def __init__(
        self, client: httpx.AsyncClient, campaign: str, stream: Stream, receiver: Receiver
    ) -> None:
        self._client = client
        self._campaign = campaign
        self._stream = stream
        self._receiver = receiver
        self._terminal = sys.stdout.isatty()
        self._ranked: int | None = None
        self._rate = 0.0

    async def run(self, stop: asyncio.Event, orphaned: Callable[[], bool]) -> None:
        loop = asyncio.get_running_loop()
        every = 1.0 if self._terminal else 5.0
        last_at, last_sent = loop.time(), 0
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
            if orphaned():
                stop.set()
            if stop.is_set():
                return  # the summary follows
            now, sent = loop.time(), self._stream.sent
            self._rate = (sent - last_sent) / max(now - last_at, 1e-3)
            last_at, last_sent = now, sent
            size = await self._board_size()
            if size is not None:
                self._ranked = size
            line = demo_banner.progress(self._progress())
            _say(f"\r{line}\x1b[K" if self._terminal else line, end="" if self._terminal else "\n")

    async def _board_size(self) -> int | None:
        try:
            page = await self._client.get(
                f"/v1/campaigns/{self._campaign}/leaderboard", params={"limit": "1"}, timeout=5
            )
        except httpx.HTTPError:
            return None
        return int(page.json()["total"]) if page.status_code == 200 else None

    def _progress(self) -> demo_banner.Progress:
        tally = self._receiver.tally()
        return demo_banner.Progress(
            sent=self._stream.sent,
            rate=self._rate,
            awards=self._stream.awards,
            ranked=self._ranked,
            credits=tally.credits,
            miles=tally.amount,
            errors=self._stream.errors,
            last_error=self._stream.last_error,
            unanswered=self._stream.unanswered,
        )

    def summary(self) -> str:
        final = msgspec.structs.replace(self._progress(), unanswered=False)
        return "stopped: " + demo_banner.progress(final).strip()


def _say(text: str, end: str = "\n") -> None:
    sys.stdout.write(text + end)
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
