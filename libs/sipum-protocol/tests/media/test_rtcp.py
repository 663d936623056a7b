"""RTCP packets (RFC 3550 §6): SR, RR, SDES, BYE, compound."""

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sipum_protocol.media.rtcp import (
    RtcpBye,
    RtcpReceiverReport,
    RtcpReportBlock,
    RtcpSdes,
    RtcpSdesChunk,
    RtcpSenderReport,
    RtcpUnknown,
    ntp_middle32,
    ntp_timestamp,
    parse_compound,
    serialise_compound,
)

BLOCK = RtcpReportBlock(
    ssrc=0x11223344,
    fraction_lost=64,
    packets_lost=-3,
    highest_sequence=0x0001FFFF,
    jitter=37,
    lsr=0xAABBCCDD,
    dlsr=65536,
)


def test_report_block_wire_layout() -> None:
    data = bytes(BLOCK)
    assert len(data) == 24
    assert data[4] == 64
    assert data[5:8] == b"\xff\xff\xfd"  # -3 in 24-bit two's complement
    assert RtcpReportBlock.parse(data) == BLOCK
    assert (
        RtcpReportBlock.parse(bytes(RtcpReportBlock(1, packets_lost=10**9))).packets_lost
        == 0x7FFFFF
    )


def test_sender_report_round_trip_and_layout() -> None:
    sr = RtcpSenderReport(
        ssrc=5,
        ntp_timestamp=ntp_timestamp(1_700_000_000.5),
        rtp_timestamp=123456,
        packet_count=10,
        octet_count=1720,
        reports=[BLOCK],
    )
    data = bytes(sr)
    assert data[:2] == bytes([0x81, 200])
    assert struct.unpack("!H", data[2:4])[0] == len(data) // 4 - 1 == 12
    assert RtcpSenderReport.parse(data) == sr
    assert (sr.ntp_timestamp & 0xFFFFFFFF) == 1 << 31  # .5 s in the fraction word


def test_receiver_report_round_trip() -> None:
    rr = RtcpReceiverReport(ssrc=9, reports=[BLOCK, RtcpReportBlock(ssrc=2)])
    data = bytes(rr)
    assert data[:2] == bytes([0x82, 201]) and len(data) == 8 + 48
    assert RtcpReceiverReport.parse(data) == rr
    empty = RtcpReceiverReport(ssrc=9)
    assert bytes(empty) == bytes.fromhex("80c9000100000009")


def test_sdes_cname_padding_and_round_trip() -> None:
    for name in ["a", "ab", "abc", "abcd", "user@host.example"]:
        sdes = RtcpSdes.cname_for(0x01020304, name)
        data = bytes(sdes)
        assert len(data) % 4 == 0
        parsed = RtcpSdes.parse(data)
        assert parsed == sdes
        assert parsed.chunks[0].cname == name
    two = RtcpSdes([RtcpSdesChunk(1, [(1, b"x"), (6, b"tool")]), RtcpSdesChunk(2, [])])
    assert RtcpSdes.parse(bytes(two)) == two
    assert two.chunks[1].cname is None


def test_bye_with_and_without_reason() -> None:
    bye = RtcpBye(sources=[1, 2], reason="hangup")
    data = bytes(bye)
    assert data[0] == 0x82 and data[1] == 203 and len(data) % 4 == 0
    assert RtcpBye.parse(data) == bye
    assert RtcpBye.parse(bytes(RtcpBye([7]))) == RtcpBye([7])


def test_compound_parse_and_serialise() -> None:
    packets = [
        RtcpSenderReport(ssrc=1, ntp_timestamp=2**40, rtp_timestamp=3, reports=[BLOCK]),
        RtcpSdes.cname_for(1, "sipum@recorder"),
        RtcpUnknown(packet_type=204, count=0, body=b"APPNname"),
        RtcpBye([1]),
    ]
    data = serialise_compound(packets)
    assert parse_compound(data) == packets


def test_padding_only_on_last_packet() -> None:
    rr = bytes(RtcpReceiverReport(ssrc=1))
    # pad the RR: P bit, 4 padding octets, length +1
    padded = bytes([0xA0, 201, 0, 2]) + rr[4:] + b"\0\0\0\x04"
    assert parse_compound(padded) == [RtcpReceiverReport(ssrc=1)]
    with pytest.raises(ValueError, match="padding"):
        parse_compound(padded + rr)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x80\xc9\x00",
        bytes.fromhex("40c9000100000009"),  # version 1
        bytes.fromhex("80c9000200000009"),  # length beyond data
        bytes.fromhex("81c9000100000009"),  # one report block announced, none present
        bytes.fromhex("80c800010000000a"),  # SR without sender info
        bytes.fromhex("81ca0002000000010105"),  # SDES item runs past the end
        bytes.fromhex("81ca000100000001"),  # SDES chunk without terminator
        bytes.fromhex("82cb000100000001"),  # BYE with two sources announced
        bytes.fromhex("81cb00010000000109000000"[:16]) + bytes.fromhex("05616200"),
    ],
)
def test_invalid_compound_raises_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        parse_compound(data)


def test_parse_wrong_type_rejected() -> None:
    with pytest.raises(ValueError, match="type"):
        RtcpSenderReport.parse(bytes(RtcpReceiverReport(ssrc=1)))


def test_ntp_helpers() -> None:
    ntp = ntp_timestamp(0.0)
    assert ntp >> 32 == 2208988800 and ntp & 0xFFFFFFFF == 0
    assert ntp_middle32(0x1122334455667788) == 0x33445566


@given(
    ssrc=st.integers(0, 2**32 - 1),
    blocks=st.lists(
        st.builds(
            RtcpReportBlock,
            ssrc=st.integers(0, 2**32 - 1),
            fraction_lost=st.integers(0, 255),
            packets_lost=st.integers(-0x800000, 0x7FFFFF),
            highest_sequence=st.integers(0, 2**32 - 1),
            jitter=st.integers(0, 2**32 - 1),
            lsr=st.integers(0, 2**32 - 1),
            dlsr=st.integers(0, 2**32 - 1),
        ),
        max_size=5,
    ),
    cname=st.text(max_size=40).filter(lambda s: len(s.encode()) <= 255),
    reason=st.text(max_size=30).filter(lambda s: len(s.encode()) <= 255),
)
def test_compound_round_trip_property(ssrc, blocks, cname, reason) -> None:
    packets = [
        RtcpReceiverReport(ssrc=ssrc, reports=blocks),
        RtcpSdes.cname_for(ssrc, cname),
        RtcpBye([ssrc], reason),
    ]
    assert parse_compound(serialise_compound(packets)) == packets


@given(st.binary(max_size=120))
def test_fuzz_only_value_error(data: bytes) -> None:
    try:
        parse_compound(data)
    except ValueError:
        pass
