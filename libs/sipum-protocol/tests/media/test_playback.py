"""PlaybackSession: absolute pacing, RTP header rules, prompt sequences, resampling, barge-in."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from sipum_protocol.media.codecs import create_decoder, create_encoder, resample
from sipum_protocol.media.codecs.g711 import ulaw_decode, ulaw_encode
from sipum_protocol.media.playback import (
    Pause,
    PcmItem,
    PlaybackSession,
    RtpSendStream,
    read_wav,
)
from sipum_protocol.media.prompts import write_wav
from sipum_protocol.media.rtcp import RtcpSenderReport, ntp_timestamp
from sipum_protocol.media.rtp import RtpPacket


def tone(seconds: float, rate: int, freq: float = 440.0) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return np.round(8000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def play_all(session: PlaybackSession, limit: int = 100_000) -> list[RtpPacket]:
    out = []
    for _ in range(limit):
        due = session.next_due()
        if due is None:
            break
        out += [RtpPacket.parse(p) for p in session.packets_due(due)]
    return out


def test_pacing_is_absolute_and_does_not_drift() -> None:
    s = PlaybackSession(create_encoder("PCMU"), [PcmItem(tone(1.0, 8000), 8000)], now=10.0)
    assert s.next_due() == pytest.approx(10.0)
    assert len(s.packets_due(10.0)) == 1
    assert s.next_due() == pytest.approx(10.02)
    assert s.packets_due(10.019) == []
    # the timer fired 35 ms late: the two packets due by then go out, the schedule is unchanged
    assert len(s.packets_due(10.055)) == 2
    assert s.next_due() == pytest.approx(10.06)
    # drive with a sloppy timer: packet n is never sent before start + n·ptime
    rng = random.Random(5)
    sent = 3
    now = 10.06
    while (due := s.next_due()) is not None:
        now = max(now, due) + rng.uniform(0, 0.015)
        got = s.packets_due(now)
        sent += len(got)
        if got:
            assert s.next_due() is None or s.next_due() > now - 1e-9
    assert sent == 50 and s.finished and s.position == pytest.approx(1.0)


def test_packets_carry_the_audio_and_proper_headers(tmp_path: Path) -> None:
    audio = tone(0.5, 8000) + tone(0.5, 8000, 1300) // 2
    path = tmp_path / "a.wav"
    write_wav(path, audio, 8000)
    s = PlaybackSession(create_encoder("PCMU"), [path], now=0.0)
    packets = play_all(s)
    assert len(packets) == 25
    assert [p.marker for p in packets] == [True] + [False] * 24
    assert len({p.ssrc for p in packets}) == 1
    seqs = [p.sequence_number for p in packets]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:], strict=False))
    stamps = [p.timestamp for p in packets]
    assert all((b - a) & 0xFFFFFFFF == 160 for a, b in zip(stamps, stamps[1:], strict=False))
    assert all(p.payload_type == 0 and len(p.payload) == 160 for p in packets)
    decoded = ulaw_decode(b"".join(p.payload for p in packets))
    assert np.array_equal(decoded, ulaw_decode(ulaw_encode(audio)))  # bit-exact G.711


def test_identity_is_random() -> None:
    a = PlaybackSession(create_encoder("PCMA"), [Pause(0.04)], now=0.0)
    b = PlaybackSession(create_encoder("PCMA"), [Pause(0.04)], now=0.0)
    pa, pb = play_all(a)[0], play_all(b)[0]
    assert (pa.ssrc, pa.sequence_number, pa.timestamp) != (
        pb.ssrc,
        pb.sequence_number,
        pb.timestamp,
    )
    assert pa.payload_type == 8


def test_prompt_sequence_is_concatenated_with_padding_and_resampled(tmp_path: Path) -> None:
    wide = tone(0.31, 16000, 500)  # 16 kHz prompt on an 8 kHz codec: resampled
    narrow = tone(0.2, 8000, 700)
    p1, p2 = tmp_path / "w.wav", tmp_path / "n.wav"
    write_wav(p1, wide, 16000)
    write_wav(p2, narrow, 8000)
    s = PlaybackSession(create_encoder("PCMU"), [p1, Pause(0.1), p2], now=0.0)
    packets = play_all(s)
    # 0.31 s → 16 frames (last padded), pause 5, 0.2 s → 10
    assert len(packets) == 16 + 5 + 10
    pcm = ulaw_decode(b"".join(p.payload for p in packets)).astype(np.float64)
    expected_first = resample(wide, 16000, 8000).astype(np.float64)
    assert np.corrcoef(pcm[: len(expected_first)], expected_first)[0, 1] > 0.99
    assert np.abs(pcm[len(expected_first) : 16 * 160]).max() < 16  # padding is silence
    assert np.abs(pcm[16 * 160 : 21 * 160]).max() < 16  # the pause
    third = pcm[21 * 160 :]
    assert np.corrcoef(third, narrow.astype(np.float64))[0, 1] > 0.99
    assert [p.marker for p in packets].count(True) == 1


def test_g722_playback_uses_the_8k_rtp_clock(tmp_path: Path) -> None:
    audio = tone(1.0, 16000, 1000)
    s = PlaybackSession(create_encoder("G722"), [PcmItem(audio, 16000)], now=0.0)
    packets = play_all(s)
    assert len(packets) == 50
    assert all(p.payload_type == 9 and len(p.payload) == 160 for p in packets)
    stamps = [p.timestamp for p in packets]
    assert all((b - a) & 0xFFFFFFFF == 160 for a, b in zip(stamps, stamps[1:], strict=False))
    decoder = create_decoder("G722")
    out = np.concatenate([decoder.decode(p.payload) for p in packets]).astype(np.float64)
    # G.722 has a small codec delay: compare at the best lag
    best = max(np.corrcoef(out[lag : 12000 + lag], audio[:12000])[0, 1] for lag in range(0, 40))
    assert best > 0.98


def test_barge_in_stops_the_sequence_and_reports_the_digit() -> None:
    s = PlaybackSession(
        create_encoder("PCMU"),
        [PcmItem(tone(1.0, 8000), 8000), PcmItem(tone(1.0, 8000), 8000)],
        now=0.0,
        barge_in="0123456789",
    )
    assert len(s.packets_due(0.5)) == 26
    assert not s.interrupt("#")  # not a barge-in digit
    assert s.interrupt("5")
    assert s.finished and s.interrupted_by == "5" and s.next_due() is None
    assert s.packets_due(5.0) == []
    assert s.position == pytest.approx(0.52)
    assert not s.interrupt("6")
    no_barge = PlaybackSession(create_encoder("PCMU"), [Pause(1.0)], now=0.0)
    assert not no_barge.interrupt("1")


def test_stalled_sender_skips_instead_of_bursting() -> None:
    s = PlaybackSession(
        create_encoder("PCMU"), [PcmItem(tone(3.0, 8000), 8000)], now=0.0, max_late=0.2
    )
    first = [RtpPacket.parse(p) for p in s.packets_due(0.0)]
    late = [RtpPacket.parse(p) for p in s.packets_due(1.0)]  # a one-second stall
    assert len(late) == 11  # only packets due within max_late of now: 0.8 s … 1.0 s
    assert late[0].marker and not late[1].marker
    assert (late[0].timestamp - first[0].timestamp) & 0xFFFFFFFF == 40 * 160  # clock kept
    assert (late[0].sequence_number - first[0].sequence_number) & 0xFFFF == 1  # no seq gap
    assert s.packets_skipped == 39


def test_stream_continues_across_playbacks_and_reports() -> None:
    stream = RtpSendStream(payload_type=0, clock_rate=8000, rng=random.Random(1))
    enc = create_encoder("PCMU")
    a = PlaybackSession(enc, [Pause(0.2)], now=100.0, stream=stream)
    pa = play_all(a)
    b = PlaybackSession(enc, [Pause(0.2)], now=101.0, stream=stream)  # 0.8 s later
    pb = play_all(b)
    assert pb[0].marker and pb[0].ssrc == pa[0].ssrc
    assert (pb[0].sequence_number - pa[-1].sequence_number) & 0xFFFF == 1
    assert (pb[0].timestamp - pa[0].timestamp) & 0xFFFFFFFF == 8000  # 1 s of wall clock
    sr = stream.sender_report(101.5, wallclock=1_700_000_000.0)
    parsed = RtcpSenderReport.parse(bytes(sr))
    assert parsed.packet_count == 20 and parsed.octet_count == 20 * 160
    assert parsed.ssrc == stream.ssrc
    assert (parsed.rtp_timestamp - pa[0].timestamp) & 0xFFFFFFFF == 12000
    assert parsed.ntp_timestamp == ntp_timestamp(1_700_000_000.0)


def test_read_wav_mixes_stereo_and_rejects_8_bit(tmp_path: Path) -> None:
    import wave

    path = tmp_path / "s.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.array([100, 300, -50, -150], dtype="<i2").tobytes())
    pcm, rate = read_wav(path)
    assert rate == 16000 and pcm.tolist() == [200, -100]
    bad = tmp_path / "b.wav"
    with wave.open(str(bad), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(8000)
        w.writeframes(b"\x80\x80")
    with pytest.raises(ValueError):
        read_wav(bad)
