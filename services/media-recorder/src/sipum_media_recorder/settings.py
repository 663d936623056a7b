"""Media-recorder settings (environment prefix ``SIPUM_``; see docs/configuration.md)."""

from __future__ import annotations

from pydantic import Field, model_validator
from sipum.config import ServiceSettings


class MediaRecorderSettings(ServiceSettings):
    rtp_host: str = "0.0.0.0"
    """Address the RTP sockets bind to."""
    rtp_advertise_address: str | None = None
    """Address put in our SDP (``c=``); default: the address this host uses to reach NATS."""
    rtp_port_min: int = Field(default=20000, ge=1024, le=65534)
    rtp_port_max: int = Field(default=29999, ge=1025, le=65535)
    recorder_id: str | None = None
    """Name of this replica in events and replies; default: host name + PID."""

    @model_validator(mode="after")
    def _check_range(self) -> MediaRecorderSettings:
        if self.rtp_port_max <= self.rtp_port_min:
            raise ValueError("rtp_port_max must be above rtp_port_min")
        return self
