"""The service's HTTP endpoint: a minimal ASGI app with ``/health`` and ``/metrics``, and
uvicorn serving it (or the web-api's FastAPI app) inside the service's own event loop.

Services without a web API of their own serve it on ``http_host:http_port``; the web-api mounts
the same routes in FastAPI instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from sipum.errors import ConfigError
from sipum.runtime.health import HealthRegistry

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def metrics_payload() -> bytes:
    return generate_latest(REGISTRY)


class HealthMetricsApp:
    """ASGI application: ``GET /health`` (200 ok / 503 fail, JSON) and ``GET /metrics``."""

    def __init__(self, health: HealthRegistry) -> None:
        self.health = health

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                event = await receive()
                if event["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif event["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if method not in ("GET", "HEAD"):
            await self._respond(send, 405, b"method not allowed\n", "text/plain")
        elif path in ("/health", "/healthz"):
            report = await self.health.report()
            body = json.dumps(report.as_dict()).encode()
            await self._respond(send, 200 if report.ok else 503, body, "application/json")
        elif path == "/metrics":
            await self._respond(send, 200, metrics_payload(), CONTENT_TYPE_LATEST)
        else:
            await self._respond(send, 404, b"not found\n", "text/plain")

    @staticmethod
    async def _respond(send: Send, status: int, body: bytes, content_type: str) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", content_type.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


async def start_http(
    app: AsgiApp, host: str, port: int
) -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    """Serve an ASGI app in this loop without uvicorn's own signal handling."""
    config = uvicorn.Config(app, host=host, port=port, log_config=None, lifespan="off")
    config.load()
    server = uvicorn.Server(config)
    server.lifespan = config.lifespan_class(config)
    try:
        await server.startup()
    except SystemExit:  # uvicorn exits when it cannot bind (port in use...)
        server.should_exit = True
    if server.should_exit:
        raise ConfigError("http_port", f"cannot listen on {host}:{port}")
    bound = server.servers[0].sockets[0].getsockname()[1]
    task = asyncio.create_task(server.main_loop(), name="http-main-loop")
    return server, task, bound


async def stop_http(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    server.should_exit = True
    with contextlib.suppress(Exception):
        await asyncio.wait_for(task, 5)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(server.shutdown(), 5)
