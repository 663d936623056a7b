"""The web-api service: the FastAPI app (``app.py``) served by the shared runtime."""

from __future__ import annotations

import logging

from pydantic import SecretStr
from sipum.db import Pool, admins
from sipum.errors import ConfigError
from sipum.runtime import ServiceContext

from sipum_web_api.routes.account import ensure_default_domain
from sipum_web_api.settings import WebApiSettings


class WebApiService:
    name = "web-api"

    def __init__(self, settings: WebApiSettings) -> None:
        self.settings = settings

    async def start(self, ctx: ServiceContext) -> None:
        await ensure_default_domain(ctx.pool, self.settings.domain)
        await bootstrap_admin(ctx.pool, self.settings.bootstrap_admin)

    async def stop_accepting(self) -> None:
        """The runtime stops the HTTP server; requests in flight finish with it."""

    async def drain(self) -> None:
        """Nothing outlives a request here."""


log = logging.getLogger("sipum.misc.web")


async def bootstrap_admin(pool: Pool, setting: SecretStr | None) -> None:
    """The first administrator from ``SIPUM_BOOTSTRAP_ADMIN`` (``name:password``), only while
    there is none: a restart with the variable still set changes nothing."""
    if setting is None or await admins.count(pool) > 0:
        return
    name, sep, password = setting.get_secret_value().partition(":")
    if not sep or not name:
        raise ConfigError("bootstrap_admin", "expected name:password")
    try:
        await admins.create(pool, name, password)
    except (ValueError, admins.AdminExistsError) as exc:
        raise ConfigError("bootstrap_admin", str(exc)) from None
    log.info("first administrator created", extra={"admin": name})
