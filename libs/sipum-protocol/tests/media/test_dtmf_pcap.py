"""RFC 4733 receive and G.711 decode on real captures: the RTP pcaps shipped with sipp
(Debian package sip-tester), which sipp replays as a real phone's DTMF and audio."""

import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
from sipum_protocol.media.codecs import alaw_decode
from sipum_protocol.media.dtmf import TelephoneEvent, TelephoneEventReceiver
from sipum_protocol.media.receiver import RtpReceiver
from sipum_protocol.media.rtp import RtpPacket

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

PCAPS = Path("/usr/share/sip-tester")
DIGIT_FILES = [(str(d), f"dtmf_2833_{d}.pcap") for d in range(10)] + [
    ("#", "dtmf_2833_pound.pcap"),
    ("*", "dtmf_2833_star.pcap"),
]


def read_pcap_udp_payloads(path: Path) -> list[tuple[float, bytes]]:
    """(capture time, UDP payload) of every packet of a classic little-endian pcap file
    with Ethernet or Linux-cooked framing and IPv4/UDP inside."""
    data = path.read_bytes()
    magic, _, _, _, _, _, link = struct.unpack_from("<IHHiIII", data)
    assert magic == 0xA1B2C3D4, "not a little-endian microsecond pcap"
    link_header = {1: 14, 113: 16}[link]
    out = []
    pos = 24
    while pos < len(data):
        seconds, micros, length, _ = struct.unpack_from("<IIII", data, pos)
        frame = data[pos + 16 : pos + 16 + length]
        pos += 16 + length
        ip = frame[link_header:]
        assert ip[0] >> 4 == 4 and ip[9] == 17  # IPv4, UDP
        udp = ip[(ip[0] & 0x0F) * 4 :]
        out.append((seconds + micros / 1e6, bytes(udp[8:])))
    return out


@pytest.fixture(scope="module")
def captures() -> Path:
    assert (PCAPS / "dtmf_2833_0.pcap").exists(), "sipp's pcaps (Debian sip-tester) are needed"
    return PCAPS


@pytest.mark.parametrize("digit, filename", DIGIT_FILES)
def test_each_captured_digit_reported_once(captures: Path, digit: str, filename: str) -> None:
    packets = read_pcap_udp_payloads(captures / filename)
    rx = TelephoneEventReceiver(clock_rate=8000)
    out = []
    for when, data in packets:
        out += rx.receive(RtpPacket.parse(data), when)
    out += rx.poll(packets[-1][0] + 10)
    assert [d.digit for d in out] == [digit]
    last = TelephoneEvent.parse(RtpPacket.parse(packets[-1][1]).payload)
    assert last.end and out[0].ended
    assert out[0].duration_ms == pytest.approx(last.duration / 8)


def test_captured_digits_as_one_stream_through_the_receive_path(captures: Path) -> None:
    """All twelve captures played one after the other on one SSRC (timestamps and sequence
    numbers moved on per digit, as a phone would), through RtpReceiver (which drops the
    capture's end-packet copies: they repeat the sequence number) and the DTMF receiver."""
    rtp = RtpReceiver(clock_rate=8000)
    dtmf = TelephoneEventReceiver(clock_rate=8000)
    digits = []
    next_seq = 1000
    for k, (_, filename) in enumerate(DIGIT_FILES):
        captured = [
            (when, RtpPacket.parse(data))
            for when, data in read_pcap_udp_payloads(captures / filename)
        ]
        first_seq, first_time = captured[0][1].sequence_number, captured[0][0]
        for when, packet in captured:
            packet.sequence_number = next_seq + packet.sequence_number - first_seq
            packet.timestamp = (packet.timestamp + 8000 * k) & 0xFFFFFFFF
            now = k + when - first_time
            for ready in rtp.receive(bytes(packet), now):
                digits += dtmf.receive(ready, now)
        next_seq = captured[-1][1].sequence_number + 1
    for ready in rtp.flush():
        digits += dtmf.receive(ready, 100.0)
    digits += dtmf.poll(100.0)
    assert "".join(d.digit for d in digits) == "0123456789#*"
    assert rtp.buffer.duplicates == 2 * 12
    assert rtp.source is not None and rtp.source.lost < 0  # A.3 counts the copies


def test_captured_alaw_call_decodes_like_the_reference(captures: Path) -> None:
    packets = [RtpPacket.parse(data) for _, data in read_pcap_udp_payloads(captures / "g711a.pcap")]
    assert {p.payload_type for p in packets} == {8}
    rx = RtpReceiver(clock_rate=8000)
    ordered = []
    for i, p in enumerate(packets):
        ordered += rx.receive(p, i * 0.02)
    ordered += rx.flush()
    assert rx.source is not None and rx.source.lost == 0 and rx.counters.invalid == 0
    payload = b"".join(p.payload for p in ordered)
    decoded = alaw_decode(payload)
    assert decoded.tobytes() == audioop.alaw2lin(payload, 2)
    assert len(decoded) == len(payload) > 8000 * 5  # one sample per octet, > 5 s of call
    assert np.abs(decoded).max() > 1000  # real audio, not silence
