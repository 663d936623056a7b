"""The FastAPI application: operations routes now; the inbox and REST API build on it."""

from __future__ import annotations

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from sipum.runtime import ServiceContext
from sipum.runtime.http import metrics_payload


def create_app(ctx: ServiceContext) -> FastAPI:
    app = FastAPI(
        title="sipum",
        summary="SIP/RTSP unified messaging: web inbox and REST API",
        version="0.1.0",
    )
    app.state.ctx = ctx

    @app.get("/health", tags=["operations"])
    async def health() -> JSONResponse:
        """PostgreSQL, NATS and blob store status; 503 when any fails or while stopping."""
        report = await ctx.health.report()
        return JSONResponse(report.as_dict(), status_code=200 if report.ok else 503)

    @app.get("/metrics", tags=["operations"], include_in_schema=False)
    async def metrics() -> Response:
        return Response(metrics_payload(), media_type=CONTENT_TYPE_LATEST)

    return app
