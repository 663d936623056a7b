"""Codec and RTP interoperability with a real peer: FFmpeg sends RTP to our receiver and
decoders, and decodes the RTP our encoders produce (PCMU, PCMA, G.722, Opus)."""

import shutil
import socket
import subprocess
import time
import wave
from pathlib import Path

import numpy as np
import pytest
from sipum_protocol.media.codecs import (
    alaw_encode,
    codec_info,
    create_decoder,
    create_encoder,
    ulaw_encode,
)
from sipum_protocol.media.receiver import RtpReceiver
from sipum_protocol.media.rtcp import (
    RtcpBye,
    RtcpSdes,
    RtcpSenderReport,
    ntp_timestamp,
    serialise_compound,
)
from sipum_protocol.media.rtp import RtpPacket

from .test_codecs import aligned_correlation, speech_like

FFMPEG = shutil.which("ffmpeg")
SECONDS = 2.0

# (our codec name, FFmpeg encoder, payload type we send, a=rtpmap)
CODECS = [
    ("PCMU", "pcm_mulaw", 0, "PCMU/8000"),
    ("PCMA", "pcm_alaw", 8, "PCMA/8000"),
    ("G722", "g722", 9, "G722/8000"),
    ("opus", "libopus", 111, "opus/48000/2"),
]


@pytest.fixture(scope="module")
def ffmpeg() -> str:
    assert FFMPEG, "ffmpeg is a required test dependency (Debian package ffmpeg)"
    return FFMPEG


def write_wav(path: Path, pcm: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def drain(sock: socket.socket) -> list[bytes]:
    sock.setblocking(False)
    out = []
    while True:
        try:
            out.append(sock.recv(4096))
        except BlockingIOError:
            return out


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name, encoder, _pt, _rtpmap", CODECS)
def test_ffmpeg_rtp_into_our_receiver_and_decoder(
    ffmpeg: str, tmp_path: Path, name: str, encoder: str, _pt: int, _rtpmap: str
) -> None:
    info = codec_info(name)
    pcm = speech_like(info.sample_rate, SECONDS)
    source = tmp_path / "in.wav"
    write_wav(source, pcm, info.sample_rate)
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rtp,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rtcp,
    ):
        rtp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        rtp.bind(("127.0.0.1", 0))
        rtcp.bind(("127.0.0.1", 0))
        port, rtcp_port = rtp.getsockname()[1], rtcp.getsockname()[1]
        subprocess.run(
            [ffmpeg, "-hide_banner", "-loglevel", "error", "-i", str(source), "-ac", "1"]
            + ["-c:a", encoder, "-f", "rtp", f"rtp://127.0.0.1:{port}?rtcpport={rtcp_port}"],
            check=True,
            timeout=30,
            stdout=subprocess.DEVNULL,
        )
        datagrams = drain(rtp)
        reports = drain(rtcp)
    receiver = RtpReceiver(clock_rate=info.clock_rate)
    packets = []
    for i, data in enumerate(datagrams):
        packets += receiver.receive(data, now=i * 0.02)
    packets += receiver.flush()
    assert packets and receiver.counters.invalid == 0
    assert receiver.source is not None and receiver.source.lost == 0
    # FFmpeg's sender report about the same SSRC parses and feeds LSR
    assert reports
    parsed = receiver.receive_rtcp(reports[0], now=1.0)
    assert isinstance(parsed[0], RtcpSenderReport) and parsed[0].ssrc == receiver.source.ssrc
    assert receiver.report_blocks(now=1.5)[0].lsr != 0

    decoder = create_decoder(name)
    decoded = np.concatenate([decoder.decode(p.payload) for p in packets])
    assert aligned_correlation(pcm, decoded, 400) > 0.99
    if name in ("PCMU", "PCMA"):
        # FFmpeg's G.711 encoders pick the nearest level where the reference truncates:
        # where the codes differ, they are neighbouring quantisation levels
        ours = (ulaw_encode if name == "PCMU" else alaw_encode)(pcm)
        theirs = b"".join(p.payload for p in packets)
        levels = np.unique(decoder.decode(bytes(range(256))))
        our_index = np.searchsorted(levels, decoder.decode(ours))
        their_index = np.searchsorted(levels, decoder.decode(theirs))
        assert np.abs(our_index.astype(int) - their_index).max() <= 1
        assert np.mean(our_index == their_index) > 0.9


def free_even_port_pair() -> int:
    """An even port whose +1 is free too (FFmpeg reads RTP there and RTCP on +1)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            if port % 2 or port >= 65535:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
                try:
                    b.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free even UDP port pair")


def udp_port_bound(port: int) -> bool:
    with open("/proc/net/udp") as table:
        return any(line.split()[1].endswith(f":{port:04X}") for line in list(table)[1:])


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name, _encoder, pt, rtpmap", CODECS)
def test_our_encoder_rtp_decoded_by_ffmpeg(
    ffmpeg: str, tmp_path: Path, name: str, _encoder: str, pt: int, rtpmap: str
) -> None:
    info = codec_info(name)
    pcm = speech_like(info.sample_rate, SECONDS)
    port = free_even_port_pair()
    sdp = tmp_path / "stream.sdp"
    sdp.write_text(
        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=sipum test\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP {pt}\r\na=rtpmap:{pt} {rtpmap}\r\n"
    )
    out = tmp_path / "out.wav"
    # -t: FFmpeg ignores RTCP BYE on a plain SDP input, so it stops on media time
    proc = subprocess.Popen(
        [ffmpeg, "-hide_banner", "-loglevel", "error", "-protocol_whitelist", "file,udp,rtp"]
        + ["-i", str(sdp), "-t", str(SECONDS - 0.1), "-ac", "1", "-ar", str(info.sample_rate)]
        + ["-c:a", "pcm_s16le", str(out)],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while not udp_port_bound(port):
            assert time.monotonic() < deadline, "ffmpeg did not bind its RTP port"
            assert proc.poll() is None, "ffmpeg exited early"
            time.sleep(0.02)
        encoder = create_encoder(name)
        ssrc, seq, ts = 0x5EED, 65500, 0xFFFFF000  # both wrap during the stream
        step = info.samples_per_frame
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sr = RtcpSenderReport(
                ssrc=ssrc, ntp_timestamp=ntp_timestamp(time.time()), rtp_timestamp=ts
            )
            sock.sendto(
                serialise_compound([sr, RtcpSdes.cname_for(ssrc, "sipum")]), ("127.0.0.1", port + 1)
            )
            for i in range(0, len(pcm) - step + 1, step):
                packet = RtpPacket(
                    payload_type=pt,
                    sequence_number=seq & 0xFFFF,
                    timestamp=ts & 0xFFFFFFFF,
                    ssrc=ssrc,
                    payload=encoder.encode(pcm[i : i + step]),
                    marker=i == 0,
                )
                sock.sendto(bytes(packet), ("127.0.0.1", port))
                seq += 1
                ts += info.timestamp_step
                time.sleep(0.002)  # FFmpeg's socket buffer is small
            sock.sendto(bytes(RtcpBye([ssrc])), ("127.0.0.1", port + 1))
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with wave.open(str(out)) as w:
        assert w.getframerate() == info.sample_rate
        decoded = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    assert len(decoded) == round((SECONDS - 0.1) * info.sample_rate)
    assert aligned_correlation(pcm, decoded, 2000) > 0.99
    if name in ("PCMU", "PCMA"):
        # FFmpeg's G.711 decoders are the same tables: the audio is bit-exact
        codec = create_decoder(name)
        expected = codec.decode(create_encoder(name).encode(pcm))[: len(decoded)]
        assert np.array_equal(decoded, expected)
