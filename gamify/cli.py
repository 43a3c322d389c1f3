"""The `gamify` command: serve, demo, worker, migrate, tenant, key, rebuild."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import asyncpg
import click

from gamify.dashboard import demo as demo_run
from gamify.platform import db, logs, server
from gamify.platform.embedded import EmbeddedError
from gamify.platform.runtime import servers_for
from gamify.platform.settings import Settings, SettingsError, from_env
from gamify.tenants import store as tenants
from gamify.tenants.keys import SCOPES, IssuedKey, issue_key

T = TypeVar("T")


def _settings() -> Settings:
    try:
        settings = from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    logs.configure(settings.log_level)
    return settings


def _with_database(work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """Run `work` on a migrated database: the configured one, or the data folder's."""
    settings = _settings()
    try:
        with servers_for(settings, owner=False, redis=False) as resolved:
            assert resolved.database_url is not None
            return asyncio.run(_migrated(resolved.database_url, work))
    except EmbeddedError as exc:
        raise click.ClickException(str(exc)) from None


async def _migrated(url: str, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    await server.migrate(url)
    conn = await db.connect_one(url)
    try:
        return await work(conn)
    finally:
        await conn.close()


@click.group()
@click.version_option(package_name="gamify")
def main() -> None:
    """gamify: badges, live leaderboards and prize pools for loyalty programs.

    Configuration comes from GAMIFY_* environment variables (see the README). Without
    GAMIFY_DATABASE_URL / GAMIFY_REDIS_URL, gamify runs its own Postgres and Valkey in
    GAMIFY_DATA_DIR (default ./.gamify).
    """


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="Server processes."
)
def serve(host: str, port: int, workers: int) -> None:
    """Run the HTTP and WebSocket service until SIGINT or SIGTERM."""
    settings = _settings()
    try:
        server.serve(settings, host, port, workers)
    except EmbeddedError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="Server processes."
)
@click.option(
    "--members", default=7_000, show_default=True, type=click.IntRange(1, 1_000_000),
    help="Simulated loyalty members.",
)  # fmt: skip
@click.option(
    "--rate", default=300, show_default=True, type=click.IntRange(1, 100_000),
    help="Flights posted a second.",
)  # fmt: skip
@click.option(
    "--data-dir",
    default=str(demo_run.DATA_DIR),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The demo's own embedded servers and data, kept for the next run.",
)
def demo(host: str, port: int, workers: int, members: int, rate: int, data_dir: Path) -> None:
    """Run the service with a demo campaign and simulated flights until Ctrl-C.

    Always on embedded servers in DATA_DIR (GAMIFY_DATABASE_URL, GAMIFY_REDIS_URL and
    GAMIFY_DATA_DIR are not used). Prints the dashboard URL, an API key and a player token.
    """
    settings = _settings()
    options = demo_run.Options(
        host=host, port=port, workers=workers, members=members, rate=rate, data_dir=data_dir
    )
    try:
        demo_run.run(settings, options)
    except (EmbeddedError, demo_run.DemoFailed) as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Serve this worker's metrics (Prometheus text) on this port.",
)
@click.option("--metrics-host", default="127.0.0.1", show_default=True)
def worker(metrics_port: int | None, metrics_host: str) -> None:
    """Deliver credits to loyalty systems until SIGINT or SIGTERM.

    Every `gamify serve` delivers too unless GAMIFY_DELIVERY_IN_PROCESS=0; any number of
    workers and servers may run at once (each credit is claimed by one).
    """
    settings = _settings()
    metrics_at = None if metrics_port is None else (metrics_host, metrics_port)
    try:
        with servers_for(settings, owner=False, redis=False) as resolved:
            assert resolved.database_url is not None
            asyncio.run(_deliver(resolved, metrics_at))
    except EmbeddedError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        pass


async def _deliver(settings: Settings, metrics_at: tuple[str, int] | None) -> None:
    # Here, not at the top: prometheus-client must be imported after `serve` has set its
    # multiprocess folder (see platform.metrics), and the other commands need none of it.
    from gamify.payouts.delivery import Dispatcher
    from gamify.platform import metrics

    assert settings.database_url is not None
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    loop.add_signal_handler(signal.SIGTERM, task.cancel)  # from the start: nothing to undo yet
    try:
        await server.migrate(settings.database_url)
        pool = await db.connect(settings.database_url, 4)
    except asyncio.CancelledError:
        return
    if metrics_at is not None:
        metrics.serve_alone(*metrics_at)
    dispatcher = Dispatcher(pool, max_backoff=settings.delivery_max_backoff)
    try:
        await dispatcher.run_forever()
    except asyncio.CancelledError:
        pass
    finally:
        await dispatcher.stop()
        await pool.close()


@main.command()
def migrate() -> None:
    """Apply pending database migrations."""

    async def work(conn: asyncpg.Connection) -> int:
        from gamify.platform import migrations

        return await migrations.applied_version(conn)

    click.echo(f"schema at version {_with_database(work)}")


@main.group()
def tenant() -> None:
    """Manage tenants."""


@tenant.command("create")
@click.argument("tenant_id")
@click.option("--name", help="Display name (defaults to the id).")
def tenant_create(tenant_id: str, name: str | None) -> None:
    """Create tenant TENANT_ID."""

    async def work(conn: asyncpg.Connection) -> tenants.Tenant:
        try:
            return await tenants.create_tenant(conn, tenant_id, name or tenant_id, actor="cli")
        except tenants.TenantExists:
            raise click.ClickException(f"tenant {tenant_id} already exists") from None
        except asyncpg.CheckViolationError:
            raise click.ClickException(
                "a tenant id is a lowercase slug: letters, digits, - and _, up to 63 characters"
            ) from None

    created = _with_database(work)
    click.echo(f"created tenant {created.id} ({created.name})")


@main.group()
def key() -> None:
    """Manage tenant API keys."""


@key.command("create")
@click.argument("tenant_id")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice(SCOPES),
    help="Repeat for several scopes.",
)
@click.option(
    "--rate-limit",
    type=click.IntRange(1, 1_000_000),
    default=None,
    help="Requests per second allowed for this key (default: no limit).",
)
def key_create(tenant_id: str, scopes: tuple[str, ...], rate_limit: int | None) -> None:
    """Create an API key for TENANT_ID and print it (shown this once)."""

    async def work(conn: asyncpg.Connection) -> IssuedKey:
        try:
            return await issue_key(conn, tenant_id, list(scopes), rate_limit, actor="cli")
        except tenants.TenantNotFound:
            raise click.ClickException(f"no tenant {tenant_id}") from None

    issued = _with_database(work)
    click.echo(f"key {issued.id} for {issued.tenant}, scopes {' '.join(issued.scopes)}:", err=True)
    click.echo(issued.key)


@key.command("revoke")
@click.argument("tenant_id")
@click.argument("key_id", type=int)
def key_revoke(tenant_id: str, key_id: int) -> None:
    """Revoke key KEY_ID of TENANT_ID (running instances stop accepting it within 10 s)."""

    async def work(conn: asyncpg.Connection) -> bool:
        return await tenants.revoke_key(conn, tenant_id, key_id, actor="cli")

    if not _with_database(work):
        raise click.ClickException(f"no live key {key_id} of tenant {tenant_id}")
    click.echo(f"revoked key {key_id} of {tenant_id}")


@main.command()
@click.option("--tenant", "tenant_id", help="Only this tenant's campaigns.")
@click.option("--campaign", "campaign_id", help="Only this campaign (with --tenant if ambiguous).")
def rebuild(tenant_id: str | None, campaign_id: str | None) -> None:
    """Rebuild leaderboards in Redis from Postgres (all campaigns by default)."""
    settings = _settings()
    try:
        with servers_for(settings, owner=False) as resolved:
            assert resolved.database_url is not None and resolved.redis_url is not None
            done = asyncio.run(
                _rebuild(resolved.database_url, resolved.redis_url, tenant_id, campaign_id)
            )
    except EmbeddedError as exc:
        raise click.ClickException(str(exc)) from None
    if not done:
        raise click.ClickException("no campaign matched")
    for (tenant, campaign), members in done.items():
        click.echo(f"{tenant}/{campaign}: {members} board entries")


async def _rebuild(
    database_url: str, redis_url: str, tenant_id: str | None, campaign_id: str | None
) -> dict[tuple[str, str], int]:
    from gamify.boards import functions
    from gamify.boards.rebuild import rebuild_here
    from gamify.campaigns import store as campaigns
    from gamify.campaigns.compiled import EngineCache
    from gamify.platform import redis_client

    await server.migrate(database_url)
    pool = await db.connect(database_url, 2)
    redis = redis_client.connect(redis_url)
    engines = EngineCache()
    done: dict[tuple[str, str], int] = {}
    try:
        await functions.load(redis)
        for tenant, campaign in await campaigns.matching(pool, tenant_id, campaign_id):
            compiled = engines.get(tenant, campaign)
            done[(tenant, campaign.id)] = await rebuild_here(pool, redis, tenant, compiled)
    finally:
        await redis.aclose()
        await pool.close()
    return done


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
