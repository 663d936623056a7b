"""RTCP packets (RFC 3550 §6): SR, RR, SDES, BYE, and compound packets.

API
---
One dataclass per packet type, each with ``parse(data)`` (one packet, header included)
and ``bytes(packet)``; ``ValueError`` on a truncated or invalid packet:

- ``RtcpReportBlock`` (§6.4.1, 24 octets; not a packet on its own),
- ``RtcpSenderReport`` (PT 200), ``RtcpReceiverReport`` (PT 201),
- ``RtcpSdes`` (PT 202) of ``RtcpSdesChunk`` (SSRC + ``items`` as (type, bytes) pairs;
  ``cname`` shortcut), ``RtcpBye`` (PT 203, optional reason),
- ``RtcpUnknown`` keeps any other packet type (APP, feedback, XR) as raw octets so a
  compound packet with them still parses.

``parse_compound(data) -> list[RtcpPacket]`` splits a compound packet (§6.1) and
``serialise_compound(packets) -> bytes`` joins packets back. ``ntp_timestamp(unix_time)``
gives the 64-bit NTP timestamp of a Unix time and ``ntp_middle32`` the middle 32 bits
that LSR carries (§6.4.1).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import ClassVar

RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203
RTCP_APP = 204

SDES_END = 0
SDES_CNAME = 1

_HEADER = struct.Struct("!BBH")
_REPORT_BLOCK = struct.Struct("!IIIIII")
_SENDER_INFO = struct.Struct("!IIIIII")  # ssrc, ntp msw, ntp lsw, rtp ts, packets, octets

NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900-01-01 (NTP) to 1970-01-01 (Unix)


def ntp_timestamp(unix_time: float) -> int:
    """64-bit NTP timestamp (32.32 fixed point seconds since 1900) of a Unix time."""
    return int((unix_time + NTP_EPOCH_OFFSET) * (1 << 32)) & 0xFFFFFFFFFFFFFFFF


def ntp_middle32(ntp: int) -> int:
    """The middle 32 bits of a 64-bit NTP timestamp (the units of LSR and DLSR: 1/65536 s)."""
    return (ntp >> 16) & 0xFFFFFFFF


def _header(data: bytes, expected_type: int) -> tuple[int, int]:
    """Validate the common header of one packet; return (count field, end of the packet
    body without padding)."""
    if len(data) < 4:
        raise ValueError("RTCP packet truncated: no header")
    first, packet_type, length = _HEADER.unpack_from(data)
    if first >> 6 != 2:
        raise ValueError(f"RTCP version {first >> 6} is not 2")
    if packet_type != expected_type:
        raise ValueError(f"RTCP packet type {packet_type}, expected {expected_type}")
    end = 4 * (length + 1)
    if end > len(data):
        raise ValueError("RTCP packet truncated: shorter than its length field")
    if first & 0x20:
        padding = data[end - 1]
        if padding == 0 or padding > end - 4:
            raise ValueError("RTCP padding invalid")
        end -= padding
    return first & 0x1F, end


def _pack_header(count: int, packet_type: int, body: bytes) -> bytes:
    if len(body) % 4:
        raise ValueError("RTCP packet body must be a multiple of 4 octets")
    if not 0 <= count <= 31:
        raise ValueError("RTCP count field holds at most 31")
    return _HEADER.pack(0x80 | count, packet_type, len(body) // 4) + body


@dataclass(slots=True)
class RtcpReportBlock:
    """Reception report about one source (§6.4.1)."""

    ssrc: int
    fraction_lost: int = 0
    """Fraction of packets lost since the previous report, in 1/256 units (0..255)."""
    packets_lost: int = 0
    """Cumulative number lost (signed 24 bit: duplicates can make it negative)."""
    highest_sequence: int = 0
    """Extended highest sequence number received (cycles << 16 | seq)."""
    jitter: int = 0
    """Interarrival jitter in RTP timestamp units (§6.4.1, A.8)."""
    lsr: int = 0
    """Middle 32 bits of the NTP timestamp of the last SR received from the source."""
    dlsr: int = 0
    """Delay since that SR, in 1/65536 s."""

    SIZE: ClassVar[int] = 24

    @classmethod
    def parse(cls, data: bytes, offset: int = 0) -> RtcpReportBlock:
        if offset + 24 > len(data):
            raise ValueError("RTCP report block truncated")
        ssrc, lost_word, highest, jitter, lsr, dlsr = _REPORT_BLOCK.unpack_from(data, offset)
        lost = lost_word & 0xFFFFFF
        if lost & 0x800000:
            lost -= 0x1000000
        return cls(ssrc, lost_word >> 24, lost, highest, jitter, lsr, dlsr)

    def __bytes__(self) -> bytes:
        lost = max(-0x800000, min(0x7FFFFF, self.packets_lost)) & 0xFFFFFF
        return _REPORT_BLOCK.pack(
            self.ssrc,
            (min(max(self.fraction_lost, 0), 255) << 24) | lost,
            self.highest_sequence & 0xFFFFFFFF,
            self.jitter & 0xFFFFFFFF,
            self.lsr & 0xFFFFFFFF,
            self.dlsr & 0xFFFFFFFF,
        )


def _parse_blocks(data: bytes, offset: int, count: int, end: int) -> list[RtcpReportBlock]:
    if offset + 24 * count > end:
        raise ValueError("RTCP report blocks truncated")
    return [RtcpReportBlock.parse(data, offset + 24 * i) for i in range(count)]


@dataclass(slots=True)
class RtcpSenderReport:
    """SR: sender info plus reception reports (§6.4.1)."""

    ssrc: int
    ntp_timestamp: int = 0
    """64-bit NTP wallclock time when the report was sent."""
    rtp_timestamp: int = 0
    """The same instant in the RTP clock of this sender."""
    packet_count: int = 0
    octet_count: int = 0
    reports: list[RtcpReportBlock] = field(default_factory=list)
    extension: bytes = b""
    """Profile-specific extension after the report blocks (kept, not interpreted)."""

    PACKET_TYPE: ClassVar[int] = RTCP_SR

    @classmethod
    def parse(cls, data: bytes) -> RtcpSenderReport:
        count, end = _header(data, RTCP_SR)
        if end < 28:
            raise ValueError("RTCP SR truncated: no sender info")
        ssrc, msw, lsw, rtp_ts, packets, octets = _SENDER_INFO.unpack_from(data, 4)
        reports = _parse_blocks(data, 28, count, end)
        return cls(
            ssrc,
            (msw << 32) | lsw,
            rtp_ts,
            packets,
            octets,
            reports,
            bytes(data[28 + 24 * count : end]),
        )

    def __bytes__(self) -> bytes:
        body = _SENDER_INFO.pack(
            self.ssrc,
            (self.ntp_timestamp >> 32) & 0xFFFFFFFF,
            self.ntp_timestamp & 0xFFFFFFFF,
            self.rtp_timestamp & 0xFFFFFFFF,
            self.packet_count & 0xFFFFFFFF,
            self.octet_count & 0xFFFFFFFF,
        )
        body += b"".join(bytes(r) for r in self.reports) + self.extension
        return _pack_header(len(self.reports), RTCP_SR, body)


@dataclass(slots=True)
class RtcpReceiverReport:
    """RR: reception reports from a participant that does not send (§6.4.2)."""

    ssrc: int
    reports: list[RtcpReportBlock] = field(default_factory=list)
    extension: bytes = b""

    PACKET_TYPE: ClassVar[int] = RTCP_RR

    @classmethod
    def parse(cls, data: bytes) -> RtcpReceiverReport:
        count, end = _header(data, RTCP_RR)
        if end < 8:
            raise ValueError("RTCP RR truncated: no SSRC")
        (ssrc,) = struct.unpack_from("!I", data, 4)
        reports = _parse_blocks(data, 8, count, end)
        return cls(ssrc, reports, bytes(data[8 + 24 * count : end]))

    def __bytes__(self) -> bytes:
        body = struct.pack("!I", self.ssrc) + b"".join(bytes(r) for r in self.reports)
        return _pack_header(len(self.reports), RTCP_RR, body + self.extension)


@dataclass(slots=True)
class RtcpSdesChunk:
    """One SDES chunk: an SSRC and its items as (item type, value) pairs (§6.5)."""

    ssrc: int
    items: list[tuple[int, bytes]] = field(default_factory=list)

    @property
    def cname(self) -> str | None:
        for item_type, value in self.items:
            if item_type == SDES_CNAME:
                return value.decode("utf-8", "replace")
        return None


@dataclass(slots=True)
class RtcpSdes:
    """SDES: source descriptions, at least a CNAME per source (§6.5)."""

    chunks: list[RtcpSdesChunk] = field(default_factory=list)

    PACKET_TYPE: ClassVar[int] = RTCP_SDES

    @classmethod
    def cname_for(cls, ssrc: int, cname: str) -> RtcpSdes:
        return cls([RtcpSdesChunk(ssrc, [(SDES_CNAME, cname.encode())])])

    @classmethod
    def parse(cls, data: bytes) -> RtcpSdes:
        count, end = _header(data, RTCP_SDES)
        pos = 4
        chunks = []
        for _ in range(count):
            if pos + 4 > end:
                raise ValueError("RTCP SDES chunk truncated")
            (ssrc,) = struct.unpack_from("!I", data, pos)
            pos += 4
            items = []
            while True:
                if pos >= end:
                    raise ValueError("RTCP SDES items not terminated")
                item_type = data[pos]
                if item_type == SDES_END:
                    # the null item ends the list; pad to the next 32-bit boundary
                    pos = (pos + 4) & ~3
                    break
                if pos + 2 > end or pos + 2 + data[pos + 1] > end:
                    raise ValueError("RTCP SDES item truncated")
                length = data[pos + 1]
                items.append((item_type, bytes(data[pos + 2 : pos + 2 + length])))
                pos += 2 + length
            chunks.append(RtcpSdesChunk(ssrc, items))
        return cls(chunks)

    def __bytes__(self) -> bytes:
        body = bytearray()
        for chunk in self.chunks:
            body += struct.pack("!I", chunk.ssrc)
            for item_type, value in chunk.items:
                if not 1 <= item_type <= 255 or len(value) > 255:
                    raise ValueError("SDES item type must be 1..255 and value at most 255 octets")
                body += bytes((item_type, len(value))) + value
            # at least one null octet, then up to the 32-bit boundary
            body += bytes(4 - len(body) % 4)
        return _pack_header(len(self.chunks), RTCP_SDES, bytes(body))


@dataclass(slots=True)
class RtcpBye:
    """BYE: the listed sources leave the session (§6.6)."""

    sources: list[int] = field(default_factory=list)
    reason: str = ""

    PACKET_TYPE: ClassVar[int] = RTCP_BYE

    @classmethod
    def parse(cls, data: bytes) -> RtcpBye:
        count, end = _header(data, RTCP_BYE)
        if 4 + 4 * count > end:
            raise ValueError("RTCP BYE truncated")
        sources = list(struct.unpack_from(f"!{count}I", data, 4))
        pos = 4 + 4 * count
        reason = ""
        if pos < end:
            length = data[pos]
            if pos + 1 + length > end:
                raise ValueError("RTCP BYE reason truncated")
            reason = bytes(data[pos + 1 : pos + 1 + length]).decode("utf-8", "replace")
        return cls(sources, reason)

    def __bytes__(self) -> bytes:
        body = b"".join(struct.pack("!I", s) for s in self.sources)
        if self.reason:
            text = self.reason.encode()[:255]
            body += bytes((len(text),)) + text
            body += bytes(-len(body) % 4)
        return _pack_header(len(self.sources), RTCP_BYE, body)


@dataclass(slots=True)
class RtcpUnknown:
    """Any other RTCP packet (APP, RTPFB/PSFB, XR…), kept as its count field and body."""

    packet_type: int
    count: int = 0
    body: bytes = b""

    @classmethod
    def parse(cls, data: bytes) -> RtcpUnknown:
        if len(data) < 4:
            raise ValueError("RTCP packet truncated: no header")
        count, end = _header(data, data[1])
        return cls(data[1], count, bytes(data[4:end]))

    def __bytes__(self) -> bytes:
        return _pack_header(self.count, self.packet_type, self.body)


RtcpPacket = RtcpSenderReport | RtcpReceiverReport | RtcpSdes | RtcpBye | RtcpUnknown

_PARSERS: dict[int, type[RtcpSenderReport | RtcpReceiverReport | RtcpSdes | RtcpBye]] = {
    RTCP_SR: RtcpSenderReport,
    RTCP_RR: RtcpReceiverReport,
    RTCP_SDES: RtcpSdes,
    RTCP_BYE: RtcpBye,
}


def parse_compound(data: bytes) -> list[RtcpPacket]:
    """Split and parse a compound RTCP packet (§6.1); ``ValueError`` if any part is invalid.

    Only the last packet of a compound may be padded (§6.4.1 ``P``): a padded packet
    that is not last is rejected, which is the validity check of A.2.
    """
    packets: list[RtcpPacket] = []
    pos = 0
    if not data:
        raise ValueError("empty RTCP packet")
    while pos < len(data):
        if pos + 4 > len(data):
            raise ValueError("RTCP compound packet truncated")
        first, packet_type, length = _HEADER.unpack_from(data, pos)
        size = 4 * (length + 1)
        if pos + size > len(data):
            raise ValueError("RTCP compound packet truncated")
        if first & 0x20 and pos + size != len(data):
            raise ValueError("RTCP padding on a packet that is not the last of the compound")
        chunk = data[pos : pos + size]
        parser = _PARSERS.get(packet_type)
        packets.append(parser.parse(chunk) if parser else RtcpUnknown.parse(chunk))
        pos += size
    return packets


def serialise_compound(packets: list[RtcpPacket]) -> bytes:
    """Concatenate RTCP packets into one compound packet (the caller puts SR/RR first, §6.1)."""
    return b"".join(bytes(p) for p in packets)
