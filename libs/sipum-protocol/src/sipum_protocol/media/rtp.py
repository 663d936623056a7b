"""RTP data packets (RFC 3550 §5.1) and sequence-number arithmetic.

API
---
``RtpPacket`` is a dataclass with ``RtpPacket.parse(data) -> RtpPacket`` and
``bytes(packet)``; parsing raises ``ValueError`` on a truncated or invalid packet
(wrong version, CSRC list or extension running past the end, bad padding).

Fields (all plain ints/bytes, so the hot receive path stays cheap):
``payload_type``, ``sequence_number`` (16 bit), ``timestamp`` (32 bit), ``ssrc``,
``payload``, ``marker``, ``csrc`` (list of ints), ``extension_profile`` (``None``
when there is no header extension) and ``extension`` (its data, a multiple of four
bytes), ``padding_size`` (number of padding octets including the count octet, 0 for
none; the padding is stripped from ``payload`` on parse and added on serialise).

Helpers: ``is_rtcp(data)`` tells RTCP from RTP when both share a port (RFC 5761 §4),
``seq_diff(a, b)`` is the signed distance from ``b`` to ``a`` modulo 2**16, and
``ts_diff(a, b)`` the same for 32-bit timestamps.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

RTP_VERSION = 2
RTP_HEADER_SIZE = 12

RTP_HEADER = struct.Struct("!BBHII")
"""The fixed 12-octet header (RFC 3550 §5.1): V/P/X/CC, M/PT, sequence, timestamp, SSRC."""
_EXTENSION_HEADER = struct.Struct("!HH")


def seq_diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` between two 16-bit sequence numbers, in [-32768, 32767]."""
    return ((a - b + 0x8000) & 0xFFFF) - 0x8000


def ts_diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` between two 32-bit RTP timestamps."""
    return ((a - b + 0x80000000) & 0xFFFFFFFF) - 0x80000000


def is_rtcp(data: bytes) -> bool:
    """True if ``data`` looks like RTCP rather than RTP (RFC 5761 §4: PT 64-95 after the
    marker bit is masked off are RTCP packet types 192-223, which no RTP profile uses)."""
    return len(data) >= 2 and 192 <= data[1] <= 223


@dataclass(slots=True)
class RtpPacket:
    """One RTP data packet (RFC 3550 §5.1, header extension §5.3.1, padding §5.1 ``P``)."""

    payload_type: int = 0
    sequence_number: int = 0
    timestamp: int = 0
    ssrc: int = 0
    payload: bytes = b""
    marker: bool = False
    csrc: list[int] = field(default_factory=list)
    extension_profile: int | None = None
    """The 16-bit "defined by profile" word of the header extension; ``None`` = no extension."""
    extension: bytes = b""
    """Header-extension data (without its 4-octet header), a multiple of 4 octets."""
    padding_size: int = 0
    """Padding octets at the end including the final count octet; 0 = no padding."""

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Parse one RTP packet; ``ValueError`` if it is truncated or not RTP version 2."""
        if len(data) < RTP_HEADER_SIZE:
            raise ValueError(f"RTP packet truncated: {len(data)} < {RTP_HEADER_SIZE} octets")
        first, second, seq, ts, ssrc = RTP_HEADER.unpack_from(data)
        if first >> 6 != RTP_VERSION:
            raise ValueError(f"RTP version {first >> 6} is not 2")
        end = len(data)
        padding_size = 0
        if first & 0x20:
            padding_size = data[-1]
            if padding_size == 0:
                raise ValueError("RTP padding count is zero")
            end -= padding_size
        pos = RTP_HEADER_SIZE
        csrc: list[int] = []
        cc = first & 0x0F
        if cc:
            pos += 4 * cc
            if pos > end:
                raise ValueError("RTP CSRC list truncated")
            csrc = list(struct.unpack_from(f"!{cc}I", data, RTP_HEADER_SIZE))
        extension_profile = None
        extension = b""
        if first & 0x10:
            if pos + 4 > end:
                raise ValueError("RTP header extension truncated")
            extension_profile, words = _EXTENSION_HEADER.unpack_from(data, pos)
            pos += 4
            if pos + 4 * words > end:
                raise ValueError("RTP header extension data truncated")
            extension = bytes(data[pos : pos + 4 * words])
            pos += 4 * words
        if pos > end:
            raise ValueError("RTP padding longer than the packet")
        return cls(
            payload_type=second & 0x7F,
            sequence_number=seq,
            timestamp=ts,
            ssrc=ssrc,
            payload=bytes(data[pos:end]),
            marker=bool(second & 0x80),
            csrc=csrc,
            extension_profile=extension_profile,
            extension=extension,
            padding_size=padding_size,
        )

    def __bytes__(self) -> bytes:
        if len(self.csrc) > 15:
            raise ValueError("at most 15 CSRC identifiers fit an RTP header")
        if len(self.extension) % 4:
            raise ValueError("RTP header extension must be a multiple of 4 octets")
        if not 0 <= self.padding_size <= 255:
            raise ValueError("RTP padding size must be 0..255")
        first = (RTP_VERSION << 6) | len(self.csrc)
        if self.padding_size:
            first |= 0x20
        if self.extension_profile is not None:
            first |= 0x10
        second = (0x80 if self.marker else 0) | (self.payload_type & 0x7F)
        parts = [
            RTP_HEADER.pack(
                first,
                second,
                self.sequence_number & 0xFFFF,
                self.timestamp & 0xFFFFFFFF,
                self.ssrc & 0xFFFFFFFF,
            )
        ]
        if self.csrc:
            parts.append(struct.pack(f"!{len(self.csrc)}I", *self.csrc))
        if self.extension_profile is not None:
            parts.append(_EXTENSION_HEADER.pack(self.extension_profile, len(self.extension) // 4))
            parts.append(self.extension)
        parts.append(self.payload)
        if self.padding_size:
            parts.append(bytes(self.padding_size - 1) + bytes((self.padding_size,)))
        return b"".join(parts)
