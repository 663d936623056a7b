"""Notifier settings (environment prefix ``SIPUM_``; see docs/configuration.md)."""

from __future__ import annotations

import argparse
import ipaddress
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
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
    """Bound of one SMTP conversation, or of one sendmail run."""
    mail_transport: Literal["smtp", "sendmail"] = "smtp"
    """``smtp`` (``smtp_host``…) or ``sendmail`` (pipe to ``sendmail_path -t -i``; ``-m`` sets it)."""
    sendmail_path: str = "/usr/sbin/sendmail"
    attachment_max_bytes: int = Field(default=10 * 1024 * 1024, ge=0)
    """An attachment larger than this (after MP3 encoding, if chosen) is left out; the mail says
    so and its links still play the message."""
    transcript_wait: float = Field(default=10.0, ge=0, le=300)
    """How long an e-mail waits for the message's transcript (``message.transcribed``) to put
    its text in the mail; then it goes without. 0: no waiting (a transcript already stored is
    still included). Never waited for when transcription is off for the user."""
    email_concurrency: int = Field(default=64, ge=1, le=1024)
    """E-mails composed at once per replica (each may wait ``transcript_wait``)."""
    notify_command: str | None = None
    """``-k PATH``: a program run for every new message (event JSON on stdin, ``SIPUM_*``
    variables; see docs/notifier.md). Unset: none."""
    notify_timeout: float = Field(default=30.0, gt=0)
    """A notify command still running after this long is killed (and retried)."""
    notify_output_limit: int = Field(default=65536, ge=0)
    """Bytes of the command's stdout/stderr kept (the rest is read and dropped)."""
    webhooks: bool = True
    """Deliver webhooks (the endpoints live in the database; none configured = no requests)."""
    webhook_timeout: float = Field(default=10.0, gt=0)
    """Bound of one webhook request (connect, send, response status)."""
    webhook_retry_base: float = Field(default=10.0, gt=0)
    """First retry after this many seconds, doubling each time…"""
    webhook_retry_max: float = Field(default=3600.0, gt=0)
    """…up to this interval…"""
    webhook_retry_window: float = Field(default=86400.0, gt=0)
    """…until this long after the event; then the delivery is dead-lettered."""
    webhook_concurrency: int = Field(default=64, ge=1, le=1024)
    """Webhook requests in flight at once per replica (at most 4 per endpoint)."""
    webhook_poll_interval: float = Field(default=1.0, gt=0)
    """How often the outbox is looked at for retries that fell due (new events wake it)."""
    webhook_allowed_networks: list[str] = Field(default_factory=list)
    """Networks (CIDR) webhooks may reach although not public, e.g. ``["10.1.0.0/16"]``; by
    default only globally routable addresses (the SSRF guard, docs/notifier.md)."""

    delete_after_email_retention: float = Field(default=86400.0, ge=0)
    """Delete after e-mail: how long a message whose mail carried its audio stays on the server
    (its links and the inbox still play it meanwhile), in seconds; 0 = until the next sweep."""
    retention_sweep_interval: float = Field(default=60.0, gt=0)
    """How often the retention sweeper deletes the messages whose time is up."""
    retention_sweep_batch: int = Field(default=100, ge=1, le=10000)
    """Messages deleted per statement (the sweeper repeats while it finds full batches)."""

    @field_validator("webhook_allowed_networks")
    @classmethod
    def _networks(cls, specs: list[str]) -> list[str]:
        for spec in specs:
            ipaddress.ip_network(spec, strict=False)  # ValueError names the bad one
        return specs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-e", dest="no_email", action="store_true", help="do not send e-mail")
    parser.add_argument(
        "-k",
        dest="notify_command",
        metavar="PATH",
        help="run PATH for every new message (event JSON on stdin)",
    )
    parser.add_argument(
        "-m",
        dest="sendmail_path",
        metavar="PATH",
        help="send mail by piping it to PATH -t -i (a sendmail) instead of SMTP",
    )


def apply_arguments(args: argparse.Namespace, overrides: dict[str, Any]) -> None:
    if args.no_email:
        overrides["send_email"] = False
    if args.notify_command:
        overrides["notify_command"] = args.notify_command
    if args.sendmail_path:
        overrides["mail_transport"] = "sendmail"
        overrides["sendmail_path"] = args.sendmail_path
