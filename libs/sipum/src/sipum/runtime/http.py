"""A minimal ASGI app with ``/health`` and ``/metrics``, served by uvicorn.

Services without a web API of their own serve it on ``http_host:http_port``; the web-api mounts
the same routes in FastAPI instead.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from sipum.runtime.health import HealthRegistry

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


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
