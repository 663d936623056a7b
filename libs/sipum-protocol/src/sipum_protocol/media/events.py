"""What a :class:`~sipum_protocol.media.session.MediaSession` tells its owner.

Small frozen dataclasses, taken out one at a time with ``MediaSession.next_event()`` after every
input (datagram, timer, command), in the order they happened: a recording's last
:class:`ChunkReady` comes before its :class:`RecordingStopped`; a digit that barges in gives
:class:`PlaybackFinished` before its :class:`DigitReceived`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .playback import PlaybackSession
from .recording import RecordingChunk, RecordingResult

Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class RtpSourceLatched:
    """Symmetric RTP (RFC 4961): the first RTP packet of a negotiated payload type came from
    *address*; from now on media is sent there, and only RTP from there should be taken (the
    driver connects its socket to it)."""

    address: Address
    """Where the caller's RTP really comes from (its NAT binding)."""


@dataclass(frozen=True, slots=True)
class DigitReceived:
    """A DTMF digit ended: an RFC 4733 event (§2.5.1.4 end bit, or its timeout when every end
    packet was lost) or an in-band tone confirmed by the detector. Reported once per key press;
    its effects (barge-in, the stop digit) already happened when the key went down."""

    digit: str
    """``0``–``9``, ``*``, ``#``, ``A``–``D``."""


@dataclass(frozen=True, slots=True)
class PlaybackFinished:
    """The playback started by ``play`` is over: played to the end, interrupted by a barge-in
    digit, stopped, or ended by the hang-up."""

    playback: PlaybackSession
    """The finished playback (``interrupted_by``, ``position``, ``packets_sent``)."""


@dataclass(frozen=True, slots=True)
class ChunkReady:
    """Committed audio of the recording, to persist now: what a crash can lose is only what has
    not come out as a chunk yet."""

    chunk: RecordingChunk
    """The next chunk in order (``final`` on the recording's last one)."""


@dataclass(frozen=True, slots=True)
class RecordingStopped:
    """The recording ended (silence, length limit, stop digit or hang-up); every chunk of it
    came out before this event."""

    result: RecordingResult
    """Why it stopped, how long it is, whether it is too short to keep."""


@dataclass(frozen=True, slots=True)
class RtcpByeReceived:
    """The peer sent an RTCP BYE (RFC 3550 §6.6): the listed sources leave the session."""

    sources: tuple[int, ...]
    """SSRCs that left."""
    reason: str
    """The optional reason text ("" without one)."""


MediaEvent = (
    RtpSourceLatched
    | DigitReceived
    | PlaybackFinished
    | ChunkReady
    | RecordingStopped
    | RtcpByeReceived
)
"""Every event a media session emits."""
