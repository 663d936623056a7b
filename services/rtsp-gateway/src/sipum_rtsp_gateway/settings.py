"""RTSP-gateway settings (environment prefix ``SIPUM_``; see docs/configuration.md)."""

from __future__ import annotations

from pydantic import Field
from sipum.config import ServiceSettings


class RtspGatewaySettings(ServiceSettings):
    rtsp_host: str = "127.0.0.1"
    rtsp_port: int = Field(default=8554, ge=0, le=65535)
    rtp_port_min: int = Field(default=30000, ge=1024, le=65534)
    rtp_port_max: int = Field(default=30999, ge=1025, le=65535)
