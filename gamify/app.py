"""create_app(settings) -> Litestar: wiring only; behaviour lives in the modules it names."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.static_files import create_static_files_router
from swagger_ui_bundle import swagger_ui_path

from gamify import __version__, db, migrations, redis_client
from gamify.api import admin, campaigns, events, health, leaderboards, me, players
from gamify.problems import HANDLERS
from gamify.request_id import RequestIdMiddleware
from gamify.services import Services
from gamify.settings import Settings, ensure_secret

MAX_BODY_BYTES = 1024 * 1024
DOCS_ASSETS = "/schema/assets"


def create_app(settings: Settings) -> Litestar:
    if settings.database_url is None or settings.redis_url is None:
        raise ValueError("create_app needs both URLs; resolve embedded servers first")
    settings = ensure_secret(settings)
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        assert settings.database_url is not None and settings.redis_url is not None
        pool = await db.connect(settings.database_url, settings.db_pool_size)
        redis = redis_client.connect(settings.redis_url)
        services = Services(settings, pool, redis, migrations.latest_version())
        app.state.services = services
        await services.boards.start()
        await services.backfills.resume()
        try:
            yield
        finally:
            await services.backfills.stop()
            await services.boards.stop()
            await redis.aclose()
            await pool.close()

    return Litestar(
        route_handlers=[
            health.health,
            health.ready,
            me.me,
            admin.AdminController,
            campaigns.CampaignController,
            events.post_events,
            players.PlayerController,
            leaderboards.LeaderboardController,
            create_static_files_router(
                path=DOCS_ASSETS,
                directories=[swagger_ui_path],
                include_in_schema=False,
            ),
        ],
        lifespan=[lifespan],
        exception_handlers=HANDLERS,
        middleware=[RequestIdMiddleware()],
        request_max_body_size=MAX_BODY_BYTES,
        openapi_config=_openapi(),
        debug=False,
    )


def _openapi() -> OpenAPIConfig:
    # The docs page loads Swagger UI from the swagger-ui-bundle wheel, never from a CDN.
    swagger = SwaggerRenderPlugin(
        path="/",
        js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
        css_url=f"{DOCS_ASSETS}/swagger-ui.css",
        standalone_preset_js_url=f"{DOCS_ASSETS}/swagger-ui-standalone-preset.js",
        favicon=f'<link rel="icon" href="{DOCS_ASSETS}/favicon-32x32.png">',
    )
    return OpenAPIConfig(
        title="gamify",
        version=__version__,
        path="/schema",
        render_plugins=[swagger],
        description="Badges, live leaderboards and prize pools for loyalty programs.",
    )
