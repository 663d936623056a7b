"""Codecs: G.711 bit-exact with audioop, G.722 and Opus round trips, CN, resampling."""

import warnings

import numpy as np
import pytest
from sipum_protocol.media.codecs import (
    CODECS,
    ComfortNoiseGenerator,
    ComfortNoisePayload,
    G722Decoder,
    G722Encoder,
    OpusDecoder,
    OpusEncoder,
    Resampler,
    alaw_decode,
    alaw_encode,
    codec_for_payload_type,
    codec_info,
    create_decoder,
    create_encoder,
    resample,
    ulaw_decode,
    ulaw_encode,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = bytes(range(256))


def speech_like(rate: int, seconds: float, seed: int = 1) -> np.ndarray:
    """Voiced-speech stand-in: a gliding fundamental with decaying harmonics plus a chirp,
    amplitude-modulated at a syllable rate."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    signal = sum(np.sin(k * phase + rng.uniform(0, 6)) / k for k in range(1, 12))
    chirp_f = 300 + (min(3000, rate / 2 - 1000) - 300) * (t / seconds)
    signal = signal + 0.3 * np.sin(2 * np.pi * np.cumsum(chirp_f) / rate)
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)
    signal = signal * envelope
    return (signal / np.abs(signal).max() * 12000).astype(np.int16)


def aligned_correlation(reference: np.ndarray, decoded: np.ndarray, max_lag: int) -> float:
    """Best Pearson correlation over decoder delays 0..max_lag."""
    ref = reference.astype(np.float64)
    dec = decoded.astype(np.float64)
    best = -1.0
    for lag in range(max_lag + 1):
        n = min(len(ref), len(dec) - lag)
        a, b = ref[: n - 0], dec[lag : lag + n]
        best = max(best, float(np.corrcoef(a[1000:], b[1000:])[0, 1]))
    return best


def test_ulaw_encode_bit_exact_on_all_samples() -> None:
    assert ulaw_encode(ALL_SAMPLES) == audioop.lin2ulaw(ALL_SAMPLES.tobytes(), 2)


def test_alaw_encode_bit_exact_on_all_samples() -> None:
    assert alaw_encode(ALL_SAMPLES) == audioop.lin2alaw(ALL_SAMPLES.tobytes(), 2)


def test_ulaw_and_alaw_decode_bit_exact_on_all_codes() -> None:
    assert ulaw_decode(ALL_CODES).tobytes() == audioop.ulaw2lin(ALL_CODES, 2)
    assert alaw_decode(ALL_CODES).tobytes() == audioop.alaw2lin(ALL_CODES, 2)
    assert ulaw_decode(ALL_CODES).dtype == np.int16


def test_g711_accepts_bytes_and_known_codes() -> None:
    silence = np.zeros(160, dtype=np.int16)
    assert ulaw_encode(silence.tobytes()) == b"\xff" * 160
    assert alaw_encode(silence) == b"\xd5" * 160
    # A-law sign bit: positive samples have bit 7 set (aiortp got this wrong)
    assert alaw_encode(np.array([1000], dtype=np.int16))[0] & 0x80
    assert not alaw_encode(np.array([-1000], dtype=np.int16))[0] & 0x80
    with pytest.raises(ValueError):
        ulaw_encode(b"\x00")


def test_registry_describes_codecs() -> None:
    assert codec_info("pcmu").payload_type == 0
    assert codec_info("PCMA").payload_type == 8
    g722 = codec_info("G722")
    assert (g722.clock_rate, g722.sample_rate, g722.payload_type) == (8000, 16000, 9)
    assert (g722.samples_per_frame, g722.timestamp_step) == (320, 160)
    opus = codec_info("OPUS")
    assert (opus.clock_rate, opus.sample_rate, opus.static) == (48000, 48000, False)
    assert opus.rtpmap == "opus/48000/2"
    assert codec_info("PCMU").rtpmap == "PCMU/8000"
    assert codec_for_payload_type(13).name == "CN"
    with pytest.raises(KeyError):
        codec_for_payload_type(111)
    assert set(CODECS) == {"pcmu", "pcma", "g722", "opus", "cn"}


@pytest.mark.parametrize("name", ["PCMU", "PCMA"])
def test_g711_round_trip_through_registry(name: str) -> None:
    pcm = speech_like(8000, 1.0)
    enc, dec = create_encoder(name), create_decoder(name)
    out = np.concatenate([dec.decode(enc.encode(pcm[i : i + 160])) for i in range(0, 8000, 160)])
    assert aligned_correlation(pcm, out, 0) > 0.999


def test_g722_round_trip_speech_like_correlation() -> None:
    pcm = speech_like(16000, 2.0)
    enc, dec = G722Encoder(), G722Decoder()
    payloads = [enc.encode(pcm[i : i + 320]) for i in range(0, len(pcm), 320)]
    assert all(len(p) == 160 for p in payloads)
    out = np.concatenate([dec.decode(p) for p in payloads])
    assert out.dtype == np.int16 and len(out) == len(pcm)
    assert aligned_correlation(pcm, out, 64) > 0.99


def test_g722_state_is_carried_across_frames() -> None:
    pcm = speech_like(16000, 1.0)
    whole = G722Encoder().encode(pcm)
    enc = G722Encoder()
    framed = b"".join(enc.encode(pcm[i : i + 320]) for i in range(0, len(pcm), 320))
    assert framed == whole  # one stateful stream, whatever the framing
    # a fresh encoder per frame loses the ADPCM state and gives different bits
    fresh = b"".join(G722Encoder().encode(pcm[i : i + 320]) for i in range(0, len(pcm), 320))
    assert fresh != whole
    with pytest.raises(ValueError):
        enc.encode(pcm[:3])


def test_opus_round_trip_speech_like_correlation() -> None:
    pcm = speech_like(48000, 2.0)
    enc, dec = OpusEncoder(), OpusDecoder()
    payloads = [enc.encode(pcm[i : i + 960]) for i in range(0, len(pcm), 960)]
    assert all(0 < len(p) < 400 for p in payloads)
    out = np.concatenate([dec.decode(p) for p in payloads])
    assert len(out) == len(pcm)
    assert aligned_correlation(pcm, out, 400) > 0.99
    with pytest.raises(ValueError):
        enc.encode(pcm[:100])


def test_opus_decoder_state_matters() -> None:
    pcm = speech_like(48000, 1.0)
    enc = OpusEncoder()
    payloads = [enc.encode(pcm[i : i + 960]) for i in range(0, len(pcm), 960)]
    dec = OpusDecoder()
    continuous = np.concatenate([dec.decode(p) for p in payloads])
    restarted = np.concatenate([OpusDecoder().decode(p) for p in payloads])
    assert not np.array_equal(continuous, restarted)
    assert aligned_correlation(pcm, continuous, 400) > aligned_correlation(pcm, restarted, 400)


def test_comfort_noise_level_and_length() -> None:
    payload = ComfortNoisePayload.parse(bytes([40, 1, 2]))
    assert payload.level_dbov == 40 and payload.reflection_coefficients == b"\x01\x02"
    assert bytes(payload) == bytes([40, 1, 2])
    gen = ComfortNoiseGenerator(seed=3)
    assert len(gen.decode(bytes([0x80 | 30]))) == 0  # top bit ignored (RFC 3389 §3)
    noise = gen.generate(8000)
    assert len(noise) == 8000 and noise.dtype == np.int16
    rms_db = 20 * np.log10(np.sqrt(np.mean(noise.astype(float) ** 2)) / 32767)
    assert -31 < rms_db < -29
    gen.decode(b"\x7f")
    assert np.abs(gen.generate(160)).max() <= 1  # -127 dBov is silence in 16 bits
    with pytest.raises(ValueError):
        ComfortNoisePayload.parse(b"")
    assert isinstance(create_decoder("CN"), ComfortNoiseGenerator)


def dominant_frequency(pcm: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(float) * np.hanning(len(pcm))))
    return float(np.argmax(spectrum) * rate / len(pcm))


@pytest.mark.parametrize(
    "src, dst", [(8000, 16000), (16000, 8000), (8000, 48000), (48000, 8000), (48000, 16000)]
)
def test_resample_preserves_sine_frequency_and_length(src: int, dst: int) -> None:
    t = np.arange(src) / src
    pcm = (np.sin(2 * np.pi * 1000 * t) * 10000).astype(np.int16)
    out = resample(pcm, src, dst)
    assert len(out) == dst
    assert abs(dominant_frequency(out, dst) - 1000) <= 2
    expected = np.sin(2 * np.pi * 1000 * np.arange(dst) / dst) * 10000
    assert np.abs(out[100:-100] - expected[100:-100]).max() < 0.005 * 10000


def test_downsampling_removes_frequencies_above_new_nyquist() -> None:
    t = np.arange(48000) / 48000
    pcm = (np.sin(2 * np.pi * 1000 * t) * 8000 + np.sin(2 * np.pi * 6000 * t) * 8000).astype(
        np.int16
    )
    out = resample(pcm, 48000, 8000).astype(float)
    spectrum = np.abs(np.fft.rfft(out * np.hanning(len(out))))
    # 6 kHz would alias to 2 kHz at 8 kHz; it must be filtered out (>60 dB down)
    assert spectrum[2000] < spectrum[1000] * 1e-3


def test_streaming_resampler_matches_whole_buffer() -> None:
    pcm = speech_like(48000, 0.5)
    whole = resample(pcm, 48000, 16000)
    r = Resampler(48000, 16000)
    parts = [r.process(pcm[i : i + 777]) for i in range(0, len(pcm), 777)]
    parts.append(r.flush())
    assert np.array_equal(np.concatenate(parts), whole)


def test_opus_decoder_survives_empty_and_invalid_payloads() -> None:
    pcm = speech_like(48000, 0.2)
    enc = OpusEncoder()
    packets = [enc.encode(pcm[i : i + 960]) for i in range(0, len(pcm), 960)]
    dec = OpusDecoder()
    assert len(dec.decode(packets[0])) == 960
    assert len(dec.decode(b"")) == 0  # must not put FFmpeg's decoder into draining mode
    with pytest.raises(ValueError):
        dec.decode(b"\xff")
    assert len(dec.decode(packets[1])) == 960
