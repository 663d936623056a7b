"""Web-api settings (environment prefix ``SIPUM_``; see docs/configuration.md)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from sipum.config import ServiceSettings


class WebApiSettings(ServiceSettings):
    http_port: int = Field(default=8000, ge=0, le=65535)
    """The web inbox, REST API, ``/health`` and ``/metrics`` share this port."""
    public_url: str = "http://localhost:8000"
    """Base URL users reach the web inbox at (used in links)."""
    deregister_wait_seconds: float = Field(default=3.0, ge=0, le=30)
    """Deleting an account waits at most this long for the registrar-agent to confirm the
    de-registration before the user's row goes (docs/web-api.md)."""
    webhook_allowed_networks: list[str] = Field(default_factory=list)
    """Non-public networks (CIDR) a webhook URL may point into — the same setting as the
    notifier's, which enforces it on delivery (docs/notifier.md)."""
    max_webhooks_per_user: int = Field(default=10, ge=0, le=100)
    bootstrap_admin: SecretStr | None = None
    """``name:password`` of the first administrator, created at start-up only while there is
    none (then unset it); ``sipum-admin create-admin`` does the same from a shell."""
