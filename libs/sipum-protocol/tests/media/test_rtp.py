"""RTP packet parse/serialise (RFC 3550 §5.1)."""

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sipum_protocol.media.rtp import RtpPacket, is_rtcp, seq_diff, ts_diff


def test_parse_minimal_pcmu_packet() -> None:
    data = bytes.fromhex("80 00 12 34 00 00 03 e8 de ad be ef") + b"\xff" * 160
    packet = RtpPacket.parse(data)
    assert packet.payload_type == 0
    assert packet.sequence_number == 0x1234
    assert packet.timestamp == 1000
    assert packet.ssrc == 0xDEADBEEF
    assert packet.marker is False
    assert packet.payload == b"\xff" * 160
    assert packet.csrc == []
    assert packet.extension_profile is None
    assert bytes(packet) == data


def test_marker_csrc_extension_and_padding_round_trip() -> None:
    packet = RtpPacket(
        payload_type=101,
        sequence_number=65535,
        timestamp=0xFFFFFFFF,
        ssrc=1,
        payload=b"abc",
        marker=True,
        csrc=[7, 8, 9],
        extension_profile=0xBEDE,
        extension=b"\x10\x01\x00\x00",
        padding_size=5,
    )
    data = bytes(packet)
    assert data[0] == 0x80 | 0x20 | 0x10 | 3
    assert data[1] == 0x80 | 101
    assert len(data) == 12 + 12 + 4 + 4 + 3 + 5
    assert data[-1] == 5
    assert RtpPacket.parse(data) == packet


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "truncated"),
        (bytes.fromhex("80 00 00 01 00 00 00 00 00 00 00"), "truncated"),
        (bytes.fromhex("40 00 00 01 00 00 00 00 00 00 00 01"), "version"),
        (bytes.fromhex("83 00 00 01 00 00 00 00 00 00 00 01") + b"\0" * 8, "CSRC"),
        (bytes.fromhex("90 00 00 01 00 00 00 00 00 00 00 01 be de"), "extension"),
        (bytes.fromhex("90 00 00 01 00 00 00 00 00 00 00 01 be de 00 02 00 00 00 00"), "extension"),
        (bytes.fromhex("a0 00 00 01 00 00 00 00 00 00 00 01 aa 00"), "padding"),
        (bytes.fromhex("a0 00 00 01 00 00 00 00 00 00 00 01 aa 09"), "padding"),
    ],
)
def test_invalid_packets_raise_value_error(data: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=f"(?i){reason}"):
        RtpPacket.parse(data)


def test_serialise_rejects_unaligned_extension_and_too_many_csrc() -> None:
    with pytest.raises(ValueError):
        bytes(RtpPacket(extension_profile=1, extension=b"abc"))
    with pytest.raises(ValueError):
        bytes(RtpPacket(csrc=list(range(16))))


@given(
    pt=st.integers(0, 127),
    seq=st.integers(0, 0xFFFF),
    ts=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    payload=st.binary(max_size=200),
    marker=st.booleans(),
    csrc=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15),
    ext_words=st.one_of(st.none(), st.integers(0, 4)),
    padding=st.integers(0, 255),
)
def test_round_trip_property(pt, seq, ts, ssrc, payload, marker, csrc, ext_words, padding) -> None:
    packet = RtpPacket(
        payload_type=pt,
        sequence_number=seq,
        timestamp=ts,
        ssrc=ssrc,
        payload=payload,
        marker=marker,
        csrc=csrc,
        extension_profile=None if ext_words is None else 0x1000,
        extension=b"" if ext_words is None else bytes(range(4 * ext_words)),
        padding_size=padding,
    )
    assert RtpPacket.parse(bytes(packet)) == packet


@given(st.binary(max_size=80))
def test_parse_never_fails_other_than_value_error(data: bytes) -> None:
    try:
        packet = RtpPacket.parse(data)
    except ValueError:
        return
    # a packet that parsed re-serialises to the same bytes except padding contents
    again = bytes(packet)
    assert len(again) == len(data)
    assert again[: len(data) - packet.padding_size] == data[: len(data) - packet.padding_size]


def test_sequence_and_timestamp_arithmetic_wraps() -> None:
    assert seq_diff(2, 65534) == 4
    assert seq_diff(65534, 2) == -4
    assert seq_diff(100, 100) == 0
    assert ts_diff(80, 0xFFFFFFF0) == 96
    assert ts_diff(0xFFFFFFF0, 80) == -96


def test_is_rtcp_demultiplexes_by_packet_type() -> None:
    rtp = bytes(RtpPacket(payload_type=0, marker=True))
    assert not is_rtcp(rtp)
    rr = struct.pack("!BBHI", 0x80, 201, 1, 1)
    assert is_rtcp(rr)
    assert not is_rtcp(b"\x80")
