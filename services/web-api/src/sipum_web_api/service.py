"""The web-api service: the FastAPI app (``app.py``) served by the shared runtime."""

from __future__ import annotations

from sipum.runtime import ServiceContext

from sipum_web_api.routes.account import ensure_default_domain
from sipum_web_api.settings import WebApiSettings


class WebApiService:
    name = "web-api"

    def __init__(self, settings: WebApiSettings) -> None:
        self.settings = settings

    async def start(self, ctx: ServiceContext) -> None:
        await ensure_default_domain(ctx.pool, self.settings.domain)

    async def stop_accepting(self) -> None:
        """The runtime stops the HTTP server; requests in flight finish with it."""

    async def drain(self) -> None:
        """Nothing outlives a request here."""
