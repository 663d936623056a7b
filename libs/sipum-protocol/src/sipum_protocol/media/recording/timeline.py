"""RTP timestamps of one call → positions on the recording's timeline."""

from __future__ import annotations

from ..codecs.base import CodecInfo


class RtpTimeline:
    """Maps RTP timestamps of one call to recording positions (samples at the audio rate).

    32-bit timestamps are unwrapped (RFC 3550 §5.1: they wrap and start at a random value); the
    first packet is position 0. G.722's RTP clock (8000) differs from its audio rate (16000,
    RFC 3551 §4.5.2), hence the scale. A new SSRC or a jump of more than ``max_jump`` seconds
    (a phone restarting its stream) re-bases the clock: its next packet continues right after
    the audio written so far instead of leaving a huge gap or overwriting the past.
    """

    def __init__(self, info: CodecInfo, *, max_jump: float = 10.0) -> None:
        self.scale = (
            info.sample_rate // info.clock_rate if info.sample_rate >= info.clock_rate else 1
        )
        self._clock = info.clock_rate
        self._max_jump = round(max_jump * info.clock_rate)
        self._ssrc: int | None = None
        self._base = 0  # unwrapped timestamp that maps to position `_base_position`
        self._base_position = 0
        self._last_ts = 0
        self._unwrapped = 0

    @property
    def ssrc(self) -> int | None:
        """The source the timeline follows (the last one seen)."""
        return self._ssrc

    def position(self, ssrc: int, timestamp: int, written: int) -> int:
        """Timeline position of a packet; *written* is how far the recording has got."""
        if self._ssrc != ssrc:
            self._ssrc = ssrc
            self._last_ts = timestamp
            self._unwrapped = timestamp
            self._base = timestamp
            self._base_position = written
            return written
        delta = ((timestamp - self._last_ts + 0x80000000) & 0xFFFFFFFF) - 0x80000000
        unwrapped = self._unwrapped + delta
        pos = self._base_position + (unwrapped - self._base) * self.scale
        if abs(pos - written) > self._max_jump * self.scale:
            # Timestamp jump: continue where the recording is.
            self._base = unwrapped
            self._base_position = written
            pos = written
        if delta > 0:
            self._last_ts = timestamp
            self._unwrapped = unwrapped
        return pos
