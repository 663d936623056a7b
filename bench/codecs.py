"""Codec table: encode/decode time for 60 s of audio per codec (issue: media core).

    uv run python bench/codecs.py [--seconds 60] [--repeat 3]

For every codec: the time to encode and to decode 60 s of a speech-like signal
(gliding harmonics + chirp), both as one whole buffer (what storage conversion does)
and frame by frame in 20 ms frames (what an RTP stream does: 3,000 calls per minute
of audio). G.711 is also timed through the stdlib ``audioop`` reference, in the same
run, to give a ratio. Best of ``--repeat`` runs, wall clock (``time.perf_counter``),
one thread. Opus and G.722 have no whole-buffer mode (they are framed codecs: G.722 is
timed whole-buffer too because its API allows it).
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings
from collections.abc import Callable

import numpy as np
from sipum_protocol.media.codecs import (
    G722Decoder,
    G722Encoder,
    OpusDecoder,
    OpusEncoder,
    alaw_decode,
    alaw_encode,
    resample,
    ulaw_decode,
    ulaw_encode,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop


def speech_like(rate: int, seconds: float) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    signal = sum(np.sin(k * phase) / k for k in range(1, 12))
    signal = signal + 0.3 * np.sin(2 * np.pi * np.cumsum(300 + 2700 * (t % 1.0)) / rate)
    signal = signal * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
    return (signal / np.abs(signal).max() * 12000).astype(np.int16)


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def frames(pcm: np.ndarray, size: int) -> list[np.ndarray]:
    return [pcm[i : i + size] for i in range(0, len(pcm) - size + 1, size)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    seconds, repeat = args.seconds, args.repeat
    rows: list[tuple[str, str, float, float]] = []

    pcm8 = speech_like(8000, seconds)
    pcm8_bytes = pcm8.tobytes()
    f8 = frames(pcm8, 160)
    f8_bytes = [f.tobytes() for f in f8]
    for name, enc, dec, ref_enc, ref_dec in [
        ("PCMU", ulaw_encode, ulaw_decode, audioop.lin2ulaw, audioop.ulaw2lin),
        ("PCMA", alaw_encode, alaw_decode, audioop.lin2alaw, audioop.alaw2lin),
    ]:
        coded = enc(pcm8)
        coded_frames = [enc(f) for f in f8]
        rows.append(
            (
                name,
                "whole buffer, tables",
                best(lambda enc=enc: enc(pcm8), repeat),
                best(lambda dec=dec, coded=coded: dec(coded), repeat),
            )
        )
        rows.append(
            (
                name,
                "whole buffer, audioop",
                best(lambda ref_enc=ref_enc: ref_enc(pcm8_bytes, 2), repeat),
                best(lambda ref_dec=ref_dec, coded=coded: ref_dec(coded, 2), repeat),
            )
        )
        rows.append(
            (
                name,
                "20 ms frames, tables",
                best(lambda enc=enc: [enc(f) for f in f8], repeat),
                best(lambda dec=dec, cf=coded_frames: [dec(c) for c in cf], repeat),
            )
        )
        rows.append(
            (
                name,
                "20 ms frames, audioop",
                best(lambda ref_enc=ref_enc: [ref_enc(f, 2) for f in f8_bytes], repeat),
                best(lambda ref_dec=ref_dec, cf=coded_frames: [ref_dec(c, 2) for c in cf], repeat),
            )
        )

    pcm16 = speech_like(16000, seconds)
    f16 = frames(pcm16, 320)
    g722_whole = G722Encoder().encode(pcm16)
    g722_frames_enc = G722Encoder()
    g722_frames = [g722_frames_enc.encode(f) for f in f16]
    rows.append(
        (
            "G722",
            "whole buffer",
            best(lambda: G722Encoder().encode(pcm16), repeat),
            best(lambda: G722Decoder().decode(g722_whole), repeat),
        )
    )

    def g722_encode_frames() -> None:
        e = G722Encoder()
        for f in f16:
            e.encode(f)

    def g722_decode_frames() -> None:
        d = G722Decoder()
        for p in g722_frames:
            d.decode(p)

    rows.append(
        ("G722", "20 ms frames", best(g722_encode_frames, repeat), best(g722_decode_frames, repeat))
    )

    pcm48 = speech_like(48000, seconds)
    f48 = frames(pcm48, 960)
    opus_enc = OpusEncoder()
    opus_packets = [opus_enc.encode(f) for f in f48]

    def opus_encode_frames() -> None:
        e = OpusEncoder()
        for f in f48:
            e.encode(f)

    def opus_decode_frames() -> None:
        d = OpusDecoder()
        for p in opus_packets:
            d.decode(p)

    rows.append(
        (
            "opus",
            "20 ms frames, 32 kbit/s",
            best(opus_encode_frames, repeat),
            best(opus_decode_frames, repeat),
        )
    )
    rows.append(
        (
            "resample",
            "48 kHz -> 16 kHz / 8 kHz -> 16 kHz",
            best(lambda: resample(pcm48, 48000, 16000), repeat),
            best(lambda: resample(pcm8, 8000, 16000), repeat),
        )
    )

    print(
        f"# {seconds:g} s of audio per codec, best of {repeat}; {platform.python_implementation()} "
        f"{platform.python_version()}, numpy {np.__version__}, {platform.machine()}"
    )
    print()
    print("| codec | mode | encode ms | decode ms | encode × realtime | decode × realtime |")
    print("|---|---|---:|---:|---:|---:|")
    for name, mode, enc_s, dec_s in rows:
        print(
            f"| {name} | {mode} | {enc_s * 1000:.2f} | {dec_s * 1000:.2f} "
            f"| {seconds / enc_s:,.0f} | {seconds / dec_s:,.0f} |"
        )
    table = {(n, m): (e, d) for n, m, e, d in rows}
    print()
    for name in ("PCMU", "PCMA"):
        e, d = table[(name, "whole buffer, tables")]
        re, rd = table[(name, "whole buffer, audioop")]
        fe, fd = table[(name, "20 ms frames, tables")]
        fre, frd = table[(name, "20 ms frames, audioop")]
        print(
            f"{name}: tables vs audioop, whole buffer: encode {re / e:.1f}x, decode {rd / d:.1f}x faster; "
            f"20 ms frames: encode {fre / fe:.2f}x, decode {frd / fd:.2f}x"
        )


if __name__ == "__main__":
    main()
