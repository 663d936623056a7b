"""The SDP description of one stored message for DESCRIBE (RFC 2326 Appendix C).

Shaped by what real players need (measured with ffmpeg 5.1 and GStreamer 1.22):
session-level ``a=control:*`` and ``a=range:npt=0-<duration>`` (ffmpeg takes the duration from
it); a media-level ``a=control:trackID=0`` resolved against ``Content-Base`` (GStreamer fails on
a media-level ``a=control:*``); ``c=`` of 0.0.0.0 because the stream goes where SETUP says.
"""

from __future__ import annotations

from dataclasses import dataclass

TRACK_CONTROL = "trackID=0"


@dataclass(frozen=True)
class StreamFormat:
    """How a message is streamed: RTP payload type, encoding name, clock rate, channels."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int = 1
    ptime_ms: int = 20


PCMU = StreamFormat(0, "PCMU", 8000)
PCMA = StreamFormat(8, "PCMA", 8000)
# RFC 3551 §4.5.2: G.722 is sampled at 16 kHz but its RTP clock rate is 8000.
G722 = StreamFormat(9, "G722", 8000)
# L16 at 8 kHz mono: dynamic payload type (RFC 3551 §4.5.11).
L16_8K = StreamFormat(96, "L16", 8000)


def describe_message(
    *,
    title: str,
    duration_s: float,
    fmt: StreamFormat,
    session_id: int,
    server_address: str = "0.0.0.0",
) -> bytes:
    """SDP body for DESCRIBE; ``duration_s`` gives ``a=range:npt=0-<duration>``."""
    family = "IP6" if ":" in server_address else "IP4"
    rtpmap = f"{fmt.payload_type} {fmt.encoding}/{fmt.clock_rate}"
    if fmt.channels != 1:
        rtpmap += f"/{fmt.channels}"
    title = "".join(ch for ch in title if ch.isprintable()) or "-"
    lines = [
        "v=0",
        f"o=- {session_id} 1 IN {family} {server_address}",
        f"s={title}",
        f"c=IN {family} {'::' if family == 'IP6' else '0.0.0.0'}",
        "t=0 0",
        "a=control:*",
        f"a=range:npt=0-{duration_s:.3f}",
        f"m=audio 0 RTP/AVP {fmt.payload_type}",
        f"a=rtpmap:{rtpmap}",
        f"a=ptime:{fmt.ptime_ms}",
        f"a=control:{TRACK_CONTROL}",
    ]
    return ("\r\n".join(lines) + "\r\n").encode()
