"""`gamify demo` as a newcomer runs it: a real process on its own data folder, then Ctrl-C.

Given a fresh data folder, when `gamify demo` runs (few members, a brisk pace, so the test stays
short), then it prints a dashboard URL that answers, an API key and a player token that work,
flights reach the boards and the metrics, and credits reach its loyalty receiver; SIGINT leaves
no process behind, and a second run on the same folder starts without errors and finds the same
campaign. The receiver takes only what is signed with its secret, once per webhook-id.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import msgspec
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families
from standardwebhooks.webhooks import Webhook

from gamify.dashboard.demo_receiver import Receiver, Tally
from gamify.platform.embedded.ports import free_port
from tests.gamify.support import bearer

pytestmark = pytest.mark.slow
WITHIN = 60.0  # seconds to wait for what the demo should show
STOP_WITHIN = 30.0
CAMPAIGN = "earn-your-wings"


class Demo:
    """`gamify demo` in a subprocess, its output in a file (the simulator shares it)."""

    def __init__(self, data_dir: Path, log: Path) -> None:
        self.port = free_port()
        self.log = log
        self.family: list[psutil.Process] = []
        env = {k: v for k, v in os.environ.items() if not k.startswith("GAMIFY_")}
        command = [sys.executable, "-m", "gamify", "demo", "--port", str(self.port)]
        command += ["--data-dir", str(data_dir), "--members", "300", "--rate", "150"]
        with log.open("wb") as out:
            self.process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def printed(self, pattern: str) -> re.Match[str]:
        """The first match of `pattern` in the output, once it is printed."""
        deadline = time.monotonic() + WITHIN
        while time.monotonic() < deadline:
            found = re.search(pattern, self.output())
            if found:
                return found
            if self.process.poll() is not None:
                pytest.fail(f"gamify demo exited early:\n{self.output()}")
            time.sleep(0.1)
        pytest.fail(f"gamify demo never printed {pattern!r}:\n{self.output()}")

    def note_family(self) -> None:
        """Remember its processes (workers, simulator), to check they are gone after."""
        self.family = psutil.Process(self.process.pid).children(recursive=True)

    def interrupt(self) -> None:
        """Ctrl-C; SIGKILL if it has not stopped in time (the test then fails on the code)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=STOP_WITHIN)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def living(processes: list[psutil.Process]) -> list[str]:
    alive = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(" ".join(process.cmdline()))
        except psutil.Error:
            pass
    return alive


def naming(data_dir: Path) -> list[psutil.Process]:
    """Live processes whose command line names the data folder (the embedded servers)."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if str(data_dir) in cmdline and process.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(process)
    return found


def left_behind(demo: Demo, data_dir: Path) -> list[str]:
    """What still runs of a stopped demo, after a moment for the last exits to land."""
    deadline = time.monotonic() + 10
    while True:
        left = living(demo.family) + living(naming(data_dir))
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Not under tmp_path: a pytest session starting meanwhile (another suite on this machine)
    # resets its root folder to mode 0700, which locks the embedded Postgres's user out.
    folder = Path(tempfile.mkdtemp(prefix="gamify-demo-test-")) / "demo"
    yield folder
    for process in naming(folder):  # never leak servers into other tests
        process.kill()
    shutil.rmtree(folder.parent, ignore_errors=True)


def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WITHIN
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    pytest.fail(f"not within {WITHIN:.0f} s: {what}")


def counter(base: str, name: str, **labels: str) -> float:
    """A counter's value in GET /metrics (0 before it is first counted)."""
    text = httpx.get(f"{base}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def board_size(base: str, key: str) -> int:
    page = httpx.get(
        f"{base}/v1/campaigns/{CAMPAIGN}/leaderboard",
        params={"limit": "5"},
        headers=bearer(key),
        timeout=5,
    )
    assert page.status_code == 200, page.text
    assert all(entry["display_name"] for entry in page.json()["entries"])
    total: int = page.json()["total"]
    return total


def shows_the_game(demo: Demo) -> int:
    """What a newcomer checks in a run; returns the size of the campaign board."""
    dashboard = demo.printed(r"http://127\.0\.0\.1:(\d+)/dashboard\S*")
    assert int(dashboard[1]) == demo.port
    base = f"http://127.0.0.1:{demo.port}"
    assert httpx.get(dashboard[0], follow_redirects=True, timeout=5).status_code == 200
    assert httpx.get(f"{base}/health", timeout=5).status_code == 200
    key = demo.printed(r"gk_[\w-]+")[0]
    token = demo.printed(r"eyJ[\w.-]+")[0]
    player = demo.printed(r"/v1/players/(m-\d+)")[1]
    assert f"/v1/campaigns/{CAMPAIGN}/leaderboard" in demo.output()
    assert "-m websockets 'ws://127.0.0.1:" in demo.output()

    accepted = counter(base, "gamify_events_total", status="accepted")
    eventually(lambda: board_size(base, key) > 0, "the campaign board has members")
    eventually(
        lambda: counter(base, "gamify_events_total", status="accepted") > accepted,
        "the accepted events counter moves",
    )
    assert counter(base, "gamify_awards_total") > 0
    me = httpx.get(f"{base}/v1/players/{player}", headers=bearer(token), timeout=5)
    assert me.status_code == 200, me.text
    # Milestones credit miles: the receiver counts only credits whose signature it verified.
    demo.printed(r"[1-9][\d,]* credits received")
    demo.note_family()
    return board_size(base, key)


def test_the_demo_receiver_takes_a_signed_credit_once_and_refuses_a_forged_one() -> None:
    receiver = Receiver()
    body = msgspec.json.encode(
        {"id": "cr-1", "type": "credit", "campaign": CAMPAIGN, "player": "m-00001",
         "amount": 500, "unit": "miles", "reason": "badge destinations-5"}
    )  # fmt: skip
    forger = Webhook("whsec_" + base64.b64encode(b"not the receiver's secret").decode())
    with receiver.running():
        for _ in range(2):  # a retry carries the same webhook-id
            taken = httpx.post(
                receiver.url, content=body, headers=signed(Webhook(receiver.secret), body)
            )
            assert taken.status_code == 200
        forged = httpx.post(receiver.url, content=body, headers=signed(forger, body))
        assert forged.status_code == 400
    assert receiver.tally() == Tally(credits=1, amount=500, refused=1)


def signed(webhook: Webhook, body: bytes) -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "content-type": "application/json",
        "webhook-id": "cr-1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": webhook.sign("cr-1", now, body.decode()),
    }


def test_the_demo_runs_stops_on_ctrl_c_and_runs_again_on_its_folder(
    data_dir: Path, tmp_path: Path
) -> None:
    first = Demo(data_dir, tmp_path / "first.log")
    try:
        ranked = shows_the_game(first)
    finally:
        first.interrupt()
    assert first.process.returncode == 0, first.output()
    assert left_behind(first, data_dir) == []
    assert "stopped: " in first.output()

    second = Demo(data_dir, tmp_path / "second.log")
    try:
        assert shows_the_game(second) >= ranked, "the first run's players are gone"
    finally:
        second.interrupt()
    assert second.process.returncode == 0, second.output()
    assert left_behind(second, data_dir) == []
    for run in (first, second):
        assert "Traceback" not in run.output()
        assert "errors (last:" not in run.output()
