"""The FastAPI application: web inbox page, REST API, health and metrics."""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI, Response
from fastapi.responses import HTMLResponse, JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from sipum.runtime import ServiceContext
from sipum.runtime.http import metrics_payload

from sipum_web_api import pages
from sipum_web_api.deps import WebApiState
from sipum_web_api.limits import BodyLimit
from sipum_web_api.routes import (
    account,
    admin,
    admin_webhooks,
    events,
    greetings,
    messages,
    webhooks,
)
from sipum_web_api.routes import settings as user_settings

INBOX_PAGE = resources.files("sipum_web_api").joinpath("static/inbox.html").read_text("utf-8")


def create_app(ctx: ServiceContext) -> FastAPI:
    app = FastAPI(
        title="sipum",
        summary="SIP/RTSP unified messaging: web inbox and REST API",
        version="0.1.0",
    )
    app.state.web = WebApiState.from_context(ctx)  # what sipum_web_api.deps hands the routes
    # Greeting uploads may be 10 MiB; every other body is small JSON. All are bounded in time.
    app.add_middleware(
        BodyLimit,
        limit_for=lambda method, path: (
            greetings.MAX_UPLOAD_BYTES
            if method == "PUT" and path.startswith("/api/v1/greetings/")
            else None
        ),
    )
    app.include_router(account.router)
    app.include_router(messages.router)
    app.include_router(greetings.router)
    app.include_router(webhooks.router)
    app.include_router(events.router)
    app.include_router(admin.router)
    app.include_router(admin_webhooks.router)
    app.include_router(user_settings.router)
    app.include_router(pages.router)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def inbox_page() -> HTMLResponse:
        return HTMLResponse(
            INBOX_PAGE, headers={"Content-Security-Policy": "default-src 'self' 'unsafe-inline'"}
        )

    @app.get("/health", tags=["operations"])
    async def health() -> JSONResponse:
        """PostgreSQL, NATS and blob store status; 503 when any fails or while stopping."""
        report = await ctx.health.report()
        return JSONResponse(report.as_dict(), status_code=200 if report.ok else 503)

    @app.get("/metrics", tags=["operations"], include_in_schema=False)
    async def metrics() -> Response:
        return Response(metrics_payload(), media_type=CONTENT_TYPE_LATEST)

    return app
