"""RecordingSession: silence, limits, stop digits, gaps, chunking; WAV storage and crash recovery."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
from sipum_protocol.media.codecs.g711 import PcmuCodec, ulaw_decode, ulaw_encode
from sipum_protocol.media.recording import (
    RecordingChunk,
    RecordingSession,
    RecordingSettings,
    RtpRecording,
    RtpTimeline,
    StopReason,
    WavChunkFile,
    recover_wav,
    wav_bytes,
    wav_from_chunks,
)

RATE = 8000
FRAME = 160


def voice(seconds: float, *, seed: int = 1, dbfs: float = -20.0) -> np.ndarray:
    """Speech-like: a 300 Hz tone with 4 Hz syllable modulation plus noise, around *dbfs* RMS."""
    rng = np.random.default_rng(seed)
    n = round(seconds * RATE)
    t = np.arange(n) / RATE
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)
    x = envelope * np.sin(2 * np.pi * 300 * t) + 0.3 * rng.standard_normal(n)
    x *= 32768 * 10 ** (dbfs / 20) / np.sqrt(np.mean(x**2))
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def quiet(seconds: float, *, seed: int = 2, dbfs: float = -65.0) -> np.ndarray:
    """Line noise well below the silence threshold."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(round(seconds * RATE)) * 32768 * 10 ** (dbfs / 20)
    return np.round(x).astype(np.int16)


def run(session: RecordingSession, audio: np.ndarray, *, t0: float = 0.0) -> float:
    """Feed *audio* in 20 ms packets with a matching clock; returns the clock at the end."""
    now = t0
    for start in range(0, len(audio), FRAME):
        if session.done:
            break
        now = t0 + start / RATE
        session.feed(audio[start : start + FRAME], now=now)
    return now


def pcm_of(chunks: list[RecordingChunk]) -> np.ndarray:
    assert [c.index for c in chunks] == list(range(len(chunks)))
    starts = np.cumsum([0] + [len(c.pcm) // 2 for c in chunks])
    assert [c.start for c in chunks] == starts[:-1].tolist()  # contiguous, in order
    return np.frombuffer(b"".join(c.pcm for c in chunks), dtype="<i2")


def test_stops_on_silence_and_trims_it() -> None:
    s = RecordingSession(RecordingSettings(max_silence=3.0, trailing_silence=0.5), now=0.0)
    audio = np.concatenate([voice(2.5), quiet(4.0)])
    run(s, audio)
    assert s.done and s.result is not None
    r = s.result
    assert r.reason is StopReason.SILENCE and not r.discarded
    chunks = s.drain_chunks()
    assert chunks[-1].final
    pcm = pcm_of(chunks)
    # voice + 0.5 s of the silence (frame granularity), bit-exact with the input
    assert abs(len(pcm) / RATE - 3.0) <= 0.02
    assert np.array_equal(pcm, audio[: len(pcm)])
    assert r.samples == len(pcm) and r.duration == pytest.approx(len(pcm) / RATE)
    assert r.voiced_duration == pytest.approx(2.5, abs=0.02)


def test_short_message_is_discarded() -> None:
    s = RecordingSession(RecordingSettings(max_silence=2.0, min_voice=1.0), now=0.0)
    run(s, np.concatenate([quiet(0.5), voice(0.6), quiet(3.0)]))
    assert s.result is not None
    assert s.result.reason is StopReason.SILENCE and s.result.discarded
    assert s.result.voiced_duration == pytest.approx(0.6, abs=0.04)


def test_only_silence_is_discarded_with_reason_silence() -> None:
    s = RecordingSession(RecordingSettings(max_silence=2.0), now=0.0)
    run(s, quiet(5.0))
    assert s.result is not None and s.result.reason is StopReason.SILENCE
    assert s.result.discarded and s.result.voiced_samples == 0


def test_threshold_is_configurable() -> None:
    # -50 dBFS "speech" is silence at the default -45 dBFS threshold but voice at -55
    soft = voice(2.0, dbfs=-50.0)
    strict = RecordingSession(RecordingSettings(max_silence=1.5), now=0.0)
    run(strict, soft)
    assert strict.result is not None and strict.result.reason is StopReason.SILENCE
    loose = RecordingSession(
        RecordingSettings(silence_threshold_dbfs=-55.0, max_silence=1.5), now=0.0
    )
    run(loose, soft)
    assert not loose.done
    loose.hangup(now=2.0)
    assert loose.result is not None and loose.result.voiced_duration == pytest.approx(2.0, abs=0.05)


def test_max_length_cuts_exactly() -> None:
    s = RecordingSession(RecordingSettings(max_length=4.0), now=0.0)
    audio = voice(6.0)
    run(s, audio)
    assert s.result is not None and s.result.reason is StopReason.MAX_LENGTH
    pcm = pcm_of(s.drain_chunks())
    assert len(pcm) == 4 * RATE and np.array_equal(pcm, audio[: 4 * RATE])


def test_pauses_inside_a_message_are_kept_and_hangup_trims_the_tail() -> None:
    s = RecordingSession(RecordingSettings(max_silence=5.0, trailing_silence=0.2), now=0.0)
    audio = np.concatenate([voice(1.5, seed=3), quiet(2.0), voice(1.5, seed=4), quiet(1.0)])
    end = run(s, audio)
    s.hangup(now=end)
    assert s.result is not None and s.result.reason is StopReason.HANGUP
    pcm = pcm_of(s.drain_chunks())
    assert abs(len(pcm) / RATE - 5.2) <= 0.02
    assert np.array_equal(pcm, audio[: len(pcm)])


def test_stop_digit_cuts_at_its_start() -> None:
    s = RecordingSession(RecordingSettings(stop_digits="#*"), now=0.0)
    audio = voice(3.0)
    run(s, audio)
    assert not s.dtmf("5", now=3.0, position=20000)  # not a stop digit: ignored
    assert not s.done
    assert s.dtmf("#", now=3.0, position=round(2.8 * RATE))
    r = s.result
    assert r is not None and r.reason is StopReason.DTMF and r.digit == "#"
    pcm = pcm_of(s.drain_chunks())
    assert len(pcm) == round(2.8 * RATE)
    assert not s.dtmf("#", now=3.1)  # already stopped


def test_hold_back_keeps_recent_audio_so_a_digit_can_cut_it() -> None:
    s = RecordingSession(RecordingSettings(flush_interval=0.5, hold_back=0.3), now=0.0)
    run(s, voice(2.0))
    handed_out = sum(len(c.pcm) // 2 for c in s.drain_chunks())
    assert handed_out <= 2.0 * RATE - 0.3 * RATE
    s.dtmf("#", now=2.0, position=round(1.75 * RATE))
    assert handed_out + sum(len(c.pcm) // 2 for c in s.drain_chunks()) == round(1.75 * RATE)


def test_gaps_are_filled_with_silence_and_overlaps_dropped() -> None:
    s = RecordingSession(RecordingSettings(max_silence=10.0), now=0.0)
    audio = voice(2.0)
    packets = [(i, audio[i : i + FRAME]) for i in range(0, len(audio), FRAME)]
    lost = {10, 11, 12, 50}
    for n, (pos, pcm) in enumerate(packets):
        if n in lost:
            continue
        s.feed(pcm, now=pos / RATE, position=pos)
        if n == 30:
            s.feed(pcm, now=pos / RATE, position=pos)  # duplicate
            s.feed(packets[29][1], now=pos / RATE, position=packets[29][0])  # late
    s.hangup(now=2.0)
    pcm = pcm_of(s.drain_chunks())
    expected = audio.copy()
    for n in lost:
        expected[n * FRAME : (n + 1) * FRAME] = 0
    assert len(pcm) == len(audio)  # true to the wall clock
    assert np.array_equal(pcm, expected)


def test_chunks_come_at_least_every_flush_interval() -> None:
    got: list[tuple[float, RecordingChunk]] = []
    clock = [0.0]
    s = RecordingSession(
        RecordingSettings(flush_interval=1.0, max_length=30.0),
        now=0.0,
        on_chunk=lambda c: got.append((clock[0], c)),
    )
    audio = voice(8.0)
    for start in range(0, len(audio), FRAME):
        clock[0] = start / RATE
        s.feed(audio[start : start + FRAME], now=clock[0])
    assert s.drain_chunks() == []  # the callback took them
    times = [t for t, _ in got]
    assert len(got) >= 6
    assert max(np.diff([0.0, *times])) <= 1.0 + 0.1 + 0.3  # flush + analysis batch + hold back
    assert all(len(c.pcm) // 2 <= 1.1 * RATE for _, c in got)
    s.hangup(now=8.0)
    assert np.array_equal(pcm_of([c for _, c in got]), audio)


def test_wall_clock_timers_stop_a_call_without_audio() -> None:
    s = RecordingSession(RecordingSettings(max_silence=4.0, max_length=60.0), now=100.0)
    run(s, voice(2.0), t0=100.0)
    deadline = s.next_timer()
    assert deadline is not None and 100.0 < deadline <= 102.0 + 4.0
    s.handle_timer(101.99 + 1.0)  # only a flush
    assert not s.done
    s.handle_timer(101.98 + 4.0)
    assert s.result is not None and s.result.reason is StopReason.SILENCE
    assert s.result.duration == pytest.approx(2.0, abs=0.02)  # nothing invented for the dead air
    assert s.next_timer() is None


@pytest.mark.parametrize("lead_in", [0.0, 3.0], ids=["no-audio-yet", "pause-after-voice"])
def test_a_flush_with_nothing_to_hand_out_moves_the_timer_on(lead_in: float) -> None:
    # Regression: with nothing committed (no audio yet, or a pause held back as possible
    # trailing silence) the flush deadline stayed in the past, so the endpoint re-armed its
    # timer at `now` on every loop turn — a busy loop for the whole pause.
    s = RecordingSession(RecordingSettings(flush_interval=1.0, max_silence=5.0), now=0.0)
    now = run(s, np.concatenate([voice(lead_in), quiet(2.0)])) if lead_in else 0.0
    for _ in range(3):
        deadline = s.next_timer()
        assert deadline is not None
        now = max(now, deadline)
        s.handle_timer(now)
        assert not s.done
        following = s.next_timer()
        assert following is not None and following > now
        now = following


def test_wall_clock_max_length_without_audio_timestamps() -> None:
    s = RecordingSession(RecordingSettings(max_silence=100.0, max_length=3.0), now=0.0)
    run(s, voice(1.0))
    s.handle_timer(4.0)
    assert s.result is not None and s.result.reason is StopReason.MAX_LENGTH


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError):
        RecordingSettings(max_length=0)
    with pytest.raises(ValueError):
        RecordingSettings(trailing_silence=-1)


# -- RTP timeline and decoding -------------------------------------------------------------------


def test_rtp_timeline_unwraps_scales_and_rebases() -> None:
    from sipum_protocol.media.codecs.base import CodecInfo

    g711 = CodecInfo("PCMU", 8000, 8000, 1, 0)
    t = RtpTimeline(g711)
    assert t.position(1, 0xFFFFFF00, 0) == 0
    assert t.position(1, 0xFFFFFFA0, 160) == 160  # 0xA0 = 160 later
    assert t.position(1, 0x00000040, 320) == 0x140  # wrapped
    assert t.position(1, 0xFFFFFFA0, 480) == 160  # a late packet maps back into the past
    # new SSRC continues where the recording is
    assert t.position(2, 12345, 500) == 500
    assert t.position(2, 12345 + 160, 660) == 660
    # a 60 s timestamp jump re-bases instead of leaving a minute of silence
    assert t.position(2, 12345 + 160 + 60 * 8000, 820) == 820
    g722 = CodecInfo("G722", 8000, 16000, 1, 9)
    w = RtpTimeline(g722)
    assert w.position(7, 1000, 0) == 0
    assert w.position(7, 1160, 320) == 320  # 160 clock ticks = 320 samples at 16 kHz


def test_rtp_recording_decodes_pcmu_bit_exact_with_gaps() -> None:
    audio = voice(3.0)
    payload = ulaw_encode(audio)
    rec = RtpRecording(PcmuCodec(), now=0.0)
    ts0 = 0xFFFFF000  # wraps during the call
    for n in range(len(audio) // FRAME):
        if n == 40:
            continue  # lost
        rec.packet(
            0xABC, (ts0 + n * FRAME) & 0xFFFFFFFF, payload[n * FRAME : (n + 1) * FRAME], now=n / 50
        )
    assert rec.dtmf("#", now=3.0, ssrc=0xABC, timestamp=(ts0 + 140 * FRAME) & 0xFFFFFFFF)
    pcm = pcm_of(rec.session.drain_chunks())
    expected = ulaw_decode(payload).copy()[: 140 * FRAME]
    expected[40 * FRAME : 41 * FRAME] = 0
    assert np.array_equal(pcm, expected)
    with pytest.raises(ValueError):
        RtpRecording(PcmuCodec(), RecordingSettings(sample_rate=16000), now=0.0)


@pytest.mark.parametrize("codec", ["PCMU", "G722"])
def test_datagram_batches_record_what_payloads_one_by_one_do(codec: str) -> None:
    """The endpoint's fast path (whole datagrams, headers read per batch with numpy) gives the
    same message as payloads one at a time — across a lost packet, a timestamp jump inside
    consecutive sequence numbers (silence suppression), a ptime change, a 32-bit timestamp
    wrap and comfort noise — with batches split at arbitrary points."""
    from sipum_protocol.media.codecs import create_decoder, create_encoder

    rate = 16000 if codec == "G722" else RATE
    settings = RecordingSettings(sample_rate=rate, max_silence=30.0, max_length=60.0)
    # one octet per 8 kHz RTP clock tick for both codecs
    encoded = create_encoder(codec).encode(voice(6.0 * rate / RATE, seed=4))
    ts = 0xFFFFF000
    packets: list[tuple[int, bytes, float]] = []  # (timestamp, payload, arrival)
    at = 0.0
    k = 0
    offset = 0
    while offset < len(encoded):
        size = 160 if k < 150 else 240  # ptime 20 ms, then 30 ms
        payload = encoded[offset : offset + size]
        offset += size
        if k != 30:  # lost
            packets.append((ts & 0xFFFFFFFF, payload, at))
        ts += len(payload) + (800 if k == 80 else 0)  # 100 ms not sent after packet 80
        at += 0.02
        k += 1

    def header(timestamp: int, n: int) -> bytes:
        return (
            bytes([0x80, 0])
            + (n & 0xFFFF).to_bytes(2, "big")
            + timestamp.to_bytes(4, "big")
            + (7).to_bytes(4, "big")
        )

    def give(recording: RtpRecording, batch: list[tuple[bytes, float]]) -> None:
        """As the endpoint does: runs of one datagram size, laid end to end."""
        while batch:
            size = len(batch[0][0])
            run = 1
            while run < len(batch) and len(batch[run][0]) == size:
                run += 1
            block = b"".join(data for data, _ in batch[:run])
            recording.datagrams(block, size, now=batch[run - 1][1])
            batch = batch[run:]

    one = RtpRecording(create_decoder(codec), settings, now=0.0)
    many = RtpRecording(create_decoder(codec), settings, now=0.0)
    rng = np.random.default_rng(5)
    batch: list[tuple[bytes, float]] = []
    for n, (timestamp, payload, arrival) in enumerate(packets):
        one.packet(7, timestamp, payload, now=arrival)
        batch.append((header(timestamp, n) + payload, arrival))
        if rng.random() < 0.1:
            give(many, batch)
            batch = []
        if n == 100:  # comfort noise in the middle of the call
            give(many, batch)
            batch = []
            cn = bytes([50])
            one.comfort_noise(7, timestamp + len(payload), cn, now=arrival)
            many.comfort_noise(7, timestamp + len(payload), cn, now=arrival)
    give(many, batch)
    one.hangup(now=10.0)
    many.hangup(now=10.0)
    assert one.session.result is not None and many.session.result is not None
    assert many.session.result == one.session.result
    a = pcm_of(one.session.drain_chunks())
    b = pcm_of(many.session.drain_chunks())
    assert len(a) > 5.5 * rate
    if codec == "PCMU":
        assert np.array_equal(a, b)
    else:
        # G.722's decoder state carries across a gap differently when runs are split in other
        # places; the audio must still be the same message
        assert len(a) == len(b) and np.corrcoef(a.astype(float), b.astype(float))[0, 1] > 0.99


# -- WAV storage ----------------------------------------------------------------------------------


def read_wav(path: Path) -> tuple[int, np.ndarray]:
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        return w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), "<i2")


def test_wav_chunk_file_round_trip(tmp_path: Path) -> None:
    audio = voice(3.0)
    path = tmp_path / "m.wav"
    sink = WavChunkFile(path, RATE)
    s = RecordingSession(RecordingSettings(flush_interval=0.5), now=0.0, on_chunk=sink.write)
    run(s, audio)
    s.hangup(now=3.0)
    assert sink.close() == pytest.approx(3.0)
    rate, pcm = read_wav(path)
    assert rate == RATE and np.array_equal(pcm, audio)
    assert path.read_bytes() == wav_bytes(audio, RATE)


def test_crash_loses_at_most_the_last_chunk_and_recovery_fixes_the_header(tmp_path: Path) -> None:
    audio = voice(5.0)
    path = tmp_path / "crashed.wav"
    sink = WavChunkFile(path, RATE)
    kept: list[RecordingChunk] = []

    def on_chunk(c: RecordingChunk) -> None:
        sink.write(c)
        kept.append(c)

    s = RecordingSession(RecordingSettings(flush_interval=1.0), now=0.0, on_chunk=on_chunk)
    fed = run(s, audio[: round(4.3 * RATE)])
    # The process dies here: the file is never closed and a torn sample is left at the end.
    with open(path, "ab") as f:
        f.write(b"\x01")
    with wave.open(str(path)) as w:
        assert w.getnframes() == 0  # header still says "empty"
    recovered = recover_wav(path)
    rate, pcm = read_wav(path)
    assert rate == RATE and recovered.samples == len(pcm)
    assert np.array_equal(pcm, audio[: len(pcm)])
    # what is lost: less than one flush interval + analysis batch + hold back
    assert fed - recovered.duration <= 1.0 + 0.1 + 0.3 + 0.02
    assert wav_from_chunks(list(reversed(kept)), RATE) == path.read_bytes()


def test_recover_a_file_cut_inside_its_header(tmp_path: Path) -> None:
    path = tmp_path / "torn.wav"
    path.write_bytes(b"RIFF\x00")
    with pytest.raises(ValueError):
        recover_wav(path)
    assert recover_wav(path, sample_rate=16000).samples == 0
    with wave.open(str(path)) as w:
        assert w.getframerate() == 16000 and w.getnframes() == 0


CRASHING_RECORDER = """
import sys
import numpy as np
from sipum_protocol.media.recording import RecordingSession, RecordingSettings, WavChunkFile
rate = 8000
t = np.arange(rate * 10) / rate
audio = np.round(8000 * np.sin(2 * np.pi * 300 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)))
audio = audio.astype(np.int16)
sink = WavChunkFile(sys.argv[1], rate)
session = RecordingSession(RecordingSettings(flush_interval=0.25), now=0.0, on_chunk=sink.write)
# 1.5 s of a call, on the audio's own clock (a packet every 20 ms), then it hangs mid-call
for k in range(0, 12000, 160):
    session.feed(audio[k : k + 160], now=(k + 160) / rate)
print(k + 160, flush=True)  # samples fed
sys.stdin.read()  # until killed: no chance to close the file or fix its header
"""


def test_a_killed_recorder_leaves_a_recoverable_wav(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    path = tmp_path / "killed.wav"
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASHING_RECORDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        fed = int(proc.stdout.readline())  # it has fed this much and waits
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    recovered = recover_wav(path)
    rate, pcm = read_wav(path)
    t = np.arange(rate * 10) / rate
    audio = np.round(8000 * np.sin(2 * np.pi * 300 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)))
    assert np.array_equal(pcm, audio.astype(np.int16)[: len(pcm)])  # an exact prefix
    # lost: at most one flush interval + analysis batch + hold back of what had been fed
    assert fed == 12000
    assert recovered.samples >= fed - round((0.25 + 0.1 + 0.3) * rate)
    assert recovered.samples > 0


def test_comfort_noise_fills_the_gap_at_its_level() -> None:
    from sipum_protocol.media.codecs.comfort_noise import ComfortNoisePayload

    audio = voice(1.0)
    payload = ulaw_encode(audio)
    rec = RtpRecording(PcmuCodec(), RecordingSettings(max_silence=3.0), now=0.0)
    for n in range(50):
        rec.packet(7, n * FRAME, payload[n * FRAME : (n + 1) * FRAME], now=n / 50)
    # the phone pauses 0.5 s and says so with a CN packet at 50 -dBov (RMS ~104)
    rec.comfort_noise(7, 50 * FRAME, bytes(ComfortNoisePayload(50)), now=1.0)
    for n in range(75, 125):
        rec.packet(7, n * FRAME, payload[(n - 75) * FRAME : (n - 74) * FRAME], now=n / 50)
    rec.hangup(now=2.5)
    pcm = pcm_of(rec.session.drain_chunks())
    assert len(pcm) == 125 * FRAME  # true to the clock
    gap = pcm[50 * FRAME : 75 * FRAME].astype(np.float64)
    assert abs(np.sqrt(np.mean(gap**2)) - 32767 * 10 ** (-50 / 20)) < 15
    assert np.array_equal(pcm[75 * FRAME :], ulaw_decode(payload[: 50 * FRAME]))
    # a CN packet without a level leaves digital silence
    rec2 = RtpRecording(PcmuCodec(), now=0.0)
    rec2.packet(7, 0, payload[:FRAME], now=0.0)
    rec2.comfort_noise(7, FRAME, b"", now=0.02)
    rec2.packet(7, 10 * FRAME, payload[:FRAME], now=0.2)
    rec2.hangup(now=0.3)
    assert not pcm_of(rec2.session.drain_chunks())[FRAME : 10 * FRAME].any()
