"""What `gamify demo` prints: where to look, the credentials, lines to paste, the progress."""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import sys
from datetime import datetime

import msgspec


class Banner(msgspec.Struct, frozen=True, kw_only=True):
    base_url: str
    campaign: str
    members: int
    destinations: int
    api_key: str
    player: str
    player_name: str
    player_token: str
    token_expires: datetime
    receiver_url: str
    data_dir: str


class Progress(msgspec.Struct, frozen=True, kw_only=True):
    sent: int
    rate: float
    awards: int
    ranked: int | None
    credits: int
    miles: int
    errors: int
    last_error: str | None
    unanswered: bool = False


def banner(b: Banner) -> str:
    ws_url = "ws" + b.base_url.removeprefix("http") + "/v1/ws?token="
    board = f"{b.base_url}/v1/campaigns/{b.campaign}/leaderboard?board=campaign&limit=10"
    watch = {"op": "subscribe", "topic": "leaderboard", "campaign": b.campaign,
             "board": "campaign", "top": 10}  # fmt: skip
    lines = [
        f'gamify demo: "Earn your wings", {b.members:,} members flying to '
        f"{b.destinations} Canadian destinations",
        "",
        f"  Dashboard     {b.base_url}/dashboard   (sign in with the API key)",
        "",
        "  API key       read, campaigns:write, events:write",
        f"    {b.api_key}",
        f"    curl -s -H 'Authorization: Bearer {b.api_key}' {shlex.quote(board)}",
        f"    {_websockets()} '{ws_url}{b.api_key}'",
        f"      then type: {_compact(watch)}",
        "",
        f"  Player token  {b.player} ({b.player_name}), valid until {b.token_expires:%H:%M} UTC",
        f"    {b.player_token}",
        f"    curl -s -H 'Authorization: Bearer {b.player_token}' "
        f"{b.base_url}/v1/players/{b.player}",
        f"    {_websockets()} '{ws_url}{b.player_token}'",
        f"      then type: {_compact({'op': 'subscribe', 'topic': 'me'})}",
        "",
        f"  Loyalty       credits go to {b.receiver_url} (signatures verified)",
        f"  Data          {b.data_dir} (kept for the next run)   Ctrl-C stops everything",
        "",
    ]
    return "\n".join(lines)


def progress(p: Progress) -> str:
    ranked = "…" if p.ranked is None else f"{p.ranked:,}"
    text = (
        f"  {p.sent:,} flights sent ({p.rate:,.0f}/s) · {p.awards:,} badges awarded · "
        f"{ranked} players ranked · {p.credits:,} credits received ({p.miles:,} miles)"
    )
    if p.errors:
        text += f" · {p.errors:,} errors (last: {p.last_error})"
    if p.unanswered:
        text += " · the service does not answer"
    return text


def _websockets() -> str:
    python = _short(sys.executable)
    line = f"{python} -m websockets"
    if importlib.util.find_spec("websockets") is None:
        line = f"pip install websockets; {line}"
    return line


def _short(path: str) -> str:
    """`path` relative to here when it lies below (`.venv/bin/python`), else as it is."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def _compact(message: dict[str, object]) -> str:
    return json.dumps(message, separators=(",", ":"))
