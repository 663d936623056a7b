"""Notifier settings (environment prefix ``SIPUM_``; see docs/configuration.md)."""

from __future__ import annotations

import argparse
from typing import Any

from pydantic import Field, SecretStr
from sipum.config import ServiceSettings


class NotifierSettings(ServiceSettings):
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    mail_from: str = "sipum <voicemail@example.com>"
    send_email: bool = True
    """``-e`` turns e-mail off (events are still consumed and acknowledged)."""
    public_url: str = "http://localhost:8000"
    """Base URL of the web inbox, used in links."""
    rtsp_url: str = "rtsp://localhost:8554"
    """Base URL of the RTSP gateway, used in links."""
    sip_retrieve_host: str | None = None
    """Host of the SIP retrieval URI ``sip:<user>-<id>-retrieve@<host>``; default: the domain."""
    email_template: str | None = None
    """Path of the e-mail template (Jinja2, first line ``Subject: …``); default: the built-in
    ``email.tmp``."""
    link_ttl_seconds: int = Field(default=14 * 86400, ge=60)
    """How long the password-less playback links in an e-mail work."""
    smtp_timeout: float = Field(default=30.0, gt=0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-e", dest="no_email", action="store_true", help="do not send e-mail")


def apply_arguments(args: argparse.Namespace, overrides: dict[str, Any]) -> None:
    if args.no_email:
        overrides["send_email"] = False
