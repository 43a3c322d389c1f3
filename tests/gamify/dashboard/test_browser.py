"""The dashboard in a real headless browser: Playwright driving Debian's `chromium` (never a
browser Playwright downloads: CI has no network for one), against `gamify serve`.

A campaign manager signs in with an API key, watches a campaign's leaderboard move as events
are posted, reads the badge funnel and participation, retries failed credits, sees a bad rule
named by its field in the editor, and simulates a campaign before creating it.

Without a browser the module is skipped, saying why: `.ci/run` installs `chromium`, and
GAMIFY_TEST_CHROMIUM may name another binary. Each test has a tenant of its own, and a browser
context of its own (so a fresh session storage).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.gamify.support import ADMIN, Servers, Service, bearer, earn_your_wings, flight


def _chromium() -> str | None:
    configured = os.environ.get("GAMIFY_TEST_CHROMIUM")
    if configured:
        return configured if Path(configured).is_file() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


CHROMIUM = _chromium()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="no Chromium to drive: install Debian's `chromium` package (apt-get install -y "
        "chromium, as .ci/run does) or name a binary in GAMIFY_TEST_CHROMIUM; Playwright's own "
        "browser download is never used",
    ),
]
SCOPES = ["read", "events:write", "campaigns:write"]
expect.set_options(timeout=15_000)


@pytest.fixture(scope="module")
def service(
    servers: Servers, migrated: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    running = Service(servers, migrated, tmp_path_factory.mktemp("dashboard"))
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    assert CHROMIUM is not None
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


class Tab:
    """A browser tab, with what went wrong in its script (uncaught errors, refused content)."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        self.urls: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("console", self._console)
        page.on("request", lambda request: self.urls.append(request.url))

    def _console(self, message: Any) -> None:
        if "Content Security Policy" in message.text:
            self.errors.append(message.text)


@pytest.fixture
async def tab(browser: Browser) -> AsyncIterator[Tab]:
    context = await browser.new_context()
    try:
        opened = Tab(await context.new_page())
        yield opened
        assert not opened.errors
    finally:
        await context.close()


class Tenant:
    """A fresh tenant on the service, with a key holding what a campaign manager needs."""

    def __init__(self, service: Service, http: httpx.AsyncClient) -> None:
        self.service = service
        self.http = http
        self.id = f"t-{uuid.uuid4().hex[:10]}"
        self.key = ""

    async def create(self) -> Tenant:
        url = self.service.url
        made = await self.http.post(
            f"{url}/v1/admin/tenants", json={"id": self.id, "name": self.id}, headers=ADMIN
        )
        assert made.status_code == 201, made.text
        issued = await self.http.post(
            f"{url}/v1/admin/tenants/{self.id}/keys", json={"scopes": SCOPES}, headers=ADMIN
        )
        assert issued.status_code == 201, issued.text
        self.key = issued.json()["key"]
        return self

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        answer = await self.http.request(
            method, f"{self.service.url}{path}", json=body, headers=bearer(self.key)
        )
        assert answer.is_success, self.service.explain(answer)
        return answer.json()

    async def fly(self, *flights: dict[str, Any]) -> None:
        results = await self.call("POST", "/v1/events", {"events": list(flights)})
        assert {r["status"] for r in results["results"]} == {"accepted"}


@pytest.fixture
async def tenant(service: Service) -> AsyncIterator[Tenant]:
    async with httpx.AsyncClient(timeout=30) as http:
        yield await Tenant(service, http).create()


async def sign_in(tab: Tab, tenant: Tenant, path: str) -> None:
    page = tab.page
    await page.goto(f"{tenant.service.url}{path}")
    await expect(page.locator("#signed-out")).to_be_visible()
    await page.fill("#key", tenant.key)
    await page.click("#signin button")
    await expect(page.locator("#tenant")).to_contain_text(tenant.id)


def ago(**delta: float) -> datetime:
    return datetime.now(UTC) - timedelta(**delta)


async def test_a_signed_in_manager_watches_the_leaderboard_move_as_events_land(
    tab: Tab, tenant: Tenant
) -> None:
    await tenant.call("POST", "/v1/campaigns", earn_your_wings())
    await tenant.call("PUT", "/v1/players/p-1", {"display_name": "Ada Lovelace"})
    page = tab.page

    await sign_in(tab, tenant, "/dashboard")
    listed = page.locator('#campaigns tr[data-campaign="earn-your-wings"]')
    await expect(listed).to_contain_text("Earn your wings")
    await expect(listed.locator(".status")).to_have_text("live")
    await listed.get_by_role("link").click()
    await expect(page.locator("#live")).to_have_text("live")
    await expect(page.locator("#board-empty")).to_be_visible()

    await tenant.fly(flight("f1", "p-1", "YVR", ago(hours=2)))
    first = page.locator('#leaderboard tr[data-player="p-1"]')
    await expect(first.locator("td").nth(1)).to_have_text("Ada Lovelacep-1")
    await expect(first.locator("td").nth(2)).to_have_text("1")
    await expect(first.locator(".chip")).to_have_text(["YVR"])

    await tenant.fly(
        flight("f2", "p-2", "YYC", ago(hours=3)), flight("f3", "p-2", "YUL", ago(hours=1))
    )
    rows = page.locator("#leaderboard tbody tr")
    await expect(rows).to_have_count(2)
    await expect(rows.first).to_have_attribute("data-player", "p-2")
    await expect(rows.first.locator(".chip")).to_have_text(["YYC", "YUL"])  # oldest first

    # The key stays in this tab's session: no cookie, no URL of an HTTP request holds it.
    assert await page.evaluate("sessionStorage.getItem('gamify.key')") == tenant.key
    assert await page.context.cookies() == []
    assert not [url for url in tab.urls if tenant.key in url]

    await page.reload()  # still signed in: the same tab's session
    await expect(page.locator('#funnel [data-badge="yvr"] .count')).to_have_text("1")
    await expect(page.locator('#funnel [data-badge="yyc"] .count')).to_have_text("1")
    await expect(page.locator("#funnel .bar-row .count").first).to_have_text("2")  # taking part
    days = page.locator("#participation rect.day")
    await expect(days).to_have_count(30)
    today = days.last
    await expect(today.locator("title")).to_contain_text("2 players, 3 events")
    await expect(page.locator("#payouts [data-figure='eligible players'] .value")).to_have_text("2")
    await _screenshot(page, "dashboard")


async def test_failed_credits_of_a_settled_campaign_are_listed_and_retried(
    tab: Tab, tenant: Tenant
) -> None:
    # No loyalty endpoint: every credit fails at once, with the reason.
    campaign = {k: v for k, v in earn_your_wings().items() if k != "loyalty"}
    await tenant.call("POST", "/v1/campaigns", campaign)
    await tenant.fly(
        flight("f1", "p-1", "YVR", ago(hours=2)), flight("f2", "p-2", "YYC", ago(hours=1))
    )
    await tenant.call("POST", "/v1/campaigns/earn-your-wings/end")
    await tenant.call("POST", "/v1/campaigns/earn-your-wings/settle")
    page = tab.page

    await sign_in(tab, tenant, "/dashboard/campaigns/earn-your-wings")
    await expect(page.locator(".meta .status")).to_have_text("settled")
    payouts = page.locator("#payouts")
    await expect(payouts.locator("[data-figure=failed] .value")).to_have_text("10,000,000")
    await expect(payouts.locator('tr[data-player="p-1"]')).to_contain_text("no loyalty endpoint")
    await expect(payouts.locator("tbody .status")).to_have_text(["failed", "failed"])

    await payouts.locator("#retry").click()
    await expect(payouts.locator("#retried")).to_have_text("2 credits sent again.")
    await _screenshot(page, "dashboard-payouts")


async def test_the_editor_names_a_bad_rule_by_its_field_and_simulates_before_creating(
    tab: Tab, tenant: Tenant
) -> None:
    await tenant.fly(
        flight("f1", "p-1", "YVR", ago(days=3)),
        flight("f2", "p-1", "YYC", ago(days=2)),
        flight("f3", "p-2", "YVR", ago(days=1)),
        flight("f4", "p-3", "YVR", ago(days=45)),  # before the 30 days simulated
    )
    page = tab.page
    await sign_in(tab, tenant, "/dashboard/new")
    rules = page.locator("#rules")
    document = json.loads(await rules.input_value())
    errors = page.locator("#errors li")

    await rules.fill("{")
    await page.click("#create")
    await expect(errors).to_have_count(1)
    await expect(errors.first).to_have_attribute("data-field", "body")

    bad = json.loads(json.dumps(document))
    bad["badges"][4]["criteria"]["threshold"] = 0
    await rules.fill(json.dumps(bad, indent=2))
    await page.click("#create")
    await expect(
        page.locator('#errors li[data-field="badges[4].criteria.threshold"]')
    ).to_contain_text("must be at least 1")
    await page.click("#simulate")  # the same problem, under `campaign.`
    await expect(
        page.locator('#errors li[data-field="campaign.badges[4].criteria.threshold"]')
    ).to_be_visible()

    await rules.fill(json.dumps(document, indent=2))
    await page.select_option("#period", "30")
    await page.click("#simulate")
    result = page.locator("#simulation-result")
    await expect(result.locator("[data-figure=events] .value")).to_have_text("3")
    await expect(result.locator('[data-badge="yvr"] .count')).to_have_text("2")
    await expect(result.locator("tbody tr").first).to_have_attribute("data-player", "p-1")
    await expect(page.locator("#problem")).to_be_hidden()
    await _screenshot(page, "dashboard-editor")

    await page.click("#create")
    await expect(page).to_have_url(f"{tenant.service.url}/dashboard/campaigns/{document['id']}")
    await expect(page.locator("#campaign-name")).to_have_text(document["name"])
    await expect(page.locator(".meta .status")).to_have_text("scheduled")


async def _screenshot(page: Page, name: str) -> None:
    """With GAMIFY_DASHBOARD_SCREENSHOTS naming a folder, the page as the test left it there
    (as `name`.png): how the README's picture is taken."""
    folder = os.environ.get("GAMIFY_DASHBOARD_SCREENSHOTS")
    if folder:
        await page.screenshot(path=Path(folder) / f"{name}.png", full_page=True)
