"""The dashboard's HTML: one page shell and what each page puts in it, built as strings.

The pages hold no tenant data. The API key lives in the browser tab alone (sessionStorage) and
reaches the service only as the bearer credential of API calls (and `?token=` on the
WebSocket), so the server cannot know whose page it renders: `static/dashboard.js` fills the
pages from the public API. Every value put into the markup passes through `html.escape`, and
the script reads what it needs (the page, the campaign) from `data-` attributes: the Content
Security Policy allows no inline script.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any

STATIC = Path(__file__).parent / "static"
ASSETS = "/dashboard/static"
# Everything comes from this service: no CDN, no inline code, no framing.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def overview() -> str:
    return shell(
        "Campaigns",
        "overview",
        """
<section class="panel">
  <h1>Campaigns</h1>
  <table id="campaigns" class="grid">
    <thead><tr><th>Campaign</th><th>Status</th><th>Starts</th><th>Ends</th><th>Boards</th>
    </tr></thead>
    <tbody></tbody>
  </table>
  <p id="no-campaigns" class="empty" hidden>No campaign yet:
    <a href="/dashboard/new">create one</a>.</p>
</section>""",
    )


def campaign(campaign_id: str) -> str:
    return shell(
        campaign_id,
        "campaign",
        f"""
<section class="panel" id="summary">
  <h1 id="campaign-name">{escape(campaign_id)}</h1>
  <p id="campaign-meta" class="meta"></p>
</section>
<div class="columns">
  <section class="panel" id="leaderboard-panel">
    <h2>Leaderboard <span id="live" class="live">connecting</span></h2>
    <label class="inline">Board <select id="board"></select></label>
    <table id="leaderboard" class="grid">
      <thead><tr><th class="rank">#</th><th>Player</th><th class="num">Score</th><th>Badges</th>
      </tr></thead>
      <tbody></tbody>
    </table>
    <p id="board-empty" class="empty" hidden>Nobody on this board yet.</p>
  </section>
  <section class="panel" id="funnel-panel">
    <h2>Badge funnel</h2>
    <p class="hint">Players holding each badge, and how that grew day by day.</p>
    <div id="funnel"></div>
  </section>
</div>
<section class="panel" id="participation-panel">
  <h2>Participation</h2>
  <p class="hint">Active players per day (the last 30 days of the campaign).</p>
  <div id="participation"></div>
</section>
<section class="panel" id="payouts-panel">
  <h2>Prize pool</h2>
  <div id="payouts"></div>
</section>""",
        campaign=campaign_id,
    )


def editor(now: datetime) -> str:
    sample = json.dumps(sample_campaign(now), indent=2)
    return shell(
        "New campaign",
        "editor",
        f"""
<section class="panel">
  <h1>New campaign</h1>
  <p class="hint">The campaign document as <code>POST /v1/campaigns</code> takes it.
    <em>Simulate</em> replays it over the events already stored, and writes nothing.</p>
  <textarea id="rules" spellcheck="false" rows="28" aria-label="Campaign document (JSON)">\
{escape(sample)}</textarea>
  <div class="actions">
    <button id="create" type="button">Create campaign</button>
    <label class="inline">Simulate over
      <select id="period">
        <option value="">the campaign's own dates</option>
        <option value="7">the last 7 days</option>
        <option value="30" selected>the last 30 days</option>
        <option value="90">the last 90 days</option>
        <option value="365">the last 365 days</option>
      </select>
    </label>
    <button id="simulate" type="button" class="secondary">Simulate</button>
  </div>
  <div id="problem" class="problem" role="alert" hidden>
    <p id="problem-title"></p>
    <ul id="errors"></ul>
  </div>
</section>
<section class="panel" id="simulation" hidden>
  <h2>Simulation</h2>
  <div id="simulation-result"></div>
</section>""",
    )


def sample_campaign(now: datetime) -> dict[str, Any]:
    """A campaign to start from: live from the coming hour for 90 days, a few Canadian
    destinations, a milestone, a weekly board and a prize pool."""
    start = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    airports = {"YVR": "Vancouver", "YYC": "Calgary", "YUL": "Montréal", "YHZ": "Halifax"}
    destinations = [
        {
            "id": code.lower(),
            "name": name,
            "points": 1,
            "criteria": {
                "kind": "value",
                "event": "flight.completed",
                "attribute": "destination",
                "values": [code],
            },
        }
        for code, name in airports.items()
    ]
    return {
        "id": "coast-to-coast",
        "name": "Coast to coast",
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(days=90)).isoformat(),
        "timezone": "America/Toronto",
        "grace": "PT12H",
        "badges": [
            *destinations,
            {
                "id": "explorer",
                "name": "Three destinations",
                "points": 5,
                "criteria": {
                    "kind": "distinct",
                    "event": "flight.completed",
                    "attribute": "destination",
                    "threshold": 3,
                },
            },
        ],
        "leaderboards": ["campaign", "weekly"],
        "prize_pool": {
            "amount": 1_000_000,
            "unit": "miles",
            "split": "proportional",
            "basis": "badges",
            "eligibility": {"min_badges": 1},
        },
    }


def shell(title: str, page: str, content: str, *, campaign: str | None = None) -> str:
    """The page around `content` (trusted markup): the sign-in bar, and the panels shown once
    signed in."""
    data = f' data-campaign="{escape(campaign)}"' if campaign is not None else ""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · gamify</title>
<link rel="stylesheet" href="{ASSETS}/dashboard.css">
<script src="{ASSETS}/dashboard.js" defer></script>
</head>
<body data-page="{escape(page)}"{data}>
<header class="top">
  <a class="brand" href="/dashboard">gamify</a>
  <nav><a href="/dashboard">Campaigns</a><a href="/dashboard/new">New campaign</a></nav>
  <form id="signin" class="signin" autocomplete="off">
    <label for="key">API key</label>
    <input id="key" type="password" placeholder="gk_…" spellcheck="false" required>
    <button type="submit">Sign in</button>
  </form>
  <div id="who" class="who" hidden>
    <span id="tenant"></span> <button id="signout" type="button" class="secondary">Sign out</button>
  </div>
</header>
<main>
<p id="notice" class="notice" role="status" aria-live="polite" hidden></p>
<section id="signed-out" class="panel">
  <h1>Sign in</h1>
  <p>Paste an API key of your tenant above: <code>read</code> shows the campaigns and their
    boards; <code>campaigns:write</code> also creates and simulates campaigns and shows payouts.
    The key stays in this browser tab (session storage) and is sent only to this service's API.
  </p>
  <noscript><p>The dashboard needs JavaScript.</p></noscript>
</section>
<div id="app" hidden>{content}
</div>
</main>
</body>
</html>
"""
