"""Waveform peaks of known signals: a sine's amplitude, silence, a click in the right bucket,
uneven divisions, full scale, short recordings, the JSON round trip and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from sipum_protocol.media.recording import Peaks, compute_peaks, peaks_of_wav, wav_bytes


def test_a_half_scale_sine_then_silence() -> None:
    rate = 8000
    t = np.arange(rate) / rate
    tone = np.round(16384 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)  # 1 s at -6 dBFS
    pcm = np.concatenate([tone, np.zeros(rate, dtype=np.int16)])
    peaks = compute_peaks(pcm, rate, buckets=100)
    assert len(peaks.peaks) == 100 and peaks.samples == 2 * rate and peaks.duration_s == 2.0
    assert all(p == pytest.approx(0.5, abs=0.002) for p in peaks.peaks[:50])
    assert peaks.peaks[50:] == [0.0] * 50


def test_a_click_lands_in_its_bucket_and_full_scale_is_one() -> None:
    pcm = np.zeros(10_000, dtype=np.int16)
    pcm[7_345] = -32768  # the most negative sample: |x| does not overflow
    pcm[123] = 3277
    peaks = compute_peaks(pcm.tobytes(), 16000, buckets=10)
    assert peaks.peaks == [0.1, 0, 0, 0, 0, 0, 0, 1.0, 0, 0]


def test_uneven_division_covers_every_sample() -> None:
    pcm = np.zeros(1001, dtype=np.int16)
    pcm[-1] = 16384  # the very last sample belongs to the last bucket
    peaks = compute_peaks(pcm, 8000, buckets=400)
    assert len(peaks.peaks) == 400 and peaks.peaks[-1] == 0.5 and max(peaks.peaks[:-1]) == 0


def test_short_and_empty_recordings() -> None:
    assert compute_peaks(np.array([0, 8192, -16384], dtype=np.int16), 8000).peaks == [
        0.0, 0.25, 0.5,
    ]  # fmt: skip
    assert compute_peaks(b"", 8000).peaks == []
    with pytest.raises(ValueError):
        compute_peaks(b"\x00\x00", 8000, buckets=0)


def test_from_a_wav_file_and_the_json_round_trip() -> None:
    pcm = (np.arange(8000) % 200 * 100).astype(np.int16)  # a sawtooth up to 19900
    peaks = peaks_of_wav(wav_bytes(pcm, 8000), buckets=8)
    assert peaks.sample_rate == 8000 and peaks.peaks == [0.607] * 8
    assert Peaks.from_json(peaks.to_json()) == peaks


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"{}",
        b'{"v":1,"sample_rate":8000,"samples":1,"peaks":[2.0]}',
        b'{"v":9,"sample_rate":8000,"samples":1,"peaks":[]}',
        b"\xff",
    ],
)
def test_bad_json_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError):
        Peaks.from_json(data)


def test_not_a_wav_is_refused() -> None:
    with pytest.raises(ValueError):
        peaks_of_wav(b"RIFF" + bytes(40))
