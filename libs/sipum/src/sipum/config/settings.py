"""``ServiceSettings``: what every sipum service reads from its environment (prefix ``SIPUM_``).

Each setting is documented in ``docs/configuration.md``; services subclass this class and add
their own fields.  Secrets are ``SecretStr`` so they never show in a repr, a log line or an error.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from sipum.config.database_url import normalize_database_url, redact_url
from sipum.config.debug import DEBUG_CATEGORIES

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/sipum"


class ServiceSettings(BaseSettings):
    """Settings shared by every service; environment variable = ``SIPUM_`` + upper-case name."""

    model_config = SettingsConfigDict(
        env_prefix="SIPUM_",
        extra="ignore",
        validate_default=True,
        hide_input_in_errors=True,
    )

    database_url: str = DEFAULT_DATABASE_URL
    """PostgreSQL URL (``postgresql://``, ``postgres://`` or the old ``sql://`` form)."""
    database_pool_size: int = Field(default=10, ge=1, le=100)
    """Most connections the process keeps to PostgreSQL (its pool's maximum; it opens one at
    start and more as concurrent work needs them)."""

    nats_url: str = "nats://127.0.0.1:4222"
    """NATS server(s); several may be given separated by commas."""
    events_prefix: str = "sipum"
    """First token of every NATS subject (``<prefix>.evt.>``); tests use a unique one."""
    events_stream: str = "SIPUM"
    """Name of the JetStream stream that keeps the events."""
    stream_replicas: int = Field(default=1, ge=1, le=5)
    """Copies JetStream keeps of the stream: 1 on one server, 3 on a NATS cluster (survives the
    loss of one node). Every service that starts brings the stream to this setting."""

    s3_endpoint: str | None = None
    """``host:port`` of an S3 service (MinIO); unset → the filesystem blob store under ``blob_root``."""
    s3_access_key: str | None = None
    s3_secret_key: SecretStr | None = None
    s3_bucket: str = "sipum"
    s3_secure: bool = False
    """Use HTTPS to reach ``s3_endpoint``."""
    s3_region: str | None = None

    blob_root: str = "./var/blobs"
    """Directory of the filesystem blob store (used when ``s3_endpoint`` is unset)."""

    http_host: str = "127.0.0.1"
    """Address of the health and Prometheus metrics endpoint."""
    http_port: int = Field(default=8080, ge=0, le=65535)
    """Port of the health and metrics endpoint; 0 lets the OS choose one."""

    log_json: bool = False
    """Write logs as one JSON object per line (forced when not in the foreground)."""
    debug: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Debug log categories: ``all``, ``sql``, ``net``, ``sdp``, ``misc`` (env: comma-separated)."""

    domain: str = "example.com"
    """The SIP/mail domain served when a request does not name one."""
    secret_key: SecretStr = SecretStr("change-me")
    """Key that signs tokens (web sessions, links in e-mails); set it in production."""

    gc_full_interval: float = Field(default=300.0, ge=0)
    """Seconds between the garbage collector's full passes, run by the service instead of
    automatically (docs/operations.md); 0 keeps Python's default collector."""

    foreground: bool = True
    """``-X``: run attached to a terminal with human-readable logs (the default)."""

    @field_validator("database_url", mode="after")
    @classmethod
    def _normalize_database_url(cls, value: str) -> str:
        return normalize_database_url(value)

    @field_validator("nats_url", mode="after")
    @classmethod
    def _check_nats_url(cls, value: str) -> str:
        for server in value.split(","):
            scheme = server.strip().partition("://")[0].lower()
            if scheme not in ("nats", "tls", "ws", "wss"):
                raise ValueError(f"expected nats://host:port, got scheme {scheme!r}")
        return value

    @field_validator("debug", mode="before")
    @classmethod
    def _split_debug(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("debug", mode="after")
    @classmethod
    def _check_debug(cls, value: list[str]) -> list[str]:
        categories: list[str] = []
        for name in value:
            name = name.lower()
            if name not in DEBUG_CATEGORIES:
                raise ValueError(
                    f"unknown debug category {name!r} (choose from {', '.join(DEBUG_CATEGORIES)})"
                )
            if name not in categories:
                categories.append(name)
        return categories

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # The database URL may carry a password: never show it in a repr (or a log of one).
        for name, value in super().__repr_args__():
            yield name, redact_url(value) if name == "database_url" else value

    @property
    def logs_as_json(self) -> bool:
        """JSON log lines: asked for, or implied by running detached (not in the foreground)."""
        return self.log_json or not self.foreground

    @property
    def uses_s3(self) -> bool:
        return bool(self.s3_endpoint)
