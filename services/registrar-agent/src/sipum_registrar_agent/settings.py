"""Registrar-agent settings (environment prefix ``SIPUM_``; see docs/configuration.md)."""

from __future__ import annotations

import argparse
from typing import Any

from pydantic import Field
from sipum.config import ServiceSettings


class RegistrarAgentSettings(ServiceSettings):
    registrar: str = "127.0.0.1:5060"
    """``host:port`` of the domain's SIP registrar/proxy (Kamailio) we REGISTER users with."""
    sip_host: str = "127.0.0.1"
    """Address our SIP transports listen on."""
    sip_port: int = Field(default=5070, ge=0, le=65535)
    sip_advertise: str | None = None
    """Host (name or address) put in Contact/Via; default: ``sip_host``."""
    numeric_via: bool = False
    """``-n``: numeric IP address in Via instead of the host name."""
    registrations_in_flight: int = Field(default=50, ge=1, le=10000)
    """At most this many REGISTER transactions outstanding at once."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", dest="numeric_via", action="store_true", help="numeric IP in Via")


def apply_arguments(args: argparse.Namespace, overrides: dict[str, Any]) -> None:
    if args.numeric_via:
        overrides["numeric_via"] = True
