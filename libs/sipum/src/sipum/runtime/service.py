"""The life cycle every sipum service shares.

Start-up: load settings (old flags + environment), set up logging, connect what the service
uses (PostgreSQL with migrations applied under an advisory lock, NATS with the ``SIPUM``
stream ensured, the blob store), register their health checks, serve ``/health`` and
``/metrics``, then :meth:`Service.start`.

Shutdown on SIGTERM or SIGINT: the health endpoint reports ``stopping`` (so a load balancer or
compose stops sending work), :meth:`Service.stop_accepting` stops taking new work,
:meth:`Service.drain` finishes in-flight work within ``drain_timeout`` seconds, connections are
closed, and the process exits 0. A dependency that cannot be reached at start-up is a
configuration error: one line naming the setting, exit status 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sipum.config import ServiceSettings, load_settings, run_cli
from sipum.runtime.health import HealthRegistry
from sipum.runtime.http import AsgiApp, HealthMetricsApp, start_http, stop_http
from sipum.runtime.logging import setup_logging

log = logging.getLogger("sipum.misc.runtime")

#: What a service may ask the runtime to connect for it.
POSTGRES, NATS, BLOBS = "postgres", "nats", "blobs"


@dataclass
class ServiceContext:
    """What the runtime hands a service: settings, connections, health registry, stop flag.

    The connections are untyped because each service asks for a different set (``uses``) and
    typing them ``X | None`` would make every use check for None; a service narrows the ones
    it uses once (the web-api in ``sipum_web_api.deps.WebApiState``).
    """

    settings: Any
    health: HealthRegistry
    pool: Any = None
    """``asyncpg.Pool`` when the service uses PostgreSQL."""
    bus: Any = None
    """``sipum.events.EventBus`` when the service uses NATS."""
    blobs: Any = None
    """``sipum.blobstore.BlobStore`` when the service uses the blob store."""
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    http_port: int | None = None
    """The port the health/metrics (or web) endpoint is bound to (useful with port 0)."""


class Service(Protocol):
    """What a service implements; the runtime calls these in order."""

    name: str

    async def start(self, ctx: ServiceContext) -> None:
        """Begin taking work (subscribe, listen). Return once started."""

    async def stop_accepting(self) -> None:
        """Stop taking new work (unsubscribe, close listeners)."""

    async def drain(self) -> None:
        """Return when in-flight work is finished (the runtime bounds the wait)."""


async def connect_dependencies(
    ctx: ServiceContext, uses: Sequence[str], *, migrate: bool = True
) -> None:
    """Connect PostgreSQL / NATS / blob store as asked; register their health checks."""
    settings = ctx.settings
    if POSTGRES in uses:
        from sipum.db import create_pool
        from sipum.db.migrate import apply_migrations

        ctx.pool = await create_pool(settings.database_url, max_size=settings.database_pool_size)
        if migrate:
            applied = await apply_migrations(ctx.pool)
            if applied:
                log.info("database migrations applied", extra={"migrations": list(applied)})
        pool = ctx.pool

        async def check_postgres() -> None:
            async with pool.acquire() as conn:
                await conn.fetchval("SELECT 1")

        ctx.health.add("postgres", check_postgres)
    if NATS in uses:
        from sipum.events import EventBus

        ctx.bus = await EventBus.connect(
            settings.nats_url,
            name=ctx.health.service,
            prefix=settings.events_prefix,
            stream=settings.events_stream,
        )
        await ctx.bus.ensure_stream(replicas=settings.stream_replicas)
        bus = ctx.bus

        async def check_nats() -> None:
            await bus.check()

        ctx.health.add("nats", check_nats)
    if BLOBS in uses:
        from sipum.blobstore import open_blob_store

        ctx.blobs = open_blob_store(settings)
        await ctx.blobs.check()
        ctx.health.add("blobstore", ctx.blobs.check)


async def close_dependencies(ctx: ServiceContext) -> None:
    if ctx.bus is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ctx.bus.close(), 5)
    if ctx.pool is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ctx.pool.close(), 5)


def tune_garbage_collector() -> None:
    """Keep the collector's full passes out of the hot paths.

    A SIP agent keeps every finished transaction for 32 s (timers J and L): at a few hundred
    calls per second that is hundreds of thousands of tracked objects, and one automatic full
    collection over them stalls the loop for 150-600 ms (measured with sipp; docs/sip.md). The
    call paths make no reference cycles, so: start-up objects are frozen out of the collector,
    automatic full collections are off, and :func:`collect_periodically` runs one every few
    minutes to reclaim any cycles anyway.
    """
    gc.freeze()
    gen0, gen1, _ = gc.get_threshold()
    gc.set_threshold(gen0, gen1, 10**9)


async def collect_periodically(interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        gc.collect()


async def serve(
    service: Service,
    settings: ServiceSettings,
    *,
    uses: Sequence[str] = (POSTGRES, NATS, BLOBS),
    http_app_factory: Callable[[ServiceContext], AsgiApp] | None = None,
    drain_timeout: float = 20.0,
) -> int:
    """Run ``service`` until SIGTERM/SIGINT; see the module docstring for the sequence."""
    ctx = ServiceContext(settings=settings, health=HealthRegistry(service.name))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, ctx.stopping.set)
    server = task = None
    try:
        await connect_dependencies(ctx, uses)
        app: AsgiApp = http_app_factory(ctx) if http_app_factory else HealthMetricsApp(ctx.health)
        server, task, ctx.http_port = await start_http(app, settings.http_host, settings.http_port)
        await service.start(ctx)
        gc_task: asyncio.Task[None] | None = None
        if settings.gc_full_interval > 0:
            tune_garbage_collector()
            gc_task = asyncio.create_task(collect_periodically(settings.gc_full_interval))
        log.info(
            "service started",
            extra={"service": service.name, "http": f"{settings.http_host}:{ctx.http_port}"},
        )
        await ctx.stopping.wait()
        log.info(
            "stopping: no new work, finishing in-flight work", extra={"deadline_s": drain_timeout}
        )
        ctx.health.stopping = True
        await service.stop_accepting()
        try:
            await asyncio.wait_for(service.drain(), drain_timeout)
        except TimeoutError:
            log.warning("in-flight work not finished before the deadline; exiting anyway")
        if gc_task is not None:
            gc_task.cancel()
    finally:
        if server is not None and task is not None:
            await stop_http(server, task)
        await close_dependencies(ctx)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    log.info("stopped", extra={"service": service.name})
    return 0


def _uvloop_factory() -> asyncio.AbstractEventLoop:
    import uvloop

    return uvloop.new_event_loop()


def run_service_main(
    *,
    name: str,
    settings_cls: type[ServiceSettings],
    service_factory: Callable[[Any], Service],
    argv: Sequence[str] | None = None,
    description: str,
    uses: Sequence[str] = (POSTGRES, NATS, BLOBS),
    add_arguments: Callable[..., None] | None = None,
    apply_arguments: Callable[..., None] | None = None,
    http_app_factory: Callable[[ServiceContext], AsgiApp] | None = None,
) -> None:
    """The ``main()`` of a service's console script and ``python -m``."""
    prog = f"sipum-{name}"

    async def main() -> int:
        settings = load_settings(
            settings_cls,
            argv,
            prog=prog,
            description=description,
            add_arguments=add_arguments,
            apply_arguments=apply_arguments,
        )
        setup_logging(name, json_lines=settings.logs_as_json, debug=settings.debug)
        return await serve(
            service_factory(settings), settings, uses=uses, http_app_factory=http_app_factory
        )

    run_cli(main, prog=prog, loop_factory=_uvloop_factory)
