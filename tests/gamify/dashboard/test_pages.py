"""The dashboard's pages as the service serves them: HTML for people, asked for with no
credential and holding no tenant's data, every asset from the service itself (no CDN, no inline
script), and none of it in the OpenAPI document."""

from __future__ import annotations

import html
import re

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.gamify.support import bearer, tenant_key

PAGES = ["/dashboard", "/dashboard/new", "/dashboard/campaigns/earn-your-wings"]


@pytest.mark.parametrize("path", PAGES)
async def test_a_page_is_html_with_every_asset_from_the_service(
    client: AsyncTestClient[Litestar], path: str
) -> None:
    page = await client.get(path)

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "unsafe-inline" not in policy
    assert page.headers["cache-control"] == "no-store"
    links = re.findall(r'(?:src|href)="([^"]*)"', page.text)
    assert links and all(link.startswith("/") for link in links), links
    for asset in {link for link in links if link.startswith("/dashboard/static/")}:
        assert (await client.get(asset)).status_code == 200, asset
    assert "<script>" not in page.text


async def test_the_assets_are_a_script_and_a_style_sheet(
    client: AsyncTestClient[Litestar],
) -> None:
    script = await client.get("/dashboard/static/dashboard.js")
    style = await client.get("/dashboard/static/dashboard.css")

    assert "javascript" in script.headers["content-type"]
    assert "sessionStorage" in script.text
    assert style.headers["content-type"].startswith("text/css")


async def test_the_editor_starts_from_a_campaign_the_service_accepts(
    client: AsyncTestClient[Litestar],
) -> None:
    headers = bearer(await tenant_key(client, scopes=("campaigns:write",)))
    page = (await client.get("/dashboard/new")).text

    [sample] = re.findall(r'<textarea id="rules"[^>]*>(.*?)</textarea>', page, re.DOTALL)
    created = await client.post("/v1/campaigns", content=html.unescape(sample), headers=headers)

    assert created.status_code == 201, created.text
    assert created.json()["status"] == "scheduled"  # from the coming hour


async def test_a_campaign_page_names_its_campaign_escaped(
    client: AsyncTestClient[Litestar],
) -> None:
    page = (await client.get("/dashboard/campaigns/summer-2026")).text

    assert 'data-campaign="summer-2026"' in page
    assert (await client.get("/dashboard/campaigns/<b>")).status_code == 400  # not a slug


async def test_the_pages_are_not_in_the_openapi_document(
    client: AsyncTestClient[Litestar],
) -> None:
    paths = (await client.get("/schema/openapi.json")).json()["paths"]

    assert not [path for path in paths if path.startswith("/dashboard")]
