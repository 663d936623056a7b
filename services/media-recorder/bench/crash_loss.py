"""The most audio a crash can lose before the spool has it, by ``chunk_seconds`` and hold-back.

Feeds the recording engine (``RtpRecording``, as the recorder runs it) 20 ms PCMU packets of
continuous voice on a fake clock and reports the largest gap between the audio received and the
audio handed out to the spool — what a SIGKILL at the worst moment loses, before the upload's
own latency. No I/O, deterministic.

    uv run python services/media-recorder/bench/crash_loss.py
"""

from __future__ import annotations

import argparse

import numpy as np
from sipum_protocol.media.codecs import create_decoder
from sipum_protocol.media.codecs.g711 import ulaw_encode
from sipum_protocol.media.recording import RecordingSettings
from sipum_protocol.media.recording.rtp_recording import RtpRecording


def worst_unsaved(chunk_seconds: float, hold_back: float, seconds: float = 20.0) -> float:
    handed_out = [0]

    def on_chunk(chunk) -> None:  # type: ignore[no-untyped-def]
        handed_out[0] = max(handed_out[0], chunk.start + len(chunk.pcm) // 2)

    settings = RecordingSettings(
        sample_rate=8000,
        max_silence=30,
        max_length=seconds + 10,
        flush_interval=chunk_seconds,
        hold_back=hold_back,
    )
    rec = RtpRecording(create_decoder("PCMU"), settings, now=0.0, on_chunk=on_chunk)
    packets = int(seconds / 0.02)
    t = np.arange(160 * packets) / 8000
    pcm = (8000 * np.sin(2 * np.pi * 440 * t)).astype("<i2")
    worst = 0.0
    for i in range(packets):
        now = (i + 1) * 0.02
        rec.packet(1, i * 160, ulaw_encode(pcm[i * 160 : (i + 1) * 160]), now=now)
        timer = rec.next_timer()
        if timer is not None and timer <= now:
            rec.handle_timer(now)
        worst = max(worst, ((i + 1) * 160 - handed_out[0]) / 8000)
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", default="2,0.5,0.3,0.25,0.2")
    parser.add_argument("--hold-backs", default="0.3,0.1")
    args = parser.parse_args()
    print("| chunk_seconds | hold_back | worst unsaved audio |\n|---:|---:|---:|")
    for chunk in (float(x) for x in args.chunks.split(",")):
        for hold in (float(x) for x in args.hold_backs.split(",")):
            print(f"| {chunk} | {hold} | {worst_unsaved(chunk, hold):.2f} s |")


if __name__ == "__main__":
    main()
