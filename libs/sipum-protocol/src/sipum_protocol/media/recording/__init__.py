"""Recording engine: one caller's audio → 16-bit PCM chunks → a WAV message.

Module map
----------
- :mod:`.session` — :class:`RecordingSession` (sans-I/O: PCM at timeline positions in, chunks
  and a :class:`RecordingResult` out; silence analysis, hold-back and trimming), its settings
  and outputs (:class:`RecordingSettings`, :class:`RecordingChunk`, :class:`StopReason`);
- :mod:`.timeline` — :class:`RtpTimeline`: RTP timestamps → timeline positions (RFC 3550 §5.1
  wrap, the G.722 clock of RFC 3551 §4.5.2, re-base on a new source or a jump);
- :mod:`.rtp_recording` — :class:`RtpRecording`: in-order RTP payloads or whole datagrams in
  front of the session, decoded in batches, comfort-noise fill (RFC 3389);
- :mod:`.wav` — the canonical WAV header, :func:`wav_bytes`, :func:`wav_from_chunks`;
- :mod:`.peaks` — :func:`compute_peaks`, :func:`peaks_of_wav`: the waveform an inbox draws;
- :mod:`.chunk_file` — :class:`WavChunkFile` (append and ``fsync`` each chunk) and
  :func:`recover_wav` (repair the file a crashed process left).

Everything is importable from this package, as it was when it was one module.
"""

from .chunk_file import RecoveredWav, WavChunkFile, recover_wav
from .peaks import Peaks, compute_peaks, peaks_of_wav
from .rtp_recording import FEED_GRACE, MAX_BATCH, RtpRecording
from .session import (
    RecordingChunk,
    RecordingResult,
    RecordingSession,
    RecordingSettings,
    StopReason,
)
from .timeline import RtpTimeline
from .wav import WAV_HEADER_SIZE, wav_bytes, wav_from_chunks, wav_header

__all__ = [
    "FEED_GRACE",
    "MAX_BATCH",
    "WAV_HEADER_SIZE",
    "Peaks",
    "RecordingChunk",
    "RecordingResult",
    "RecordingSession",
    "RecordingSettings",
    "RecoveredWav",
    "RtpRecording",
    "RtpTimeline",
    "StopReason",
    "WavChunkFile",
    "compute_peaks",
    "peaks_of_wav",
    "recover_wav",
    "wav_bytes",
    "wav_from_chunks",
    "wav_header",
]
