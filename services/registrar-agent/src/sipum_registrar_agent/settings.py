"""Registrar-agent settings (environment prefix ``SIPUM_``; see docs/registrar-agent.md)."""

from __future__ import annotations

import argparse
import ipaddress
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode
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
    registrations_per_second: float = Field(default=500.0, gt=0)
    """At most this many new REGISTER transactions per second (token bucket)."""
    register_expires: int = Field(default=3600, ge=1)
    """Registration interval asked for (seconds); the registrar may grant another."""
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Addresses (or CIDR networks) whose ``P-Asserted-Identity`` we believe (RFC 3325 §2:
    a trust domain); env: comma-separated. Empty: never trusted."""
    shard_index: int = Field(default=0, ge=0)
    shard_count: int = Field(default=1, ge=1)
    """With several agents: this one registers the users whose shard (CRC-32 of
    ``user@domain`` modulo ``shard_count``) is ``shard_index``."""
    shard_takeover: bool = True
    """With ``shard_count`` > 1: heartbeats between the agents; the live agent with the lowest
    index registers the users of a silent agent's shard until that one is back."""
    agent_heartbeat_seconds: float = Field(default=0.5, gt=0, le=10)
    """Seconds between two of our ``AgentHeartbeat``s."""
    agent_dead_after_seconds: float = Field(default=2.0, gt=0, le=60)
    """An agent silent this long is gone: its shard is taken over."""
    media_timeout: float = Field(default=2.0, gt=0)
    """Seconds to wait for a media-recorder to answer ``sipum.media.allocate``."""
    retry_after_seconds: int = Field(default=30, ge=1)
    """``Retry-After`` on our ``503`` when no media-recorder answers."""
    call_drain_seconds: float = Field(default=12.0, ge=0)
    """On SIGTERM, calls still going after this long are hung up (BYE); with the 5 s of
    de-registration and the hang-up grace it stays inside the runtime's 20 s deadline."""
    deregister_seconds: float = Field(default=5.0, ge=0)
    """On SIGTERM, at most this long for the ``Expires: 0`` of every user (at
    ``registrations_per_second`` many users need longer; bindings not removed expire)."""
    agent_id: str | None = None
    """Name in events (``agent_id``); default: host name and process id."""
    max_call_seconds: float = Field(default=1200.0, gt=0)
    """Every answered call is ended (BYE, ``end_reason=max_duration``) this long after our 200:
    no caller holds a session for ever (the message itself is limited far below this)."""
    session_timers: bool = True
    """RFC 4028 session timers as UAS: a caller that stops refreshing is hung up."""
    session_expires_seconds: int = Field(default=1800, ge=90)
    """The interval we choose (and the longest we accept) for session refreshes."""
    min_se_seconds: int = Field(default=90, ge=90)
    """Shorter requested intervals get ``422`` with this ``Min-SE``."""
    recorder_liveness: bool = True
    """Watch the media-recorders' heartbeats and end (BYE) the calls of one that is gone."""
    recorder_liveness_links: bool = True
    """Keep a TCP connection open to each media-recorder's liveness link (the ``link`` of its
    heartbeats): a recorder process that dies closes it and its calls are moved at once, not
    after its heartbeats' ``dead_after`` (needs ``recorder_liveness``)."""
    recorder_move_calls: bool = True
    """A recording call whose media-recorder is gone is moved to another live replica (which
    continues the same message) by a re-INVITE with the new SDP; off, or when that fails: BYE."""
    recorder_move_attempt_seconds: float = Field(default=0.5, gt=0)
    """A move's allocation is tried again after this long without an answer (within
    ``media_timeout``): the first request may reach the dead replica's subscription before the
    NATS server has dropped it."""
    recorder_move_reinvite_seconds: float = Field(default=4.0, gt=0)
    """How long the caller has to answer the re-INVITE of a move before we fall back to BYE."""
    recorder_unknown_seconds: float = Field(default=2.0, gt=0)
    """A recorder that answered an allocation but is not heard from within this long is taken
    for gone (it died right after answering, or does not send heartbeats)."""
    mwi_enabled: bool = True
    """Answer ``SUBSCRIBE`` for ``message-summary`` (RFC 3842); off: 405 like before."""
    mwi_min_expires: int = Field(default=60, ge=1)
    """Shorter subscriptions get ``423 Interval Too Brief`` with ``Min-Expires``."""
    mwi_max_expires: int = Field(default=3600, ge=1)
    """Longer subscriptions are granted this long."""
    mwi_default_expires: int = Field(default=3600, ge=1)
    """Granted when a SUBSCRIBE has no ``Expires`` (RFC 3842 §6 suggests one hour)."""
    mwi_debounce_seconds: float = Field(default=0.25, ge=0, le=10)
    """Message events for a mailbox within this long give one NOTIFY."""
    mwi_max_subscriptions: int = Field(default=20000, ge=1)
    """Subscriptions held at once (all mailboxes); more get 503."""
    voicemail_user: str = Field(default="voicemail", pattern=r"^[A-Za-z0-9._~+-]*$")
    """User part of the voicemail access URI ``sip:<voicemail_user>@<domain>``: the caller is
    asked for the mailbox number, then the PIN (mode ``access``); empty: no access URI."""

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies", mode="after")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_network(item, strict=False)  # ValueError → configuration error
        return value

    @model_validator(mode="after")
    def _check_shard(self) -> RegistrarAgentSettings:
        if self.shard_index >= self.shard_count:
            raise ValueError("shard_index must be below shard_count")
        if self.agent_dead_after_seconds < 2 * self.agent_heartbeat_seconds:
            raise ValueError("agent_dead_after_seconds must be at least two heartbeats")
        if self.min_se_seconds > self.session_expires_seconds:
            raise ValueError("min_se_seconds must not exceed session_expires_seconds")
        if not self.mwi_min_expires <= self.mwi_default_expires <= self.mwi_max_expires:
            raise ValueError("need mwi_min_expires <= mwi_default_expires <= mwi_max_expires")
        return self


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", dest="numeric_via", action="store_true", help="numeric IP in Via")


def apply_arguments(args: argparse.Namespace, overrides: dict[str, Any]) -> None:
    if args.numeric_via:
        overrides["numeric_via"] = True
