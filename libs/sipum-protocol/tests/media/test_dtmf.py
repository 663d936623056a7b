"""DTMF: RFC 4733 telephone-events (receive, send) and in-band Goertzel detection."""

import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
from sipum_protocol.media.codecs import resample, ulaw_decode, ulaw_encode
from sipum_protocol.media.dtmf import (
    DBM0_AMPLITUDE,
    EVENT_CODES,
    DtmfDigit,
    InbandDtmfDetector,
    TelephoneEvent,
    TelephoneEventReceiver,
    TelephoneEventSender,
    digit_for_event,
    dtmf_tone,
    event_for_digit,
)
from sipum_protocol.media.rtp import RtpPacket

# -- RFC 4733 payload -------------------------------------------------------------------


def test_telephone_event_payload_layout() -> None:
    event = TelephoneEvent(event=11, end=True, volume=10, duration=800)
    assert bytes(event) == bytes([11, 0x80 | 10, 0x03, 0x20])
    assert TelephoneEvent.parse(bytes(event)) == event
    assert TelephoneEvent.parse(bytes([5, 0x0A, 0, 160])) == TelephoneEvent(5, False, 10, 160)
    with pytest.raises(ValueError):
        TelephoneEvent.parse(b"\x01\x02\x03")
    assert [digit_for_event(i) for i in range(16)] == list(EVENT_CODES)
    assert digit_for_event(16) is None
    assert event_for_digit("#") == 11 and event_for_digit("d") == 15
    with pytest.raises(ValueError):
        event_for_digit("x")


# -- sender -----------------------------------------------------------------------------


def test_sender_marker_pacing_duration_and_three_end_packets() -> None:
    sender = TelephoneEventSender(payload_type=101, clock_rate=8000, ptime=0.02)
    scheduled = sender.packets(
        "5", duration=0.1, timestamp=4000, first_sequence=65534, ssrc=9, start=10.0
    )
    packets = [s.packet for s in scheduled]
    events = [TelephoneEvent.parse(p.payload) for p in packets]
    assert [s.at for s in scheduled] == pytest.approx([10.0 + 0.02 * i for i in range(7)])
    assert [p.marker for p in packets] == [True] + [False] * 6
    assert {p.timestamp for p in packets} == {4000}
    assert {p.payload_type for p in packets} == {101} and {p.ssrc for p in packets} == {9}
    assert [p.sequence_number for p in packets] == [65534, 65535, 0, 1, 2, 3, 4]
    assert [e.duration for e in events] == [160, 320, 480, 640, 800, 800, 800]
    assert [e.end for e in events] == [False] * 4 + [True] * 3
    assert {e.event for e in events} == {5}


def test_sender_splits_long_events_into_segments() -> None:
    sender = TelephoneEventSender(clock_rate=8000, ptime=0.05)
    scheduled = sender.packets("1", duration=10.0, timestamp=0, first_sequence=0, ssrc=1, start=0)
    packets = [s.packet for s in scheduled]
    events = [TelephoneEvent.parse(p.payload) for p in packets]
    assert {p.timestamp for p in packets} == {0, 0xFFFF}
    assert all(e.duration <= 0xFFFF for e in events)
    assert sum(p.marker for p in packets) == 1
    assert sum(e.end for e in events) == 3 and events[-1].end
    assert 0xFFFF + events[-1].duration == 80000


# -- receiver ---------------------------------------------------------------------------


def send(digit: str, ts: int, seq: int, duration: float = 0.1) -> list[RtpPacket]:
    sender = TelephoneEventSender(payload_type=101, clock_rate=8000, ptime=0.02)
    return [
        s.packet
        for s in sender.packets(
            digit, duration=duration, timestamp=ts, first_sequence=seq, ssrc=1, start=0
        )
    ]


def feed(rx: TelephoneEventReceiver, packets: list[RtpPacket], t0: float) -> list[DtmfDigit]:
    out: list[DtmfDigit] = []
    for i, p in enumerate(packets):
        out += rx.receive(p, t0 + 0.02 * i)
    return out


def test_receiver_reports_each_digit_once_with_duration() -> None:
    rx = TelephoneEventReceiver(clock_rate=8000)
    out = feed(rx, send("1", 1000, 10), 0.0)
    assert out == [DtmfDigit("1", 1000, 100.0, 10, True)]
    out = feed(rx, send("#", 5000, 20, duration=0.24), 1.0)
    assert [(d.digit, d.duration_ms, d.ended) for d in out] == [("#", 240.0, True)]
    # the same digit pressed again is a new event (new timestamp)
    out = feed(rx, send("#", 9000, 40), 2.0)
    assert [d.digit for d in out] == ["#"]
    assert rx.poll(10.0) == []


def test_active_digit_visible_before_the_end() -> None:
    rx = TelephoneEventReceiver()
    packets = send("7", 0, 0)
    assert rx.receive(packets[0], 0.0) == []
    assert rx.active == "7"
    feed(rx, packets[1:], 0.02)
    assert rx.active is None


def test_retransmitted_end_packets_and_stragglers_absorbed() -> None:
    rx = TelephoneEventReceiver()
    packets = send("9", 3000, 0)
    out = feed(rx, packets, 0.0)
    out += feed(rx, [packets[-1], packets[2], packets[-2]], 0.3)  # late copies
    assert [d.digit for d in out] == ["9"]


def test_digit_with_all_end_packets_lost_reported_once_on_next_event() -> None:
    rx = TelephoneEventReceiver(timeout=5.0)
    first = [p for p in send("4", 1000, 0) if not TelephoneEvent.parse(p.payload).end]
    out = feed(rx, first, 0.0)
    assert out == []
    out = feed(rx, send("5", 3000, 10), 0.2)
    assert [(d.digit, d.ended) for d in out] == [("4", False), ("5", True)]
    assert out[0].duration_ms == 80.0  # the longest duration seen


def test_digit_with_all_end_packets_lost_reported_once_on_timeout() -> None:
    rx = TelephoneEventReceiver(timeout=0.5)
    first = [p for p in send("6", 1000, 0) if not TelephoneEvent.parse(p.payload).end]
    assert feed(rx, first, 0.0) == []
    deadline = rx.next_timer()
    assert deadline == pytest.approx(0.06 + 0.5)
    assert rx.poll(deadline - 0.01) == []
    out = rx.poll(deadline)
    assert [(d.digit, d.ended) for d in out] == [("6", False)]
    assert rx.poll(deadline + 1) == [] and rx.next_timer() is None


def test_only_end_packets_arrive() -> None:
    rx = TelephoneEventReceiver()
    ends = [p for p in send("0", 1000, 0) if TelephoneEvent.parse(p.payload).end]
    out = feed(rx, ends, 0.0)
    assert [(d.digit, d.duration_ms) for d in out] == [("0", 100.0)]


@pytest.mark.parametrize("seed", range(20))
def test_random_loss_never_loses_or_duplicates_digits(seed: int) -> None:
    rng = np.random.default_rng(seed)
    digits = "".join(rng.choice(list(EVENT_CODES), 12))
    stream: list[RtpPacket] = []
    ts, seq = 0, 0
    for d in digits:
        packets = send(d, ts, seq, duration=float(rng.uniform(0.06, 0.3)))
        stream += packets
        seq += len(packets)
        ts += 8000  # one second apart
    kept = [p for p in stream if rng.random() > 0.3]  # 30 % loss
    rx = TelephoneEventReceiver(timeout=0.5)
    out: list[DtmfDigit] = []
    for p in kept:
        out += rx.receive(p, p.timestamp / 8000 + 0.01 * (p.sequence_number % 7))
    out += rx.poll(1e9)
    # a digit is lost only if every one of its packets was lost
    survived = {p.timestamp for p in kept}
    expected = [d for i, d in enumerate(digits) if i * 8000 in survived]
    assert [d.digit for d in out] == expected
    assert len({d.timestamp for d in out}) == len(out)


def test_long_event_segments_are_one_digit() -> None:
    sender = TelephoneEventSender(clock_rate=8000, ptime=0.05)
    packets = [
        s.packet
        for s in sender.packets(
            "*", duration=10.0, timestamp=500, first_sequence=0, ssrc=1, start=0
        )
    ]
    rx = TelephoneEventReceiver()
    out = [d for i, p in enumerate(packets) for d in rx.receive(p, i * 0.05)]
    assert [(d.digit, d.timestamp, d.duration_ms, d.ended) for d in out] == [
        ("*", 500, 10000.0, True)
    ]


def test_non_dtmf_events_and_garbage_ignored() -> None:
    rx = TelephoneEventReceiver()
    flash = RtpPacket(
        payload_type=101, timestamp=0, payload=bytes(TelephoneEvent(16, True, 10, 800))
    )
    assert rx.receive(flash, 0.0) == []
    assert rx.receive(RtpPacket(payload_type=101, payload=b"\x01"), 0.0) == []
    assert rx.ignored == 2


# -- in-band detection ------------------------------------------------------------------


def add_noise(signal: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    power = np.mean(signal.astype(float) ** 2)
    noise = rng.standard_normal(len(signal)) * np.sqrt(power / 10 ** (snr_db / 10))
    return np.clip(np.rint(signal + noise), -32768, 32767).astype(np.int16)


def detect(pcm: np.ndarray, rate: int, chunk: int = 160) -> str:
    detector = InbandDtmfDetector(sample_rate=rate)
    digits = []
    for i in range(0, len(pcm), chunk):
        digits += detector.process(pcm[i : i + chunk])
    digits += detector.flush()
    return "".join(d.digit for d in digits)


def digit_sequence(digits: str, rate: int, level: float, tone: float, gap: float) -> np.ndarray:
    parts = [np.zeros(int(0.2 * rate), dtype=np.int16)]
    for d in digits:
        parts.append(dtmf_tone(d, tone, sample_rate=rate, level_dbm0=level))
        parts.append(np.zeros(int(gap * rate), dtype=np.int16))
    return np.concatenate(parts)


@pytest.mark.parametrize("rate", [8000, 16000])
@pytest.mark.parametrize("level", [-10.0, -17.0, -25.0])
def test_all_digits_detected_with_noise(rate: int, level: float) -> None:
    rng = np.random.default_rng(int(-level) + rate)
    digits = EVENT_CODES + "1199##"
    clean = digit_sequence(digits, rate, level, tone=0.07, gap=0.06)
    # noise 15 dB below the tone power, present in the gaps too
    tone_power = 2 * (DBM0_AMPLITUDE * 10 ** (level / 20)) ** 2 / 2
    noise = rng.standard_normal(len(clean)) * np.sqrt(tone_power / 10**1.5)
    noisy = np.clip(np.rint(clean + noise), -32768, 32767).astype(np.int16)
    assert detect(noisy, rate) == digits


def test_minimum_duration_and_gap() -> None:
    rate = 8000
    detector = InbandDtmfDetector(sample_rate=rate)
    assert detector.min_windows >= 2
    # 40 ms tones with 40 ms pauses (ITU-T Q.24 limits) are all detected
    assert detect(digit_sequence("123", rate, -15, tone=0.040, gap=0.040), rate) == "123"
    # a 15 ms blip is not a digit
    assert detect(digit_sequence("5", rate, -15, tone=0.015, gap=0.1), rate) == ""
    # a 10 ms drop-out inside one key press does not make two digits
    tone = dtmf_tone("8", 0.1, sample_rate=rate, level_dbm0=-15)
    broken = np.concatenate([tone, np.zeros(80, dtype=np.int16), tone])
    assert detect(broken, rate) == "8"


def test_detection_survives_g711_and_twist() -> None:
    rate = 8000
    parts = [np.zeros(1600, dtype=np.int16)]
    for d, twist in zip("147*", [-6, -3, 3, 4], strict=True):
        parts += [
            dtmf_tone(d, 0.08, sample_rate=rate, level_dbm0=-18, twist_db=twist),
            np.zeros(480, dtype=np.int16),
        ]
    pcm = ulaw_decode(ulaw_encode(np.concatenate(parts)))
    assert detect(pcm, rate) == "147*"
    # too much twist is not DTMF
    assert detect(dtmf_tone("5", 0.2, sample_rate=rate, level_dbm0=-10, twist_db=15), rate) == ""


def test_detector_rejects_bad_rate() -> None:
    with pytest.raises(ValueError):
        InbandDtmfDetector(sample_rate=44100)


def vowel(
    rate: int, seconds: float, f0: float, formants: tuple[float, ...], rng: np.random.Generator
) -> np.ndarray:
    """A harmonic signal shaped by formant resonances, with vibrato: a sustained vowel."""
    t = np.arange(int(rate * seconds)) / rate
    pitch = f0 * (1 + 0.03 * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    signal = np.zeros_like(t)
    for k in range(1, int(rate / 2 / f0)):
        freq = k * f0
        gain = sum(1 / (1 + ((freq - f) / 80) ** 2) for f in formants) / k**0.5
        signal += gain * np.sin(k * phase + rng.uniform(0, 6))
    return signal


def test_no_false_digits_on_vowels_chirps_and_noise() -> None:
    rng = np.random.default_rng(7)
    for rate in (8000, 16000):
        signals = []
        for f0 in (85, 100, 118, 140, 175, 210, 233, 260):
            for formants in (
                (730, 1090, 2440),
                (270, 2290, 3010),
                (570, 840, 2410),
                (660, 1720, 2410),
                (300, 870, 2240),
            ):
                signals.append(vowel(rate, 0.4, f0, formants, rng))
        t = np.arange(int(rate * 2)) / rate
        signals.append(np.sin(2 * np.pi * np.cumsum(300 + 1600 * t) / rate))  # slow chirp
        signals.append(np.sin(2 * np.pi * np.cumsum(3400 - 1500 * t) / rate))
        signals.append(rng.standard_normal(rate * 3))
        for s in signals:
            pcm = (s / np.abs(s).max() * DBM0_AMPLITUDE * 10 ** (-8 / 20)).astype(np.int16)
            assert detect(pcm, rate) == "", f"false digit at {rate} Hz"


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16), w.getframerate()


@pytest.mark.timeout(60)
def test_no_false_digits_on_espeak_speech(tmp_path: Path) -> None:
    espeak = shutil.which("espeak-ng")
    assert espeak, "espeak-ng is a required test dependency (Debian package espeak-ng)"
    texts = [
        (
            "en-us",
            "You have reached the voicemail of Alice. Please leave a message after the tone.",
        ),
        ("en", "One two three four five six seven eight nine zero star pound."),
        ("en-us+f3", "Press one to listen to your messages, press two to change your greeting."),
        ("de", "Bitte hinterlassen Sie eine Nachricht nach dem Signalton."),
        ("fr+m3", "Vous avez trois nouveaux messages. Appuyez sur la touche dièse."),
    ]
    rng = np.random.default_rng(3)
    for i, (voice, text) in enumerate(texts):
        wav = tmp_path / f"speech{i}.wav"
        subprocess.run(
            [espeak, "-v", voice, "-s", "150", "-w", str(wav), text], check=True, timeout=30
        )
        pcm, source_rate = read_wav(wav)
        assert len(pcm) > source_rate  # at least a second of speech
        for rate in (8000, 16000):
            speech = resample(pcm, source_rate, rate)
            loud = speech.astype(float) * (DBM0_AMPLITUDE * 0.6 / max(1, np.abs(speech).max()))
            noisy = add_noise(loud.astype(np.int16), 30, rng)
            assert detect(noisy, rate) == "", f"false digit in {voice!r} speech at {rate} Hz"
        # and a digit spoken over is still found when it is keyed after the speech
        speech8 = resample(pcm, source_rate, 8000)
        keyed = np.concatenate([speech8, digit_sequence("#", 8000, -15, tone=0.1, gap=0.1)])
        assert detect(keyed, 8000) == "#"


def test_start_time_and_chunking_do_not_change_results() -> None:
    rate = 16000
    pcm = digit_sequence("90#", rate, -20, tone=0.08, gap=0.07)
    results = []
    for chunk in (37, 320, len(pcm)):
        detector = InbandDtmfDetector(sample_rate=rate)
        found = []
        for i in range(0, len(pcm), chunk):
            found += detector.process(pcm[i : i + chunk])
        found += detector.flush()
        results.append(found)
    assert results[0] == results[1] == results[2]
    starts = [d.start for d in results[0]]
    expected = [0.2 + k * 0.15 for k in range(3)]
    assert [d.digit for d in results[0]] == list("90#")
    assert np.allclose(starts, expected, atol=0.007)  # within one 6.4 ms block
