"""Media-recorder settings (environment prefix ``SIPUM_``; see docs/recorder.md)."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, model_validator
from sipum.config import ServiceSettings
from sipum.security.pin_lockout import LockoutPolicy


class MediaRecorderSettings(ServiceSettings):
    rtp_host: str = "0.0.0.0"
    """Address the RTP sockets bind to."""
    rtp_advertise_address: str | None = None
    """Address put in our SDP (``c=``); default: the address this host uses to reach NATS."""
    rtp_port_min: int = Field(default=20000, ge=1024, le=65534)
    rtp_port_max: int = Field(default=29999, ge=1025, le=65535)
    recorder_id: str | None = None
    """Name of this replica in events and replies; default: host name + PID. Set it to a
    stable name (e.g. the compose service + index) so a restarted replica recovers its own
    interrupted recordings at once instead of after ``recovery_grace_seconds``."""

    prompt_dir: str = "./var/prompts"
    """Cache directory of the rendered system prompts (espeak-ng + sox, rendered at start)."""

    max_silence_seconds: float = Field(default=5.0, gt=0)
    """This much continuous silence (or no RTP at all) ends a recording."""
    min_voice_seconds: float = Field(default=1.0, ge=0)
    """Recordings with less non-silent audio than this are discarded."""
    silence_threshold_dbfs: float = Field(default=-45.0, le=0)
    """Frames quieter than this (RMS, dBFS) count as silence."""
    quota_min_message_seconds: float = Field(default=5.0, gt=0)
    """A mailbox that is not full but whose quota holds less than this much audio still takes
    a message this long (it may end up that much over its quota); see ``limits``."""
    chunk_seconds: float = Field(default=0.2, gt=0)
    """A recording in progress is written to the blob store at least this often. With
    ``hold_back_seconds`` it bounds what a crash loses: at most 0.28 s of audio with the defaults
    (plus the upload's own latency) — a moved call adds the move's gap to it (≤ 0.5 s in all,
    measured); see docs/recorder.md for the measured cost (~5 PUTs/s per call)."""
    hold_back_seconds: float = Field(default=0.1, ge=0, le=1)
    """Newest audio not yet committed, so the tone of a ``#`` that arrives a little after its
    audio (RFC 4733 events travel with the audio) can still be cut off; part of the crash loss."""

    pin_attempts: int = Field(default=3, ge=1, le=10)
    """Wrong PINs before a retrieval call is ended."""
    pin_lockout_failures: int = Field(default=5, ge=1, le=100)
    """Wrong PINs for one mailbox — over all calls and replicas — within
    ``pin_lockout_window_seconds`` that lock its phone access (``sipum.security.pin_lockout``)."""
    pin_lockout_window_seconds: float = Field(default=900.0, gt=0)
    """How long wrong PINs are counted together (from the first one)."""
    pin_lockout_base_seconds: float = Field(default=300.0, gt=0)
    """Length of the first lock; each further lock in a row lasts twice as long."""
    pin_lockout_max_seconds: float = Field(default=86400.0, gt=0)
    """No lock lasts longer than this."""
    lockout_announce_retry_seconds: float = Field(default=60.0, gt=0)
    """A lock whose owner was not told yet (its ``mailbox.locked`` lost, say NATS was away) is
    published again this long after the last try; the sweep runs this often."""
    digit_timeout_seconds: float = Field(default=8.0, gt=0)
    """How long to wait for the next PIN digit or a menu choice."""
    menu_repeats: int = Field(default=3, ge=1)
    """How often the retrieval menu is offered without an answer before hanging up."""

    store_retry_seconds: float = Field(default=60.0, ge=0)
    """A finished message whose store fails (blob store or database away) is retried with
    back-off (0.5 s doubling to 5 s) for this long, then left in the spool for recovery."""
    heartbeat_interval_seconds: float = Field(default=0.5, gt=0, le=10)
    """How often this replica says it is alive on NATS (``RecorderHeartbeat``)."""
    heartbeat_misses: int = Field(default=3, ge=2, le=20)
    """Heartbeats missed before a replica counts as gone (1.5 s with the defaults): the agent
    ends its calls, the other replicas recover its recordings at once."""
    liveness_link: bool = True
    """Listen on a TCP port (the liveness link, advertised in the heartbeats) to which each
    registrar-agent keeps a connection open: when this process dies the kernel closes them and
    the agents move its calls at once instead of after ``heartbeat_misses`` heartbeats."""
    liveness_link_host: str | None = None
    """Address the liveness link listens on; default: ``rtp_host``. Advertised as is unless a
    wildcard, then the RTP advertised address (``rtp_advertise_address`` or the address that
    reaches NATS)."""
    liveness_link_port: int = Field(default=0, ge=0, le=65535)
    """Port of the liveness link; 0: any free one (the heartbeats say which)."""
    liveness_link_max: int = Field(default=64, ge=1, le=10000)
    """Liveness-link connections at a time (one per registrar-agent); more are closed at once."""
    time_zone: str = "UTC"
    """Time zone in which the main menu says when a message arrived (an IANA name such as
    ``Europe/Berlin``) for a mailbox whose user and domain chose no ``time_zone`` setting."""
    menu_newest_first: bool = False
    """Main menu: play the new (and then the saved) messages newest first instead of oldest."""
    menu_max_messages: int = Field(default=500, ge=1, le=10000)
    """Main menu: at most this many messages are offered in one call."""
    owner_escape_digit: str = Field(default="*", pattern=r"^[0-9*]?$")
    """This key during a mailbox's greeting takes the caller to the mailbox's main menu (the
    PIN asked unless the caller is the trusted owner); empty: no escape."""
    operator_digit: str = Field(default="0", pattern=r"^[0-9]?$")
    """This key during the greeting or the recording transfers the caller to the mailbox's
    ``operator_uri`` (REFER by the registrar-agent); a mailbox without one ignores it; empty:
    never."""
    transfer_timeout_seconds: float = Field(default=30.0, gt=0, le=300)
    """How long a transfer to the operator may take (REFER to the final NOTIFY) before the
    caller is told it cannot be transferred."""

    recovery_grace_seconds: float = Field(default=60.0, ge=0)
    """A recording whose replica is still alive but has not touched it for this long is a
    leftover (e.g. a store that failed for ``store_retry_seconds``) and is recovered by any replica."""
    recovery_interval_seconds: float = Field(default=30.0, gt=0)
    """How often a replica looks for leftover recordings (a gone replica's are recovered as
    soon as its heartbeats stop, and at start-up once we have listened for ``dead_after``)."""
    recovery_move_grace_seconds: float = Field(default=3.0, ge=0)
    """A gone replica's recording is recovered only once untouched for this long: the agent
    may be moving its call to another replica (``continue_session_id``), which then takes the
    recording over — recovery storing it too would cut the message in two."""
    recovery_min_voice_seconds: float = Field(default=0.2, ge=0)
    """A recording cut off by a crash is kept (flagged ``interrupted``) if it holds at least
    this much non-silent audio, even below ``min_voice_seconds``: the caller did not choose to
    stop."""
    drain_seconds: float = Field(default=15.0, ge=0)
    """On SIGTERM, calls in flight may go on this long; then their recordings are ended and
    stored (the runtime's own deadline is 20 s)."""

    @model_validator(mode="after")
    def _check_range(self) -> MediaRecorderSettings:
        if self.rtp_port_max <= self.rtp_port_min:
            raise ValueError("rtp_port_max must be above rtp_port_min")
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"time_zone {self.time_zone!r} is not a known time zone") from None
        if self.pin_lockout_max_seconds < self.pin_lockout_base_seconds:
            raise ValueError("pin_lockout_max_seconds must not be below pin_lockout_base_seconds")
        return self

    @property
    def lockout_policy(self) -> LockoutPolicy:
        return LockoutPolicy(
            max_failures=self.pin_lockout_failures,
            window_seconds=self.pin_lockout_window_seconds,
            base_seconds=self.pin_lockout_base_seconds,
            max_seconds=self.pin_lockout_max_seconds,
        )
