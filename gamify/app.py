"""create_app(settings) -> Litestar: wiring only; behaviour lives in the modules it names."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.static_files import create_static_files_router
from swagger_ui_bundle import swagger_ui_path

from gamify import __version__
from gamify.boards import controller as boards_api
from gamify.boards.batch import ReadBatcher
from gamify.boards.names import DisplayNames
from gamify.boards.service import Boards
from gamify.campaigns import controller as campaigns_api
from gamify.campaigns.clock import Clock
from gamify.campaigns.compiled import EngineCache
from gamify.campaigns.hooks import CampaignHooks
from gamify.dashboard import controller as dashboard_api
from gamify.dashboard import store as dashboard_store
from gamify.dashboard.simulate import Simulations
from gamify.events import controller as events_api
from gamify.events.backfill import Backfills
from gamify.events.coalesce import Coalescer
from gamify.live import controller as live_api
from gamify.live.protocol import Payout
from gamify.live.service import Live
from gamify.payouts import controller as payouts_api
from gamify.payouts import settlement
from gamify.payouts.delivery import Dispatcher, FinalCredit
from gamify.platform import db, health, logs, metrics, migrations, redis_client
from gamify.platform.container import Container
from gamify.platform.problems import HANDLERS
from gamify.platform.request_id import RequestIdMiddleware
from gamify.platform.settings import Settings, ensure_secret
from gamify.players import controller as players_api
from gamify.tenants import controller as tenants_api
from gamify.tenants.guards import KeyCache

MAX_BODY_BYTES = 1024 * 1024
DOCS_ASSETS = "/schema/assets"


def create_app(settings: Settings) -> Litestar:
    if settings.database_url is None or settings.redis_url is None:
        raise ValueError("create_app needs both URLs; resolve embedded servers first")
    settings = ensure_secret(settings)
    logs.configure(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        assert settings.database_url is not None and settings.redis_url is not None
        pool = await db.connect(settings.database_url, settings.db_pool_size)
        redis = redis_client.connect(settings.redis_url)
        container = _wire(Container(settings, pool, redis, migrations.latest_version()))
        app.state.container = container
        await container.get(Boards).start()
        await container.get(Live).start()
        await container.get(Backfills).resume()
        container.get(Clock).start()
        if settings.delivery_in_process:
            container.get(Dispatcher).start()
        try:
            yield
        finally:
            await container.get(Dispatcher).stop()
            await container.get(Clock).stop()
            await container.get(Backfills).stop()
            await container.get(Live).stop()
            await container.get(Boards).stop()
            await redis.aclose()
            await pool.close()

    return Litestar(
        route_handlers=[
            health.health,
            health.ready,
            metrics.metrics,
            tenants_api.me,
            tenants_api.AdminController,
            campaigns_api.CampaignController,
            dashboard_api.simulate,
            dashboard_api.CampaignInsights,
            dashboard_api.DashboardPages,
            dashboard_api.dashboard_assets(),
            events_api.post_events,
            players_api.PlayerController,
            boards_api.LeaderboardController,
            payouts_api.PayoutController,
            live_api.live_socket,
            create_static_files_router(
                path=DOCS_ASSETS,
                directories=[swagger_ui_path],
                include_in_schema=False,
            ),
        ],
        lifespan=[lifespan],
        exception_handlers=HANDLERS,
        middleware=[metrics.LatencyMiddleware(), RequestIdMiddleware()],
        request_max_body_size=MAX_BODY_BYTES,
        openapi_config=_openapi(),
        # Logging is logs.configure's alone: Litestar's default config would swap the root
        # handler for its own plain-text queue handler and stop "litestar" from propagating.
        logging_config=None,
        debug=False,
    )


def _wire(container: Container) -> Container:
    """One instance of each domain part, built on the connections (see Container)."""
    pool, redis = container.db, container.redis
    engines = container.add(EngineCache())
    hooks = container.add(CampaignHooks())
    container.add(KeyCache(pool))
    outbox = metrics.outbox_depth(lambda: dashboard_store.pending_credits(pool))
    container.add(metrics.Exporter([outbox]))
    names = container.add(DisplayNames(pool))
    container.add(Simulations(pool, names))
    batcher = container.add(ReadBatcher(redis))
    boards = container.add(Boards(pool, redis, engines))
    backfills = container.add(Backfills(pool, boards))
    hooks.on_backfill_owed(backfills.start)
    hooks.on_settlement_due(lambda tenant, campaign: settlement.settle(pool, tenant, campaign))
    container.add(Clock(pool, hooks))
    dispatcher = container.add(
        Dispatcher(pool, max_backoff=container.settings.delivery_max_backoff)
    )
    # Half the pool for the write path leaves connections for reads under a write storm.
    parallel = container.settings.db_pool_size // 2
    coalescer = container.add(Coalescer(pool, engines, boards.writer, parallel=parallel))
    assert container.settings.redis_url is not None
    live = container.add(
        Live(redis, container.settings.redis_url, boards, batcher, names, pool=pool)
    )
    coalescer.on_committed(live.publisher.committed)
    dispatcher.on_final(lambda credit: live.publisher.tell(*_payout_message(credit)))
    return container


def _payout_message(credit: FinalCredit) -> tuple[str, str, Payout]:
    """A credit delivered or failed, as its player's `payout` message (live lies below payouts,
    so the app translates)."""
    message = Payout(credit.campaign, credit.amount, credit.unit, credit.status)
    return credit.tenant, credit.player, message


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
